"""What the networks read: Chemprop v2's default atom and bond features, batched graphs, Morgan
fingerprints and RDKit 2-D descriptors.

The atom and bond features follow ``chemprop.featurizers`` (v2.3) exactly, bit for bit,
so checkpoints trained by Chemprop (ADMET-AI's) run on our D-MPNN unchanged:

* atoms (``MultiHotAtomFeaturizer.v2``, 72 values): one-hot atomic number (H..Kr and I, plus
  "other"), total degree 0-5, formal charge (-1, -2, 1, 2, 0), chiral tag 0-3, total H count 0-4,
  hybridization (S, SP, SP2, SP2D, SP3, SP3D, SP3D2), each with an "other" slot; aromaticity;
  mass / 100;
* bonds (``MultiHotBondFeaturizer``, 14 values): a null bit, bond type (single, double, triple,
  aromatic), conjugated, in ring, stereo 0-5 plus "other". Chemprop writes an unknown bond type's
  bit at the conjugation slot, where the conjugation value then overwrites it; we keep that quirk,
  since its checkpoints learned with it.

A molecule's graph has two directed edges per bond, ``2k`` and ``2k + 1``, each the other's
reverse. A batch concatenates graphs (no padding): edge and atom indices are offset,
and ``atom_counts`` says which atoms belong to which molecule.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

ATOMIC_NUMBERS = list(range(1, 37)) + [53]
DEGREES = list(range(6))
FORMAL_CHARGES = [-1, -2, 1, 2, 0]
CHIRAL_TAGS = list(range(4))
HYDROGEN_COUNTS = list(range(5))
HYBRIDIZATIONS = ["S", "SP", "SP2", "SP2D", "SP3", "SP3D", "SP3D2"]
BOND_TYPES = ["SINGLE", "DOUBLE", "TRIPLE", "AROMATIC"]
BOND_STEREOS = list(range(6))
ATOM_FEATURES = sum(len(c) + 1 for c in (ATOMIC_NUMBERS, DEGREES, FORMAL_CHARGES, CHIRAL_TAGS, HYDROGEN_COUNTS,
                                         HYBRIDIZATIONS)) + 2  # 72
BOND_FEATURES = 1 + len(BOND_TYPES) + 2 + len(BOND_STEREOS) + 1  # 14
MORGAN_RADIUS, MORGAN_BITS = 2, 2048


@dataclass(frozen=True)
class MolGraph:
    """One molecule's graph: atom features ``[atoms, 72]``, directed-edge features ``[2 bonds, 14]``,
    ``edge_index`` ``[2, 2 bonds]`` (source, destination) and each edge's reverse."""

    atoms: np.ndarray
    bonds: np.ndarray
    edge_index: np.ndarray
    reverse: np.ndarray


def atom_features(atom: Any) -> np.ndarray:
    """Chemprop v2's 72 multi-hot atom features."""
    from rdkit.Chem.rdchem import HybridizationType

    hybridizations = {getattr(HybridizationType, name): i for i, name in enumerate(HYBRIDIZATIONS)}
    values = [
        ({n: i for i, n in enumerate(ATOMIC_NUMBERS)}, atom.GetAtomicNum()),
        ({d: d for d in DEGREES}, atom.GetTotalDegree()),
        ({c: i for i, c in enumerate(FORMAL_CHARGES)}, atom.GetFormalCharge()),
        ({t: t for t in CHIRAL_TAGS}, int(atom.GetChiralTag())),
        ({h: h for h in HYDROGEN_COUNTS}, int(atom.GetTotalNumHs())),
        (hybridizations, atom.GetHybridization()),
    ]
    x = np.zeros(ATOM_FEATURES, dtype=np.float32)
    offset = 0
    for choices, value in values:
        x[offset + choices.get(value, len(choices))] = 1
        offset += len(choices) + 1
    x[offset] = int(atom.GetIsAromatic())
    x[offset + 1] = 0.01 * atom.GetMass()
    return x


def bond_features(bond: Any) -> np.ndarray:
    """Chemprop v2's 14 multi-hot bond features."""
    x = np.zeros(BOND_FEATURES, dtype=np.float32)
    kind = str(bond.GetBondType())
    x[1 + (BOND_TYPES.index(kind) if kind in BOND_TYPES else len(BOND_TYPES))] = 1
    x[1 + len(BOND_TYPES)] = int(bond.GetIsConjugated())  # overwrites an unknown type's bit, as in Chemprop
    x[2 + len(BOND_TYPES)] = int(bond.IsInRing())
    stereo = int(bond.GetStereo())
    x[3 + len(BOND_TYPES) + (BOND_STEREOS.index(stereo) if stereo in BOND_STEREOS else len(BOND_STEREOS))] = 1
    return x


def mol_graph(mol: Any) -> MolGraph:
    """The directed graph of an RDKit molecule, as Chemprop's ``SimpleMoleculeMolGraphFeaturizer`` builds it."""
    atoms = np.stack([atom_features(a) for a in mol.GetAtoms()]) if mol.GetNumAtoms() else \
        np.zeros((1, ATOM_FEATURES), np.float32)
    bonds = np.zeros((2 * mol.GetNumBonds(), BOND_FEATURES), dtype=np.float32)
    edge_index = np.zeros((2, 2 * mol.GetNumBonds()), dtype=np.int64)
    for k, bond in enumerate(mol.GetBonds()):
        bonds[2 * k : 2 * k + 2] = bond_features(bond)
        u, v = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        edge_index[:, 2 * k], edge_index[:, 2 * k + 1] = (u, v), (v, u)
    reverse = np.arange(len(bonds)).reshape(-1, 2)[:, ::-1].ravel()
    return MolGraph(atoms, bonds, edge_index, reverse.astype(np.int64))


