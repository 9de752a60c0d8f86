"""The long fuzz campaign: every reader of untrusted input, many fresh random examples.

Runs the property tests in ``tests/fuzz/`` under the ``campaign`` Hypothesis profile
(fresh randomness, no fixed seed), spreading ``--examples`` over the tests, and
writes ``benchmarks/results/fuzz.json``: examples per reader (counted by the
harness, one per call), the tests that failed (failures must be 0) and wall time.
CI runs the same tests with a small fixed-seed profile.

    python -m benchmarks.fuzz [--examples 100000] [--workers 2] [-k EXPR] [--smoke]

``--workers N`` splits the tests over N pytest processes (one core each).
"""
from __future__ import annotations

import argparse
import collections
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from benchmarks.load_overhead import write, zoo_env

ROOT = Path(__file__).resolve().parent.parent


def collect(select: str | None) -> list[str]:
    """Node ids of the fuzz tests (``-k`` applied)."""
    args = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests/fuzz"]
    listing = subprocess.run(args + (["-k", select] if select else []), cwd=ROOT, capture_output=True, text=True)
    return [line for line in listing.stdout.splitlines() if re.match(r"tests/fuzz/\S+::", line)]


def failures(junit: Path) -> list[dict]:
    """Failed or erroring tests in a JUnit report, with the first line of their message."""
    rows = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        for outcome in ("failure", "error"):
            node = case.find(outcome)
            if node is not None:
                message = (node.get("message") or "").splitlines()[:1]
                rows.append({"test": f"{case.get('classname')}::{case.get('name')}", "outcome": outcome,
                             "message": message[0][:300] if message else ""})
    return rows


def _start(tests: list[str], prefix: Path, env: dict) -> tuple[subprocess.Popen, Path, Path]:
    """One pytest process over ``tests``; returns it with the paths of its example counts and JUnit report."""
    stats, junit = prefix.with_suffix(".stats.json"), prefix.with_suffix(".junit.xml")
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}", *tests]
    return subprocess.Popen(command, cwd=ROOT, env={**env, "ZOO_FUZZ_STATS": str(stats)}), stats, junit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=100_000, help="total examples over all fuzz tests")
    parser.add_argument("--workers", type=int, default=1, help="pytest processes to split the tests over")
    parser.add_argument("-k", dest="select", help="pytest -k expression to run some tests only")
    parser.add_argument("--smoke", action="store_true", help="a few examples, result in fuzz.smoke.json")
    args = parser.parse_args()
    examples = 200 if args.smoke else args.examples
    tests = collect(args.select)
    if not tests:
        sys.exit("no fuzz tests collected under tests/fuzz")
    per_test = math.ceil(examples / len(tests))
    env_info = zoo_env()  # the commit the examples ran on, read before later commits can move HEAD
    env = {**os.environ, "ZOO_FUZZ_PROFILE": "campaign", "ZOO_FUZZ_EXAMPLES": str(per_test)}
    shares = [tests[i::args.workers] for i in range(min(args.workers, len(tests)))]
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        runs = [_start(share, Path(tmp) / f"worker{i}", env) for i, share in enumerate(shares)]
        per_reader, failed = collections.Counter(), []
        for process, stats, junit in runs:
            process.wait()
            per_reader.update(json.loads(stats.read_text()) if stats.exists() else {})
            failed += failures(junit) if junit.exists() else [{"test": "pytest", "outcome": f"exit {process.returncode}"}]
        wall_s = time.perf_counter() - start
    write({
        "benchmark": "fuzz.smoke" if args.smoke else "fuzz",
        "command": "python -m benchmarks.fuzz " + " ".join(sys.argv[1:]),
        "tests": len(tests),
        "examples_per_test": per_test,
        "workers": len(shares),
        "examples_per_reader": dict(sorted(per_reader.items())),
        "examples_total": sum(per_reader.values()),
        "failures": len(failed),
        "failed": failed,
        "wall_s": round(wall_s, 1),
        "env": env_info,
    })
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
