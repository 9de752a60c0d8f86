"""DDP with gloo on CPU: a killed two-process run resumes to the same weights as an uninterrupted one.

``zoo finetune --nproc 2`` end to end runs on the digits CNN, in the vision tests (test_ddp.py)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from backends.state import load_state
from zoo.checkpoint import list_checkpoints

REPO = Path(__file__).resolve().parents[2]


def two_processes(out, *extra):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "tests.zoo.ddp_run", str(out), *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_killed_two_process_run_resumes_to_the_uninterrupted_weights(tmp_path):
    # 512 blobs / 2 ranks / batch 16: 16 steps an epoch; step 20 dies two steps after checkpoint step-18.
    whole = two_processes(tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr[-3000:]
    killed = two_processes(tmp_path / "killed", "20")
    assert killed.returncode != 0, "the run meant to be killed finished"
    assert not (tmp_path / "killed" / "weights.safetensors").exists()  # it did die before the end
    assert list_checkpoints(tmp_path / "killed")[-1].name == "step-00000018"
    resumed = two_processes(tmp_path / "killed", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    a, b = (load_state(tmp_path / run / "weights.safetensors") for run in ("whole", "killed"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "whole" / "metrics.jsonl").read_text() == (tmp_path / "killed" / "metrics.jsonl").read_text()
