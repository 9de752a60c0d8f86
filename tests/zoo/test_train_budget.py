"""The Trainer's wall-time budget (TrainConfig.max_minutes), on the toy domain's MLP, timed by a fake clock."""
from __future__ import annotations

import json

import pytest
import torch

from backends.state import load_state
from tests.zoo.test_train import edit_trainer_json, reseal
from tests.zoo.toy import IN_FEATURES, tiny_mlp
from zoo.card import ModelCard
from zoo.checkpoint import list_checkpoints
from zoo.errors import CheckpointError, InputError
from zoo.train import TrainConfig, Trainer

STEPS_PER_EPOCH = 8  # 64 examples in batches of 8


class FakeClock:
    """Seconds that move only when told: each optimizer step "takes" one minute (a callback advances it)."""

    def __init__(self, start: float = 1000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def tick(self, trainer, event) -> None:
        self.now += 60.0


class ToyModel(torch.nn.Module):
    """The toy MLP with the zoo.Model duck type (``card``, ``save``), so the run ends as a model folder."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = tiny_mlp()
        self.card = ModelCard(id="toy/mlp.budget", domain="toy", task="toy-classification", architecture="tiny_mlp")

    def forward(self, x):
        return self.net(x)

    def save(self, directory):
        from backends.state import save_state

        save_state(self.net.state_dict(), directory / "weights.safetensors")
        self.card.save(directory)


def toy_data(n: int, seed: int) -> torch.utils.data.TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, IN_FEATURES, generator=g)
    return torch.utils.data.TensorDataset(x, (x.sum(1) > 0).long() + (x[:, 0] > 1).long())


def trainer(out_dir, clock: FakeClock, minutes: float | None, crash_at: int | None = None, **config) -> Trainer:
    def crash(trainer, event):
        if event["step"] == crash_at:
            raise KeyboardInterrupt("stopped from outside")

    settings = dict(epochs=3, batch_size=8, lr=1e-2, progress=False, device="cpu", deterministic=True,
                    log_every_steps=0, max_minutes=minutes)
    return Trainer(ToyModel(), toy_data(64, 0), toy_data(16, 1), config=TrainConfig(**{**settings, **config}),
                   out_dir=out_dir, clock=clock, callbacks=[clock.tick, crash])


def final_weights(out_dir) -> dict:
    return load_state(list_checkpoints(out_dir)[-1] / "model.safetensors")


def test_the_budget_ends_training_at_the_first_step_past_it_and_scores_and_saves_as_a_normal_end(tmp_path):
    result = trainer(tmp_path, FakeClock(), minutes=5.5).fit()
    assert result.out_of_time and not result.stopped_early
    # Steps 1-5 leave 0.5 minutes; step 6 crosses the budget, so the run ends there, mid-epoch 0.
    events = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert events == result.history
    assert [(e["epoch"], e["step"], e.get("stopped")) for e in events] == [(0, 6, "max_minutes")]
    assert "val_loss" in events[0]
    assert result.best_metrics["step"] == 6
    card = json.loads((tmp_path / "card.json").read_text())
    assert card["provenance"]["train"]["stopped_by_budget"] is True
    assert card["provenance"]["train"]["minutes"] == 6.0
    assert card["provenance"]["train"]["config"]["max_minutes"] == 5.5
    assert (tmp_path / "weights.safetensors").is_file()


def test_without_a_budget_or_with_a_large_one_the_run_goes_to_its_epochs(tmp_path):
    for name, minutes in (("none", None), ("large", 1000.0)):
        result = trainer(tmp_path / name, FakeClock(), minutes=minutes).fit()
        assert not result.out_of_time
        assert [e["step"] for e in result.history if e["event"] == "eval"] == [8, 16, 24]
        assert all("stopped" not in e for e in result.history)
    card = json.loads((tmp_path / "large" / "card.json").read_text())
    assert card["provenance"]["train"]["stopped_by_budget"] is False
    unbounded = json.loads((tmp_path / "none" / "card.json").read_text())["provenance"]["train"]
    assert unbounded["minutes"] == 24.0 and "stopped_by_budget" not in unbounded  # 24 steps of the fake clock


def test_a_resume_gets_the_budget_its_checkpoint_had_left_and_ends_where_one_run_ends(tmp_path):
    whole = trainer(tmp_path / "whole", FakeClock(), minutes=10.5, checkpoint_every_steps=3).fit()
    with pytest.raises(KeyboardInterrupt):
        trainer(tmp_path / "cut", FakeClock(), minutes=10.5, crash_at=7, checkpoint_every_steps=3).fit()
    assert list_checkpoints(tmp_path / "cut")[-1].name == "step-00000006"  # 6 minutes spent, 4.5 left
    # A clock that reads something else entirely: only the time spent since the resume counts.
    resumed = trainer(tmp_path / "cut", FakeClock(start=-5e6), minutes=10.5, checkpoint_every_steps=3).fit(resume=True)
    assert resumed.out_of_time and whole.out_of_time
    assert resumed.history == whole.history
    assert resumed.history[-1]["step"] == 11  # epoch 0's end at step 8, then out of time at step 11
    first, second = final_weights(tmp_path / "whole"), final_weights(tmp_path / "cut")
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_a_larger_budget_on_resume_goes_on_from_the_place_the_budget_stopped(tmp_path):
    stopped = trainer(tmp_path, FakeClock(), minutes=5.5).fit()
    again = trainer(tmp_path, FakeClock(), minutes=5.5).fit(resume=True)
    assert again.out_of_time and again.history == stopped.history  # spent already: trains no more
    more = trainer(tmp_path, FakeClock(), minutes=12.5).fit(resume=True)
    steps = [(e["epoch"], e["step"]) for e in more.history if e["event"] == "eval"]
    assert steps == [(0, 6), (0, 8), (1, 13)]  # epoch 0 finished from batch 6, then 13 minutes > 12.5
    trainer(tmp_path / "straight", FakeClock(), minutes=12.5).fit()
    first, second = final_weights(tmp_path), final_weights(tmp_path / "straight")
    assert all(torch.equal(first[k], second[k]) for k in first)  # an evaluation in between changes no weight


def test_a_budget_must_be_positive_and_a_damaged_time_in_a_checkpoint_is_refused(tmp_path):
    with pytest.raises(InputError, match="max_minutes"):
        TrainConfig(max_minutes=0)
    trainer(tmp_path, FakeClock(), minutes=5.5).fit()
    checkpoint = list_checkpoints(tmp_path)[-1]
    edit_trainer_json(checkpoint, lambda state: state.update(train_seconds=-1.0))
    reseal(checkpoint)  # as a forger would: the manifest passes, the field's check must catch it
    with pytest.raises(CheckpointError, match="train_seconds"):
        trainer(tmp_path, FakeClock(), minutes=9.0).fit(resume=True)
