"""Molecules with their targets, read from a SMILES list, a CSV/TSV file or an SDF file.

Every row keeps its place: a row that cannot be used (a bad SMILES, no target at all,
a target that is not a number) is an :class:`InputError` naming it, or, with
``skip_invalid``, is kept as ``None`` with its error and counted in the report. A missing
target value (an empty cell, ``nan``, ``NA``) is allowed: that task is masked for that row.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from medical.molecules.chem import Molecule, canonical_counts, checked, parse_smiles, rdkit
from zoo.errors import InputError, ZooError
from zoo.hashing import sha256_file

TABLE_DELIMITERS = {".csv": ",", ".tsv": "\t", ".tab": "\t"}
MOLECULE_SUFFIXES = (*TABLE_DELIMITERS, ".sdf")
MAX_FILE_BYTES = 1 << 30
MISSING = {"", "nan", "na", "n/a", "none", "null"}
SMILES_COLUMNS = ("smiles", "canonical_smiles", "smi")
SHOWN_ERRORS = 5


@dataclass
class MoleculeTable:
    """Rows of molecules: each row's input SMILES, its :class:`Molecule` (``None`` where invalid, with the
    error in ``errors``), its targets (``[rows, targets]``, NaN where missing) and where it came from."""

    smiles: list[str]
    molecules: list[Molecule | None]
    targets: np.ndarray
    target_names: list[str]
    rows: list[str]
    errors: list[str | None]
    source: str = ""
    digest: str = ""
    header: list[str] = field(default_factory=list)  # the file's own columns, written back with predictions
    cells: list[list[str]] = field(default_factory=list)
    split: list[str] | None = None  # a split column's value per row (train / val / test)
    report: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.smiles)

    def valid(self) -> np.ndarray:
        """Indices of the rows that hold a usable molecule."""
        return np.flatnonzero([m is not None for m in self.molecules])


def from_smiles(smiles: Sequence[str], *, standardize: bool = True, skip_invalid: bool = False,
                where: str = "SMILES") -> MoleculeTable:
    """Molecules from SMILES strings (no targets); ``where`` names them in errors (``SMILES 3``)."""
    rows = [f"{where} {i + 1}" for i in range(len(smiles))]
    molecules, errors = _parse_all(list(smiles), rows, standardize)
    table = MoleculeTable([s if isinstance(s, str) else str(s) for s in smiles], molecules,
                          np.zeros((len(smiles), 0)), [], rows, errors)
    return _finish(table, skip_invalid)


def read_molecules(path: str | Path, *, smiles_column: str | None = None, targets: Sequence[str] | None = None,
                   split_column: str = "split", standardize: bool = True, skip_invalid: bool = False,
                   need_targets: bool = True, name: str | None = None) -> MoleculeTable:
    """A CSV/TSV (a SMILES column and target columns) or SDF file (properties as targets).

    ``targets`` names the target columns or SDF properties; by default every other column holding
    a number is one (its cells that are not numbers are then errors), and text columns are left aside. ``need_targets=False``
    reads molecules only (for prediction): targets are then read only where named. ``name`` is the file
    name errors and the format go by (a file in the zoo's store is named by its hash).
    """
    path = Path(path)
    shown = Path(name) if name else path
    suffix = shown.suffix.lower()
    if suffix not in MOLECULE_SUFFIXES:
        raise InputError(f"expected a molecule file ending in {', '.join(MOLECULE_SUFFIXES)}, got {shown.name}")
    data = _read_bytes(path)
    if suffix == ".sdf":
        table = _read_sdf(data, shown, targets, standardize, need_targets)
    else:
        table = _read_delimited(data, shown, TABLE_DELIMITERS[suffix], smiles_column, targets, split_column,
                                standardize, need_targets)
    table.source, table.digest = str(name or path), sha256_file(path)
    return _finish(table, skip_invalid)


def _read_bytes(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise InputError(f"{path} is {size:,} bytes; molecule files up to {MAX_FILE_BYTES:,} bytes are read")
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"no such molecule file: {path}") from None
    except IsADirectoryError:
        raise InputError(f"expected a molecule file, got the folder {path}") from None
    except OSError as exc:
        raise InputError(f"could not read {path}: {exc}") from None


def _read_delimited(data: bytes, path: Path, delimiter: str, smiles_column: str | None, targets, split_column: str,
                    standardize: bool, need_targets: bool) -> MoleculeTable:
    from zoo.data import read_delimited

    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(f"{path} is not UTF-8: byte 0x{data[exc.start:exc.start + 1].hex()} on line {line}; "
                         "save it as UTF-8") from None
    header, body = read_delimited(text, path, delimiter)
    if not header:
        raise InputError(f"{path} is empty; expected a header with a SMILES column, then one molecule a row")
    smiles_at = _smiles_column(header, smiles_column, path)
    split_at = header.index(split_column) if split_column in header else None
    target_at = _target_columns(header, body, targets, {smiles_at, split_at}, path, need_targets)
    rows = [f"{path.name} line {line}" for line, _ in body]
    values = np.full((len(body), len(target_at)), np.nan)
    molecules, errors = _parse_all([cells[smiles_at] for _, cells in body], rows, standardize)
    for r, (_, cells) in enumerate(body):
        for t, column in enumerate(target_at):
            try:
                values[r, t] = _number(cells[column], header[column])
            except InputError as exc:
                errors[r] = errors[r] or f"{rows[r]}: {exc}"
    table = MoleculeTable([cells[smiles_at] for _, cells in body], molecules, values,
                          [header[c] for c in target_at], rows, errors, header=header,
                          cells=[cells for _, cells in body],
                          split=None if split_at is None else [cells[split_at].strip().lower() for _, cells in body])
    table.report["target_columns"] = table.target_names
    return _require_targets(table, need_targets)


def _smiles_column(header: list[str], wanted: str | None, path: Path) -> int:
    if wanted is not None:
        if wanted not in header:
            raise InputError(f"{path}: no column {wanted!r}; its columns are {header}")
        return header.index(wanted)
    found = [i for i, name in enumerate(header) if name.lower() in SMILES_COLUMNS]
    if not found:
        raise InputError(f"{path}: no SMILES column (looked for {', '.join(SMILES_COLUMNS)}); its columns are "
                         f"{header}; name it with smiles_column= (--set smiles_column=NAME)")
    return found[0]


def _target_columns(header: list[str], body, targets, excluded: set, path: Path, need_targets: bool) -> list[int]:
    if targets:
        missing = [name for name in targets if name not in header]
        if missing:
            raise InputError(f"{path}: no target column(s) {missing}; its columns are {header}")
        return [header.index(name) for name in targets]
    if not need_targets:
        return []
    # A column with any number is a target (a typo in it is then reported); all-text columns (names) are not.
    numeric = [i for i, name in enumerate(header)
               if i not in excluded and any(not math.isnan(_number_or_nan(cells[i])) for _, cells in body)]
    if not numeric:
        raise InputError(f"{path}: no numeric target column beside the SMILES; its columns are {header}; "
                         "name the targets with target= (--set target=NAME)")
    return numeric


def _number_or_nan(cell: str) -> float:
    try:
        return _number(cell, "")
    except InputError:
        return math.nan


def _number(cell: Any, name: str) -> float:
    """A target value: a finite number, or NaN for a missing one; InputError for text or infinity."""
    if cell is None or isinstance(cell, str) and cell.strip().lower() in MISSING:
        return math.nan
    try:
        value = float(cell)
    except (TypeError, ValueError):
        raise InputError(f"target {name!r} is {str(cell)[:40]!r}, expected a number (or an empty cell)") from None
    if math.isinf(value):
        raise InputError(f"target {name!r} is {value}, expected a finite number")
    return value


def _read_sdf(data: bytes, path: Path, targets, standardize: bool, need_targets: bool) -> MoleculeTable:
    import io

    Chem = rdkit()
    supplier = Chem.ForwardSDMolSupplier(io.BytesIO(data), sanitize=False, removeHs=False)
    smiles, molecules, rows, errors, records = [], [], [], [], []
    for index, mol in enumerate(supplier, start=1):
        title = mol.GetProp("_Name").strip() if mol is not None and mol.HasProp("_Name") else ""
        rows.append(f"{path.name} record {index}" + (f" ({title[:40]})" if title else ""))
        records.append({} if mol is None else mol.GetPropsAsDict(includePrivate=False, includeComputed=False))
        molecule, error = _sdf_molecule(mol, rows[-1], standardize)
        molecules.append(molecule)
        errors.append(error)
        smiles.append(molecule.input_smiles if molecule else "")
    if not rows:
        raise InputError(f"{path} holds no SDF record; expected molfile blocks each ending in a $$$$ line")
    if all(molecule is None for molecule in molecules):
        raise InputError(f"{path}: no usable record ({errors[0]}); expected molfile blocks each ending in a $$$$ line")
    names = list(targets or ([] if not need_targets else _numeric_properties(records, path)))
    values = np.full((len(rows), len(names)), np.nan)
    for r, properties in enumerate(records):
        for t, name in enumerate(names):
            if name not in properties and errors[r] is None:
                errors[r] = f"{rows[r]}: has no property {name!r} (its properties: {sorted(properties)})"
                continue
            try:
                values[r, t] = _number(properties.get(name), name)
            except InputError as exc:
                errors[r] = errors[r] or f"{rows[r]}: {exc}"
    table = MoleculeTable(smiles, molecules, values, names, rows, errors)
    table.report["target_columns"] = names
    return _require_targets(table, need_targets)


def _sdf_molecule(mol: Any, row: str, standardize: bool) -> tuple[Molecule | None, str | None]:
    Chem = rdkit()
    if mol is None:
        return None, f"{row}: RDKit cannot read this record (a malformed molfile block)"
    try:
        Chem.SanitizeMol(mol)
        mol = Chem.RemoveHs(mol)
        return checked(mol, Chem.MolToSmiles(mol), row, standardize=standardize), None
    except ZooError as exc:
        return None, str(exc)
    except Exception as exc:  # RDKit's sanitization errors
        return None, f"{row}: not a valid molecule: {' '.join(str(exc).split())}"


def _numeric_properties(records: list[dict], path: Path) -> list[str]:
    names = sorted({name for record in records for name in record})
    numeric = [n for n in names if all(n in r and isinstance(r[n], (int, float)) and not isinstance(r[n], bool)
                                       for r in records)]
    if not numeric:
        raise InputError(f"{path}: no numeric property in every record (properties: {names}); name the targets "
                         "with target= (--set target=NAME)")
    return numeric


def _parse_all(smiles: list, rows: list[str], standardize: bool) -> tuple[list[Molecule | None], list[str | None]]:
    molecules, errors = [], []
    for text, row in zip(smiles, rows):
        try:
            molecules.append(parse_smiles(text, row, standardize=standardize))
            errors.append(None)
        except InputError as exc:
            molecules.append(None)
            errors.append(str(exc))
    return molecules, errors


def _require_targets(table: MoleculeTable, need_targets: bool) -> MoleculeTable:
    """A row whose targets are all missing teaches nothing: an error like an invalid molecule."""
    if need_targets and table.targets.shape[1]:
        for r in np.flatnonzero(np.isnan(table.targets).all(axis=1)):
            table.errors[r] = table.errors[r] or f"{table.rows[r]}: no target value (every target is missing)"
    return table


def _finish(table: MoleculeTable, skip_invalid: bool) -> MoleculeTable:
    """Raise on invalid rows (naming the first few), or keep them as ``None`` and count them."""
    bad = [r for r, error in enumerate(table.errors) if error is not None]
    if bad and not skip_invalid:
        shown = "; ".join(table.errors[r] for r in bad[:SHOWN_ERRORS])
        more = f" (and {len(bad) - SHOWN_ERRORS} more invalid rows)" if len(bad) > SHOWN_ERRORS else ""
        raise InputError(f"{shown}{more}; fix them, or pass skip_invalid=true (--set skip_invalid=true) to "
                         "leave them out, counted")
    for r in bad:
        table.molecules[r] = None
    table.report.update({"rows": len(table), "invalid_rows": len(bad),
                         "invalid": [table.errors[r] for r in bad[:20]],
                         **canonical_counts(table.molecules)})
    return table