def batch_graphs(graphs: Sequence[MolGraph]) -> dict[str, Any]:
    """One concatenated batch graph (no padding), as keyword tensors of :class:`~medical.molecules.dmpnn.DMPNN`."""
    import torch

    atom_offsets = np.cumsum([0] + [len(g.atoms) for g in graphs])
    edge_offsets = np.cumsum([0] + [len(g.bonds) for g in graphs])
    return {
        "atom_counts": torch.tensor(np.diff(atom_offsets), dtype=torch.long),  # first: Trainer counts molecules by it
        "atom_features": torch.from_numpy(np.concatenate([g.atoms for g in graphs])),
        "bond_features": torch.from_numpy(np.concatenate([g.bonds for g in graphs])),
        "edge_index": torch.from_numpy(np.concatenate([g.edge_index + o for g, o in zip(graphs, atom_offsets)], axis=1)),
        "reverse_edges": torch.from_numpy(np.concatenate([g.reverse + o for g, o in zip(graphs, edge_offsets)])),
    }


def morgan_fingerprint(mol: Any, radius: int = MORGAN_RADIUS, bits: int = MORGAN_BITS) -> np.ndarray:
    """The Morgan (ECFP-like) bit vector of a molecule, as float32 0/1."""
    from rdkit.Chem import rdFingerprintGenerator

    generator = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=bits)
    return generator.GetFingerprintAsNumPy(mol).astype(np.float32)


def descriptor_names() -> list[str]:
    """The RDKit 2-D descriptors computed, in order (``rdkit.Chem.Descriptors.descList``)."""
    from rdkit.Chem import Descriptors

    return [name for name, _ in Descriptors.descList]


def descriptors(mol: Any, names: Sequence[str]) -> np.ndarray:
    """RDKit 2-D descriptors ``names`` of a molecule (float64; a descriptor RDKit cannot compute is NaN)."""
    from rdkit.Chem import Descriptors

    functions = dict(Descriptors.descList)
    values = np.full(len(names), np.nan)
    for i, name in enumerate(names):
        try:
            values[i] = functions[name](mol)
        except Exception:  # RDKit descriptors raise assorted errors on odd molecules; NaN is imputed later
            pass
    return values


def scale_descriptors(raw: np.ndarray, mean: Sequence[float], std: Sequence[float],
                      clip: float | None = None) -> np.ndarray:
    """Standardized descriptors (train mean and std from the card), float32; non-finite values become 0.

    Several RDKit descriptors are far from normal (``Ipc`` spans tens of orders of magnitude), so a
    molecule unlike the training set can land thousands of standard deviations out; ``clip`` bounds
    them (Chemprop warns of this and does not clip, so imported Chemprop models set none).
    """
    with np.errstate(all="ignore"):
        scaled = (raw - np.asarray(mean)) / np.asarray(std)
    scaled = np.nan_to_num(scaled, nan=0.0, posinf=0.0, neginf=0.0)
    return (scaled if clip is None else scaled.clip(-clip, clip)).astype(np.float32)


class Featurizer:
    """Molecules → network inputs as a card's ``preprocessing`` says: ``inputs`` ``"graph"`` (the D-MPNN) or
    ``"morgan"`` (``morgan: {radius, bits}``), plus ``descriptors: {names, mean, std, clip}`` when the model reads them."""

    def __init__(self, preprocessing: dict[str, Any]):
        from zoo.errors import InputError

        self.kind = preprocessing.get("inputs", "graph")
        if self.kind not in ("graph", "morgan"):
            raise InputError(f"card preprocessing 'inputs' must be 'graph' or 'morgan', got {self.kind!r}")
        morgan = preprocessing.get("morgan") or {}
        self.radius, self.bits = int(morgan.get("radius", MORGAN_RADIUS)), int(morgan.get("bits", MORGAN_BITS))
        self.descriptors = preprocessing.get("descriptors") or None

    def __call__(self, mol: Any) -> tuple[Any, np.ndarray | None]:
        """One molecule's inputs: its graph or fingerprint, and its scaled descriptors (or None)."""
        features = mol_graph(mol) if self.kind == "graph" else morgan_fingerprint(mol, self.radius, self.bits)
        extra = None
        if self.descriptors:
            names = self.descriptors["names"]
            extra = scale_descriptors(descriptors(mol, names), self.descriptors["mean"], self.descriptors["std"],
                                      self.descriptors.get("clip"))
        return features, extra

    def collate(self, records: Sequence[tuple[Any, np.ndarray | None]]) -> dict[str, Any]:
        """Per-molecule inputs → the network's keyword tensors for one batch."""
        import torch

        if self.kind == "graph":
            batch = batch_graphs([features for features, _ in records])
        else:
            batch = {"fingerprints": torch.from_numpy(np.stack([features for features, _ in records]))}
        if self.descriptors:
            batch["descriptors"] = torch.from_numpy(np.stack([extra for _, extra in records]))
        return batch
