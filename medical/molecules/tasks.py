"""The ``molecular-property`` task adapter: SMILES (or a molecule file) in, a value per target out.

``model.predict(["CCO", "c1ccccc1O"])`` gives, per molecule, ``{"input", "smiles" (canonical),
TARGET: value..., "error"}``: regression values in the target's own units (the card's target
scaling undone), classification targets as probabilities. An invalid SMILES is marked (its
values ``None``, ``error`` saying why), never dropped, so outputs stay row for row with inputs.
A CSV/TSV/SDF file read by ``read`` is predicted as one table, and ``write`` saves it as CSV:
the file's own columns, then the predictions, every input row kept.
"""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from medical.molecules.featurize import Featurizer
from medical.molecules.tables import MOLECULE_SUFFIXES, TABLE_DELIMITERS, MoleculeTable, from_smiles, read_molecules
from zoo.atomic import write_text_atomic
from zoo.card import ModelCard
from zoo.errors import BackendError, InputError
from zoo.model import TaskAdapter

PREDICT_BATCH = 256


class MolecularProperty(TaskAdapter):
    """SMILES strings (or :class:`MoleculeTable` s read from files) in; per molecule ``{target: value}`` out."""

    literal_inputs = True  # `zoo predict ID "CCO"`: an argument naming no file is the SMILES itself
    output_suffixes = (".csv",)

    def __init__(self, card: ModelCard, files: Mapping[str, Path] | None = None):
        super().__init__(card, files)
        self.preprocessing = card.preprocessing
        self.featurizer = Featurizer(self.preprocessing)
        named = len(self.featurizer.descriptors["names"]) if self.featurizer.descriptors else 0
        if named != int(card.arch_args.get("num_descriptors", 0)):
            raise InputError(f"{card.id}: the network reads {card.arch_args.get('num_descriptors', 0)} descriptors, "
                             f"its card's preprocessing names {named}")
        self.targets = list(card.labels or [])
        scaling = self.preprocessing.get("target_scaling") or {}
        self.kind = self.preprocessing.get("task_type", "regression")
        self.mean = np.asarray(scaling.get("mean", [0.0] * len(self.targets)), dtype=np.float64)
        self.std = np.asarray(scaling.get("std", [1.0] * len(self.targets)), dtype=np.float64)
        # "raw": scaled values or logits, undone here; "unscaled"/"probabilities": an ensemble did it per member
        self.network_outputs = self.preprocessing.get("network_outputs", "raw")

    def example_inputs(self) -> list[Any]:
        """None to give: a batch is a graph of a batch's molecules, indexed by atom and bond (no fixed shape)."""
        raise BackendError(f"{self.card.id}: molecular-property models run on the torch backend only; their "
                           "inputs are molecule graphs, which the ONNX and torch-compile conversions do not take yet")

    @property
    def transform(self):
        return self.featurizer

    def read(self, path: str | os.PathLike) -> MoleculeTable:
        """A CSV/TSV file with a SMILES column, or an SDF file: every row, invalid ones marked."""
        if Path(path).suffix.lower() not in MOLECULE_SUFFIXES:
            raise InputError(f"expected a molecule file ({', '.join(MOLECULE_SUFFIXES)}) for task "
                             f"{self.card.task!r}, or SMILES strings; got {Path(path).name}")
        return read_molecules(path, standardize=self.standardize, skip_invalid=True, need_targets=False)

    @property
    def standardize(self) -> bool:
        return bool(self.preprocessing.get("standardize", True))

    def predict(self, module: torch.nn.Module, raw_inputs: Sequence[Any], *, device: torch.device,
                batch_size: int = PREDICT_BATCH) -> list[Any]:
        """SMILES → one dict each; a :class:`MoleculeTable` → one ``{"file", "molecules", "invalid", "predictions"}``."""
        smiles = [item for item in raw_inputs if not isinstance(item, MoleculeTable)]
        singles = iter(self.predict_table(module, self._smiles_table(smiles), device, batch_size) if smiles else [])
        out = []
        for item in raw_inputs:
            if isinstance(item, MoleculeTable):
                rows = self.predict_table(module, item, device, batch_size)
                out.append({"file": item.source, "molecules": len(rows),
                            "invalid": sum(row["error"] is not None for row in rows), "predictions": rows})
            else:
                out.append(next(singles))
        return out

    def _smiles_table(self, smiles: list[Any]) -> MoleculeTable:
        table = from_smiles(smiles, standardize=self.standardize, skip_invalid=True)
        for row, text in enumerate(smiles):  # a mistyped file name reaches us as text: say what it likely is
            if table.molecules[row] is None and isinstance(text, str) and text.lower().endswith(MOLECULE_SUFFIXES):
                table.errors[row] = f"no such molecule file: {text} (nor is it a SMILES)"
        return table

    def predict_table(self, module: torch.nn.Module, table: MoleculeTable, device: torch.device,
                      batch_size: int = PREDICT_BATCH) -> list[dict[str, Any]]:
        """One prediction dict per row of ``table``, in order; invalid rows marked."""
        valid = table.valid()
        values = np.full((len(table), len(self.targets)), np.nan)
        for start in range(0, len(valid), batch_size):
            rows = valid[start : start + batch_size]
            batch = self.featurizer.collate([self.featurizer(table.molecules[r].mol) for r in rows])
            outputs = module(**{k: v.to(device) for k, v in batch.items()})
            values[rows] = self.postprocess(outputs)
        predictions = []
        for r in range(len(table)):
            molecule = table.molecules[r]
            row = {"input": table.smiles[r], "smiles": molecule.smiles if molecule else None}
            row.update({name: None if molecule is None else float(values[r, t]) for t, name in enumerate(self.targets)})
            row["error"] = table.errors[r] if molecule is None else None
            predictions.append(row)
        return predictions

    def postprocess(self, outputs: torch.Tensor) -> np.ndarray:
        """Network outputs ``[molecules, targets]`` → values in the targets' units (probabilities for classification)."""
        raw = outputs.detach().float().cpu().numpy().astype(np.float64)
        if self.network_outputs != "raw":
            return raw
        if self.kind == "classification":
            return 1.0 / (1.0 + np.exp(-raw))
        return raw * self.std + self.mean

    def describe(self, prediction: Any, top_k: int = 1) -> str:
        """``logS -0.7712 (CCO)``, ``invalid: ...``, or a table's count of molecules."""
        if "predictions" in prediction:
            return (f"{prediction['molecules']} molecules ({prediction['invalid']} invalid, marked); "
                    "write them all with --out FILE.csv")
        if prediction["error"]:
            return f"invalid: {prediction['error']}"
        values = ", ".join(f"{name} {prediction[name]:.4f}" for name in self.targets)
        return f"{values} ({prediction['smiles']})"

    def write(self, prediction: Any, path: str | os.PathLike, *, source: str | os.PathLike | None = None) -> Path:
        """A CSV: the source file's own columns (a CSV/TSV) or its SMILES, then ``smiles`` (canonical), the
        predicted targets and ``error``; one row per input row, in order."""
        rows = prediction["predictions"] if "predictions" in prediction else [prediction]
        header, cells = self._source_columns(rows, source if "predictions" in prediction else None)
        names = [f"{name}_predicted" if name in header else name for name in self.targets]
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow([*header, "canonical_smiles", *names, "error"])
        for original, row in zip(cells, rows):
            writer.writerow([*original, row["smiles"] or "", *("" if row[t] is None else repr(row[t]) for t in
                                                                self.targets), row["error"] or ""])
        path = Path(path)
        write_text_atomic(path, buffer.getvalue())
        return path

    def _source_columns(self, rows: list[dict], source) -> tuple[list[str], list[list[str]]]:
        """The input's own columns to write back: a CSV/TSV's header and cells, else the given SMILES."""
        if source is not None and Path(source).suffix.lower() in TABLE_DELIMITERS:
            from zoo.data import read_delimited

            header, body = read_delimited(Path(source).read_text(encoding="utf-8-sig"), source,
                                          TABLE_DELIMITERS[Path(source).suffix.lower()])
            if len(body) == len(rows):
                return header, [cells for _, cells in body]
            raise InputError(f"{source} changed while predicting: {len(body)} rows now, {len(rows)} predicted")
        return ["input"], [[row["input"]] for row in rows]
