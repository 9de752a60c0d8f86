"""The zoo's errors: each says what was expected, what came, and what to do."""
from __future__ import annotations

import difflib


class ZooError(Exception):
    """Base of every error the zoo raises on purpose (the CLI prints these as one line)."""


class UnknownModelError(ZooError, KeyError):
    """An id that no registered spec, prefix or local directory matches."""

    def __init__(self, model_id: str, known: list[str], kind: str = "model"):
        self.model_id = model_id
        self.suggestions = difflib.get_close_matches(model_id, known, n=5, cutoff=0.5)
        # Also suggest ids sharing the architecture name, which difflib can miss.
        stem = model_id.split("/")[-1].split(".")[0]
        self.suggestions += [k for k in known if stem and stem in k and k not in self.suggestions][:5]
        listing = "zoo list --datasets" if kind == "dataset" else "zoo list"
        hint = f"; did you mean: {', '.join(self.suggestions)}?" if self.suggestions else f"; run `{listing}` to see them"
        if kind not in ("model", "dataset"):  # suites, tasks, recipes: few enough to name them all
            hint = f"; known {kind}s: {', '.join(known)}"
        super().__init__(f"unknown {kind} {model_id!r}{hint}")

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class UnknownDatasetError(UnknownModelError):
    """A ``--data`` value that is neither a registered dataset nor a file or folder."""

    def __init__(self, dataset_id: str, known: list[str]):
        super().__init__(dataset_id, known, kind="dataset")
        self.args = (f"no file or folder named {dataset_id!r}, and {self.args[0]}",)


class WeightsIntegrityError(ZooError):
    """A file whose digest (``kind``: sha256 unless the pin is of another kind) is not the pinned one."""

    def __init__(self, path: str, expected: str, actual: str, moved_to: str | None = None, kind: str = "sha256"):
        self.path, self.expected, self.actual, self.moved_to = path, expected, actual, moved_to
        where = f"; moved aside to {moved_to}" if moved_to else ""
        super().__init__(f"{kind} mismatch for {path}: expected {expected}, got {actual}{where}")


class OfflineError(ZooError):
    """Offline and the file is not cached."""


class UnsafeFormatError(ZooError):
    """A pickle (or other code-executing) file that no spec allowed."""


class InputError(ZooError, ValueError):
    """Bad input: the message says what was expected and what came."""


class CheckpointError(ZooError):
    """A checkpoint that cannot be resumed from."""


class DownloadError(ZooError):
    """A download that failed or was cut short."""


class BackendError(ZooError):
    """A model that cannot run on a backend: not convertible, or not matching eager PyTorch."""


class QualityLossError(BackendError):
    """A quantized model loses more quality on its labelled set than the model's tolerance allows."""
