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

import functools
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


# Each one-hot block of the atom features: its choices by value (an unlisted value takes the block's last slot).
ATOM_BLOCKS = ({n: i for i, n in enumerate(ATOMIC_NUMBERS)}, {d: d for d in DEGREES},
               {c: i for i, c in enumerate(FORMAL_CHARGES)}, {t: t for t in CHIRAL_TAGS}, {h: h for h in HYDROGEN_COUNTS})
BOND_TYPE_SLOTS = {name: i for i, name in enumerate(BOND_TYPES)}
# Where each block starts (the six one-hot blocks, each with its "other" slot), then the aromaticity column.
BLOCK_OFFSETS = tuple(np.cumsum([0] + [len(block) + 1 for block in ATOM_BLOCKS] + [len(HYBRIDIZATIONS) + 1]).tolist())


@functools.cache
def hybridization_slots() -> dict[Any, int]:
    """RDKit's hybridization enum values → their slot (RDKit is imported on first use)."""
    from rdkit.Chem.rdchem import HybridizationType

    return {getattr(HybridizationType, name): i for i, name in enumerate(HYBRIDIZATIONS)}


def atom_hot_columns(atom: Any, hybridizations: dict[Any, int]) -> list[int]:
    """The columns set to 1 in an atom's 72 features: one per one-hot block, and aromaticity's when aromatic."""
    numbers, degrees, charges, chiralities, hydrogens = ATOM_BLOCKS
    a, b, c, d, e, f, aromatic = BLOCK_OFFSETS  # written out, not looped: this runs once per atom of every molecule
    columns = [a + numbers.get(atom.GetAtomicNum(), len(numbers)),
               b + degrees.get(atom.GetTotalDegree(), len(degrees)),
               c + charges.get(atom.GetFormalCharge(), len(charges)),
               d + chiralities.get(int(atom.GetChiralTag()), len(chiralities)),
               e + hydrogens.get(int(atom.GetTotalNumHs()), len(hydrogens)),
               f + hybridizations.get(atom.GetHybridization(), len(HYBRIDIZATIONS))]
    if atom.GetIsAromatic():
        columns.append(aromatic)
    return columns


def atom_features(atom: Any) -> np.ndarray:
    """Chemprop v2's 72 multi-hot atom features."""
    x = np.zeros(ATOM_FEATURES, dtype=np.float32)
    x[atom_hot_columns(atom, hybridization_slots())] = 1
    x[-1] = 0.01 * atom.GetMass()
    return x


def bond_hot_columns(bond: Any) -> list[int]:
    """The columns set to 1 in a bond's 14 features (Chemprop writes an unknown type's bit at the conjugation
    slot, where the conjugation value then overwrites it: kept, since its checkpoints learned with it)."""
    type_column = 1 + BOND_TYPE_SLOTS.get(str(bond.GetBondType()), len(BOND_TYPES))
    conjugated = 1 + len(BOND_TYPES)
    columns = [type_column] if type_column != conjugated or bond.GetIsConjugated() else []
    if bond.GetIsConjugated() and type_column != conjugated:
        columns.append(conjugated)
    if bond.IsInRing():
        columns.append(2 + len(BOND_TYPES))
    stereo = int(bond.GetStereo())
    columns.append(3 + len(BOND_TYPES) + (stereo if stereo in BOND_STEREOS else len(BOND_STEREOS)))
    return columns


def bond_features(bond: Any) -> np.ndarray:
    """Chemprop v2's 14 multi-hot bond features."""
    x = np.zeros(BOND_FEATURES, dtype=np.float32)
    x[bond_hot_columns(bond)] = 1
    return x


def mol_graph(mol: Any) -> MolGraph:
    """The directed graph of an RDKit molecule, as Chemprop's ``SimpleMoleculeMolGraphFeaturizer`` builds it.

    Every feature row is written in one scatter of its 1s (rows and columns gathered first), and the
    masses in one assignment: a molecule costs its RDKit calls and a few numpy operations."""
    hybridizations = hybridization_slots()
    atoms = np.zeros((max(mol.GetNumAtoms(), 1), ATOM_FEATURES), dtype=np.float32)
    rows, columns, masses = [], [], []
    for i in range(mol.GetNumAtoms()):  # by index: RDKit's atom sequence costs a len() per step
        atom = mol.GetAtomWithIdx(i)
        hot = atom_hot_columns(atom, hybridizations)
        rows += [i] * len(hot)
        columns += hot
        masses.append(0.01 * atom.GetMass())
    atoms[rows, columns] = 1
    atoms[: len(masses), -1] = masses
    bonds = np.zeros((2 * mol.GetNumBonds(), BOND_FEATURES), dtype=np.float32)
    ends, rows, columns = [], [], []
    for k in range(mol.GetNumBonds()):
        bond = mol.GetBondWithIdx(k)
        hot = bond_hot_columns(bond)
        rows += [2 * k] * len(hot) + [2 * k + 1] * len(hot)
        columns += hot + hot
        ends.append((bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()))
    bonds[rows, columns] = 1
    pairs = np.asarray(ends, dtype=np.int64).reshape(-1, 2)
    edge_index = np.stack([pairs, pairs[:, ::-1]], axis=1).reshape(-1, 2).T.copy()  # edge 2k: u→v, 2k+1: v→u
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


