"""SMILES in, checked RDKit molecules out: parsing, standardization, and the limits every molecule must meet.

Standardization (on by default) keeps the largest fragment (a salt's counter-ion and
solvents go), neutralizes charges where a neutral form exists (RDKit's
``rdMolStandardize.Uncharger``) and writes the canonical SMILES. What it changed is
counted, and recorded in the card by the recipe. Without it, a mixture of several
fragments is refused: one graph would join molecules that never bond.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from zoo.errors import InputError

MAX_HEAVY_ATOMS = 200  # the limit: far above drug-like molecules (< 70), below proteins
MAX_SMILES_CHARS = 5000
STANDARDIZATION = {"largest_fragment": True, "neutralize": True, "canonical_smiles": True}


@dataclass(frozen=True)
class Molecule:
    """One molecule as the models read it: the RDKit ``mol``, its canonical SMILES, and what standardization did."""

    mol: Any
    smiles: str
    input_smiles: str
    fragments_removed: int = 0
    neutralized: bool = False


def rdkit():
    """RDKit's ``Chem`` module, or an InputError saying how to install it."""
    try:
        from rdkit import Chem, RDLogger
    except ImportError:
        raise InputError("molecules need RDKit: pip install rdkit (or pip install 'domain-zoo[medical]')") from None
    RDLogger.DisableLog("rdApp.*")  # its own stderr lines would repeat what our errors say
    return Chem


def parse_smiles(smiles: Any, where: str, *, standardize: bool = True) -> Molecule:
    """A checked :class:`Molecule` from one SMILES string; InputError naming ``where`` (a row, an argument) when
    it is not text, empty, unparsable, chemically invalid, has no heavy atoms, over :data:`MAX_HEAVY_ATOMS`
    heavy atoms, or (without ``standardize``) a mixture of fragments."""
    Chem = rdkit()
    if not isinstance(smiles, str):
        raise InputError(f"{where}: expected a SMILES string, got {type(smiles).__name__} {smiles!r:.60}")
    text = smiles.strip()
    if not text:
        raise InputError(f"{where}: empty SMILES; expected a molecule such as 'CCO'")
    if len(text) > MAX_SMILES_CHARS:
        raise InputError(f"{where}: a SMILES of {len(text):,} characters; at most {MAX_SMILES_CHARS:,} are read")
    odd = next((c for c in text if not c.isascii() or not c.isprintable() or c.isspace()), None)
    if odd is not None:  # RDKit would stop at a NUL or read past a space as a name: refuse rather than guess
        raise InputError(f"{where}: {text[:80]!r} holds {odd!r}; a SMILES is printable ASCII without spaces")
    mol = Chem.MolFromSmiles(text, sanitize=False)
    if mol is None:
        raise InputError(f"{where}: {text[:80]!r} is not a SMILES RDKit can parse (check brackets, ring-closure "
                         "digits and element symbols)")
    try:
        Chem.SanitizeMol(mol)
        mol = Chem.RemoveHs(mol)  # explicit [H] atoms are no graph nodes, as MolFromSmiles (and Chemprop) has it
    except Exception as exc:  # RDKit raises its own exception types (valence, kekulization) from C++
        raise InputError(f"{where}: {text[:80]!r} is not a valid molecule: {' '.join(str(exc).split())}") from None
    return checked(mol, text, where, standardize=standardize)


def checked(mol: Any, text: str, where: str, *, standardize: bool = True) -> Molecule:
    """A sanitized RDKit molecule standardized (or refused as a mixture) and checked against the size limits."""
    Chem = rdkit()
    fragments = len(Chem.GetMolFrags(mol))
    removed, neutralized = 0, False
    if standardize:
        mol, removed, neutralized = _standardized(mol)
    elif fragments > 1:
        raise InputError(f"{where}: {text[:80]!r} is a mixture or salt of {fragments} fragments; standardize "
                         "(the default) keeps the largest, or give one molecule")
    heavy = mol.GetNumHeavyAtoms()
    if heavy == 0:
        raise InputError(f"{where}: {text[:80]!r} has no heavy atoms; expected a molecule with at least one")
    if heavy > MAX_HEAVY_ATOMS:
        raise InputError(f"{where}: {text[:80]!r} has {heavy} heavy atoms; at most {MAX_HEAVY_ATOMS} are "
                         "accepted (a small-molecule model)")
    return Molecule(mol, Chem.MolToSmiles(mol), text, removed, neutralized)


def _standardized(mol: Any) -> tuple[Any, int, bool]:
    """(largest fragment, neutralized; how many fragments went; whether a charge changed)."""
    from rdkit.Chem.MolStandardize import rdMolStandardize

    Chem = rdkit()
    fragments = len(Chem.GetMolFrags(mol))
    if fragments > 1:
        mol = rdMolStandardize.LargestFragmentChooser(preferOrganic=True).choose(mol)
    before = [atom.GetFormalCharge() for atom in mol.GetAtoms()]
    mol = rdMolStandardize.Uncharger().uncharge(mol)
    after = [atom.GetFormalCharge() for atom in mol.GetAtoms()]
    return mol, fragments - 1, before != after


def canonical_counts(molecules: list[Molecule | None]) -> dict[str, int]:
    """How many molecules share a canonical SMILES with an earlier one (``duplicates``), and how many
    standardization changed (``salts_stripped``, ``neutralized``)."""
    seen: set[str] = set()
    duplicates = 0
    for molecule in molecules:
        if molecule is None:
            continue
        duplicates += molecule.smiles in seen
        seen.add(molecule.smiles)
    present = [m for m in molecules if m is not None]
    return {"duplicates": duplicates, "salts_stripped": sum(m.fragments_removed > 0 for m in present),
            "neutralized": sum(m.neutralized for m in present)}
