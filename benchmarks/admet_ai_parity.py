"""Our ADMET-AI ensembles (``medical/dmpnn.admet_ai_*``) against the ``admet_ai`` package's own predictions.

On the 257 molecules of the ``medical/solubility`` test file, every endpoint of both ensembles
(10 regression, 31 classification) from ``zoo.load(...).predict`` and from
``admet_ai.ADMETModel().predict`` (Chemprop v2 under Lightning, from the same wheel's checkpoints)
must agree: the largest absolute difference at most 1e-4. ADMET-AI was trained on data
including these molecules, so this measures parity only, never accuracy.

admet-ai pulls Chemprop and Lightning, so it goes into a throw-away virtual environment that
this script makes (``--venv``, with the system's packages: our torch and RDKit) and reruns
itself in; the checkpoints come to the zoo from the admet-ai wheel in ``$ZOO_WHEELHOUSE`` (or PyPI):

    python -m benchmarks.admet_ai_parity [--venv /tmp/admet-ai-venv]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

REQUIREMENT = "admet-ai==2.0.1"
TARGET = 1e-4


def in_venv(venv: Path) -> None:
    """Make the venv (once), install admet-ai there, and run the comparison in it."""
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", REQUIREMENT], check=True)
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    subprocess.run([str(python), "-m", "benchmarks.admet_ai_parity", "--inside"], check=True, cwd=root, env=env)


def compare() -> None:
    import time

    import numpy as np
    from admet_ai import ADMETModel

    import zoo
    from benchmarks.load_overhead import write, zoo_env
    from medical.molecules.datasets import solubility

    table = solubility().table
    smiles = [table.molecules[i].smiles for i in range(len(table)) if table.split[i] == "test"]
    start = time.perf_counter()
    theirs = ADMETModel(include_physchem=False, drugbank_path=None, num_workers=0).predict(smiles)
    their_seconds = time.perf_counter() - start
    differences, our_seconds = {}, 0.0
    for kind in ("regression", "classification"):
        start = time.perf_counter()
        model = zoo.load(f"medical/dmpnn.admet_ai_{kind}")
        rows = model.predict(smiles)
        our_seconds += time.perf_counter() - start
        for name in model.card.labels:
            ours = np.array([row[name] for row in rows], dtype=np.float64)
            differences[name] = float(np.abs(ours - theirs[name].to_numpy(dtype=np.float64)).max())
    worst = max(differences, key=differences.get)
    write({
        "benchmark": "admet_ai_parity",
        "admet_ai": REQUIREMENT,
        "molecules": len(smiles),
        "endpoints": len(differences),
        "max_abs_difference": differences[worst],
        "worst_endpoint": worst,
        "max_abs_difference_by_endpoint": differences,
        "seconds": {"admet_ai (load + predict, Lightning)": round(their_seconds, 2),
                    "zoo (load + predict, both ensembles)": round(our_seconds, 2)},
        "target": f"max_abs_difference <= {TARGET}",
        "ok": differences[worst] <= TARGET,
        "note": "ADMET-AI trained on data including these molecules: parity only, not held-out accuracy",
        "env": zoo_env(),
    })


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, default=Path("/tmp/admet-ai-venv"))
    parser.add_argument("--inside", action="store_true", help="already in a venv with admet-ai: compare")
    args = parser.parse_args()
    compare() if args.inside else in_venv(args.venv)


if __name__ == "__main__":
    main()
