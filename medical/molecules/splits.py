"""Train/val/test splits of molecules: random, Bemis–Murcko scaffold, and fixed (shipped with the data).

The scaffold split is MoleculeNet's (DeepChem's ``ScaffoldSplitter``): molecules are grouped by
their Bemis–Murcko scaffold, the groups sorted largest first (ties by first appearance), and
each whole group goes to train if it fits in train's share, else to val if it fits in val's,
else to test. No scaffold is
in two splits, the largest (most common) scaffolds train, and the result depends on nothing
random. Acyclic molecules share the empty scaffold, one group.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from zoo.data import check_fractions
from zoo.errors import InputError

SPLITS = ("train", "val", "test")


def scaffold(mol: Any) -> str:
    """The Bemis–Murcko scaffold of an RDKit molecule as canonical SMILES ('' for an acyclic one), chirality ignored."""
    from rdkit.Chem.Scaffolds import MurckoScaffold

    return MurckoScaffold.MurckoScaffoldSmiles(mol=mol, includeChirality=False)


def scaffold_split(mols: Sequence[Any], val_fraction: float, test_fraction: float) -> dict[str, np.ndarray]:
    """Indices per split with no scaffold shared between splits (see the module docstring)."""
    check_fractions({"val": val_fraction, "test": test_fraction})
    groups: dict[str, list[int]] = {}
    for index, mol in enumerate(mols):
        groups.setdefault(scaffold(mol), []).append(index)
    ordered = sorted(groups.values(), key=lambda members: (-len(members), members[0]))
    n = len(mols)
    room = {"train": (1 - val_fraction - test_fraction) * n, "val": val_fraction * n}
    parts: dict[str, list[int]] = {name: [] for name in SPLITS}
    for members in ordered:
        # Each split's own room (DeepChem checks val against train + val, which lets val overflow
        # while train still fills with the small groups that come later).
        name = next((s for s in ("train", "val") if len(parts[s]) + len(members) <= room[s]), "test")
        parts[name] += members
    return {name: np.sort(np.asarray(parts[name], dtype=np.int64)) for name in SPLITS}


def random_split(n: int, val_fraction: float, test_fraction: float, seed: int = 0) -> dict[str, np.ndarray]:
    """Indices per split drawn by a seeded permutation; sizes round to the nearest molecule."""
    check_fractions({"val": val_fraction, "test": test_fraction})
    order = np.random.default_rng(seed).permutation(n)
    n_val, n_test = int(round(val_fraction * n)), int(round(test_fraction * n))
    return {"val": np.sort(order[:n_val]), "test": np.sort(order[n_val:n_val + n_test]),
            "train": np.sort(order[n_val + n_test:])}


def fixed_split(labels: Sequence[str], where: str) -> dict[str, np.ndarray]:
    """Indices per split from a split column (``train``, ``val``/``valid``/``validation``, ``test``)."""
    names = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
    unknown = sorted({label for label in labels if label not in names})
    if unknown:
        raise InputError(f"{where}: split column values must be train, val or test; got {unknown[:5]}")
    mapped = np.asarray([names[label] for label in labels])
    return {name: np.flatnonzero(mapped == name) for name in SPLITS}

