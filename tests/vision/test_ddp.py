"""DDP with gloo on CPU through the CLI: ``zoo finetune --nproc 2`` trains the digits CNN as well as one process."""
import json
import os
import subprocess
import sys

import pytest


def finetune(out, *extra):
    command = [sys.executable, "-m", "zoo", "finetune", "vision/digits_cnn.sklearn", "--data", "vision/digits",
               "--scratch", "--epochs", "4", "--set", "augment=none", "--out", str(out), *extra]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.mark.slow
def test_two_gloo_processes_reach_the_single_process_accuracy(tmp_path):
    # The batch size is per process (as torchrun users expect): two processes of 32 make the one's 64.
    finetune(tmp_path / "one", "--set", "train.batch_size=64")
    ddp = finetune(tmp_path / "two", "--nproc", "2", "--set", "train.batch_size=32")
    assert ddp.stdout.count("model written to") == 1  # rank 0 reports, once
    cards = {name: json.loads((tmp_path / name / "card.json").read_text()) for name in ("one", "two")}
    accuracy = {name: next(m["value"] for m in card["metrics"] if m["name"] == "accuracy" and m["split"] == "test")
                for name, card in cards.items()}
    assert cards["two"]["provenance"]["recipe"]["params"]["train"]["device"] in ("cpu", "auto")
    events = [json.loads(line) for line in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert events, "rank 0 wrote no metrics"
    assert accuracy["one"] > 0.9 and abs(accuracy["two"] - accuracy["one"]) < 0.05, accuracy
