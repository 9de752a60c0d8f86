"""zoo.runs: the run-folder state the Trainer and the PPO/SAC loops share."""
from __future__ import annotations

import json

import pytest

from tests.zoo.test_checkpoint import save
from zoo.errors import CheckpointError
from zoo.runs import METRICS_FILE, MetricsLog, check_same_run, find_checkpoint


def test_a_fresh_run_refuses_a_folder_with_checkpoints_and_a_resume_finds_them(tmp_path):
    assert find_checkpoint(tmp_path, False) is None  # nothing there: a fresh run
    assert find_checkpoint(tmp_path, True) is None  # --resume with nothing to resume starts fresh
    first, second = save(tmp_path, 1, keep=2), save(tmp_path, 2, keep=2)
    with pytest.raises(CheckpointError, match=r"already holds checkpoints of a run \(newest: step-00000002\); "
                                              r"resume it \(`zoo finetune ... --resume`; in Python resume=True\)"):
        find_checkpoint(tmp_path, False)
    assert find_checkpoint(tmp_path, True) == second
    assert find_checkpoint(tmp_path, str(first)) == first


def test_a_resume_with_other_settings_names_each_difference(tmp_path):
    saved = {"lr": 0.1, "hidden": [64, 64], "seed": 0}
    check_same_run(tmp_path, saved, {"lr": 0.1, "hidden": (64, 64), "seed": 0})  # tuples compare as JSON lists
    check_same_run(tmp_path, saved, {"lr": 0.1, "seed": 1}, keys=["lr"])  # only the keys that matter
    with pytest.raises(CheckpointError, match=r"different recipe \(lr: checkpoint 0.1, now 0.2; "
                                              r"seed: checkpoint 0, now 1\); resuming would not continue"):
        check_same_run(tmp_path, saved, {"lr": 0.2, "hidden": (64, 64), "seed": 1}, what="recipe")


def test_the_metrics_log_restarts_from_a_checkpoint_history(tmp_path, capsys):
    log = MetricsLog(tmp_path, echo=True)
    log.restart([])
    log.log({"step": 1, "loss": 0.5})
    log.log({"step": 2, "loss": 0.25})
    assert "step 2  loss 0.25" in capsys.readouterr().out
    again = MetricsLog(tmp_path)
    again.restart(log.history[:1])  # the checkpoint was taken after step 1: step 2 is logged again
    again.log({"step": 2, "loss": 0.3})
    lines = [json.loads(line) for line in (tmp_path / METRICS_FILE).read_text().splitlines()]
    assert lines == again.history == [{"step": 1, "loss": 0.5}, {"step": 2, "loss": 0.3}]
    quiet = MetricsLog(tmp_path / "rank1", write=False)  # a DDP rank other than 0 keeps the history only
    quiet.restart([])
    quiet.log({"step": 1})
    assert quiet.history == [{"step": 1}] and not (tmp_path / "rank1").exists()

