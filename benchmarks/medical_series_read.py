"""Reading a 200-slice 512×512 CT series: ``medical.read_series`` vs a plain pydicom loop, side by side.

The series is written by the phantom generator (CT Image Storage, explicit VR
little endian, file names in random order). The loop reads every file with
``pydicom.dcmread``, sorts by position along the slice normal, and stacks
``pixel_array × slope + intercept`` as float32 — what a script would do. Our
reader parses headers without pixels, checks the geometry, and reads the pixel
data by offset on a thread pool. Arms run interleaved after a warm-up, on the
same files (in the page cache for both). Target: throughput ratio >= 1.5.

    python -m benchmarks.medical_series_read [--repeats 5] [--workers N]
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom

from benchmarks.load_overhead import write, zoo_env
from medical.io.dicom import read_series
from medical.io.dicom_writer import write_ct_series
from medical.phantom import ct_phantom

SHAPE = (200, 512, 512)
SPACING = (1.25, 0.7, 0.7)


def pydicom_loop(folder: Path) -> np.ndarray:
    """Read, sort along the slice normal, stack and rescale: the plain way."""
    datasets = [pydicom.dcmread(path) for path in folder.iterdir()]
    orientation = np.asarray(datasets[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(orientation[:3], orientation[3:])
    datasets.sort(key=lambda ds: float(np.dot(np.asarray(ds.ImagePositionPatient, dtype=float), normal)))
    return np.stack([ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
                     for ds in datasets])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workers", type=int, default=None, help="reader threads (default: min(8, cpus + 2))")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "series"
        ct, _ = ct_phantom(0, shape=SHAPE, spacing=SPACING)
        write_ct_series(ct, folder, uid_seed="benchmark")
        size_mb = sum(p.stat().st_size for p in folder.iterdir()) / 1e6
        arms = {"medical.read_series": lambda: read_series(folder, workers=args.workers).array,
                "pydicom loop": lambda: pydicom_loop(folder)}
        results = {name: fn() for name, fn in arms.items()}  # warm-up, and both must agree
        assert np.array_equal(results["medical.read_series"], results["pydicom loop"]), "the arms read different volumes"
        assert np.array_equal(results["medical.read_series"], ct.array)
        times = {name: [] for name in arms}
        for _ in range(args.repeats):
            for name, fn in arms.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(values) for name, values in times.items()}
    result = {
        "benchmark": "medical_series_read",
        "series": {"slices": SHAPE[0], "rows": SHAPE[1], "columns": SHAPE[2], "files_mb": round(size_mb, 1),
                   "transfer_syntax": "explicit VR little endian"},
        "repeats": args.repeats,
        "workers": args.workers or min(8, (os.cpu_count() or 1) + 2),
        "median_s": {name: round(value, 4) for name, value in medians.items()},
        "slices_per_s": {name: round(SHAPE[0] / value, 1) for name, value in medians.items()},
        "ratio_throughput_ours_over_loop": round(medians["pydicom loop"] / medians["medical.read_series"], 3),
        "target": ">= 1.5",
        "env": zoo_env(),
    }
    write(result)


if __name__ == "__main__":
    main()
