"""Start-up cost: ``zoo list`` wall time (target < 0.5 s) and ``import zoo``, beside a bare interpreter.

Each command runs as a fresh process, alternating, ``--repeats`` times; medians reported.

    python -m benchmarks.cli_startup [--repeats 15]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from benchmarks.load_overhead import write, zoo_env

COMMANDS = {
    "python -c pass (reference)": [sys.executable, "-c", "pass"],
    "python -c 'import zoo'": [sys.executable, "-c", "import zoo"],
    "python -c 'import torch' (for scale)": [sys.executable, "-c", "import torch"],
    "zoo list": [sys.executable, "-m", "zoo", "list"],
}


def wall(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    for command in COMMANDS.values():  # warm the page cache and .pyc files
        wall(command)
    times = {name: [] for name in COMMANDS}
    for _ in range(args.repeats):
        for name, command in COMMANDS.items():
            times[name].append(wall(command))
    medians = {name: round(statistics.median(values), 4) for name, values in times.items()}
    reference = medians["python -c pass (reference)"]
    write({
        "benchmark": "cli_startup",
        "repeats": args.repeats,
        "median_s": medians,
        "import_zoo_over_interpreter_s": round(medians["python -c 'import zoo'"] - reference, 4),
        "zoo_list_s": medians["zoo list"],
        "target": "zoo list < 0.5 s",
        "env": zoo_env(),
    })


if __name__ == "__main__":
    main()