def quantile_descriptors(raw: np.ndarray, quantiles: Sequence[Sequence[float]]) -> np.ndarray:
    """Descriptors mapped through their train distribution to [0, 1], float32 (Chemprop's
    ``rdkit_2d_normalized`` idea, with the CDF read from the train split's quantiles in the card).

    A rank keeps heavy-tailed descriptors (``Ipc``) and outliers inside the same range as the rest without a
    clip; values past the train range map to 0 or 1, and a descriptor RDKit cannot compute to 0.5 (the median).
    """
    quantiles = np.asarray(quantiles, dtype=np.float64)
    levels = np.linspace(0.0, 1.0, quantiles.shape[1])
    values = np.full(len(raw), 0.5)
    for i, (x, q) in enumerate(zip(raw, quantiles)):
        if np.isfinite(x):  # the mean of the lowest and highest level at x: a value tied over several quantiles
            values[i] = 0.5 * (np.interp(x, q, levels) + 1.0 - np.interp(-x, -q[::-1], levels))  # gets their middle
    return values.astype(np.float32)


def checked_descriptor_scaling(scaling: Any) -> dict[str, Any] | None:
    """A card's ``descriptors`` entry with its numbers as arrays; InputError unless it holds ``names`` and either
    ``mean`` and ``std`` of one value per name, or ``quantiles``: per name, at least 2 non-decreasing finite values."""
    from zoo.errors import InputError

    if scaling is None:
        return None
    names = scaling.get("names") if isinstance(scaling, dict) else None
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise InputError(f"card preprocessing 'descriptors' must hold a list of descriptor 'names', got {scaling!r:.80}")
    try:
        if "quantiles" in scaling:
            quantiles = np.asarray(scaling["quantiles"], dtype=np.float64)
            if (quantiles.shape[:1] != (len(names),) or quantiles.ndim != 2 or quantiles.shape[1] < 2
                    or not np.isfinite(quantiles).all() or (np.diff(quantiles, axis=1) < 0).any()):
                raise ValueError
            return {"names": names, "quantiles": quantiles}
        mean, std = (np.asarray(scaling[key], dtype=np.float64) for key in ("mean", "std"))
        clip = None if scaling.get("clip") is None else float(scaling["clip"])
        if mean.shape != (len(names),) or std.shape != (len(names),) or (clip is not None and not clip > 0):
            raise ValueError
    except (KeyError, TypeError, ValueError):
        raise InputError(f"card preprocessing 'descriptors' must give, for each of its {len(names)} names, a 'mean' "
                         "and a 'std' (with an optional positive 'clip'), or a row of at least 2 non-decreasing "
                         "finite 'quantiles'") from None
    return {"names": names, "mean": mean, "std": std, "clip": clip}


class Featurizer:
    """Molecules → network inputs as a card's ``preprocessing`` says: ``inputs`` ``"graph"`` (the D-MPNN) or
    ``"morgan"`` (``morgan: {radius, bits}``), plus ``descriptors: {names, mean, std, clip}`` or
    ``{names, quantiles}`` when the model reads them."""

    def __init__(self, preprocessing: dict[str, Any]):
        from zoo.errors import InputError

        self.kind = preprocessing.get("inputs", "graph")
        if self.kind not in ("graph", "morgan"):
            raise InputError(f"card preprocessing 'inputs' must be 'graph' or 'morgan', got {self.kind!r}")
        morgan = preprocessing.get("morgan") or {}
        self.radius, self.bits = int(morgan.get("radius", MORGAN_RADIUS)), int(morgan.get("bits", MORGAN_BITS))
        self.descriptors = checked_descriptor_scaling(preprocessing.get("descriptors") or None)

    def __call__(self, mol: Any) -> tuple[Any, np.ndarray | None]:
        """One molecule's inputs: its graph or fingerprint, and its scaled descriptors (or None)."""
        features = mol_graph(mol) if self.kind == "graph" else morgan_fingerprint(mol, self.radius, self.bits)
        extra = None
        if self.descriptors:
            raw = descriptors(mol, self.descriptors["names"])
            if "quantiles" in self.descriptors:
                extra = quantile_descriptors(raw, self.descriptors["quantiles"])
            else:
                extra = scale_descriptors(raw, self.descriptors["mean"], self.descriptors["std"],
                                          self.descriptors["clip"])
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
