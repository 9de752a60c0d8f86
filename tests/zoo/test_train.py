"""zoo.train: learning, accumulation, exact resume after SIGKILL, corrupt checkpoints, early stop, no pickle."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from torch import nn

from backends.state import load_state
from zoo.card import ModelCard
from zoo.checkpoint import list_checkpoints, load_checkpoint
from zoo.errors import CheckpointError
from zoo.train import TrainConfig, Trainer

REPO = Path(__file__).resolve().parents[2]


class Blobs(torch.utils.data.Dataset):
    """Three separable Gaussian blobs in 20-D; ``noise`` adds augmentation from the global RNG."""

    def __init__(self, n: int = 512, seed: int = 0, noise: float = 0.0):
        centers = torch.randn(3, 20, generator=torch.Generator().manual_seed(1234)) * 2
        g = torch.Generator().manual_seed(seed)
        self.y = torch.randint(0, 3, (n,), generator=g)
        self.x = centers[self.y] + torch.randn(n, 20, generator=g)
        self.noise = noise

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i):
        x = self.x[i]
        if self.noise:
            x = x + self.noise * torch.randn(20)  # consumes the global RNG, like real augmentation
        return x, self.y[i]


def mlp(dropout: float = 0.2, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Dropout(dropout), nn.Linear(32, 3))


class TinyZooModel(nn.Module):
    """Stand-in with the zoo.Model duck type: ``card`` and ``save(dir)``."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.card = ModelCard(id="test/mlp.blobs", domain="test", task="classification", architecture="mlp")

    def forward(self, x):
        return self.net(x)

    def save(self, directory):
        from backends.state import save_state

        save_state(self.net.state_dict(), Path(directory) / "weights.safetensors")
        self.card.save(directory)


def accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    return {"acc": (outputs.argmax(-1) == targets).float().mean().item()}


def run_training(out_dir: str, kill_at: int | None = None, resume: bool = False) -> dict:
    """The run test 3 executes in a subprocess; SIGKILLs itself after optimizer step ``kill_at``."""

    def killer(trainer, event):
        if event["step"] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    config = TrainConfig(
        epochs=3, batch_size=16, grad_accum_steps=2, lr=3e-3, deterministic=True,
        checkpoint_every_steps=3, log_every_steps=4, progress=False, device="cpu", ema_decay=0.9,
    )
    trainer = Trainer(
        mlp(), Blobs(noise=0.1), Blobs(128, seed=1), config=config, out_dir=out_dir,
        metrics_fn=accuracy, callbacks=[killer] if kill_at else (),
    )
    result = trainer.fit(resume=resume)
    return {"best_metrics": result.best_metrics, "history": result.history, "stopped_early": result.stopped_early}


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run faster on one thread, and a busy 2-core box makes a second one spin."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _config(**overrides) -> TrainConfig:
    base = dict(epochs=3, batch_size=32, lr=1e-2, progress=False, device="cpu", log_every_steps=5)
    return TrainConfig(**{**base, **overrides})


def _sha_tree(directory: Path) -> dict[str, str]:
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_training_learns_and_logs(tmp_path):
    model = TinyZooModel(mlp())
    config = _config(epochs=4, progress=True)
    trainer = Trainer(model, Blobs(), Blobs(128, seed=1), config=config, out_dir=tmp_path,
                      metrics_fn=accuracy, provenance={"recipe": "blobs"})
    result = trainer.fit()

    evals = [e for e in result.history if e["event"] == "eval"]
    assert len(evals) == 4
    assert evals[-1]["val_loss"] < evals[0]["val_loss"] and evals[-1]["train_loss"] < evals[0]["train_loss"]
    assert result.best_metrics["val_acc"] >= 0.95
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert lines == result.history
    assert any(e["event"] == "train" and {"step", "epoch", "loss", "lr"} <= e.keys() for e in lines)
    assert (tmp_path / "best" / "model.safetensors").is_file()
    # out_dir is a zoo model: card with training provenance, weights equal to the best ones.
    card = json.loads((tmp_path / "card.json").read_text())
    assert card["provenance"]["recipe"] == "blobs"
    assert card["provenance"]["train"]["best"]["val_acc"] == result.best_metrics["val_acc"]
    assert card["provenance"]["train"]["epochs_run"] == 4
    best = load_state(tmp_path / "best" / "model.safetensors")
    final = load_state(tmp_path / "weights.safetensors")
    assert all(torch.equal(best[f"net.{k}"], v) for k, v in final.items())
    # The schedule's state is plain JSON (no lambdas or functions inside).
    trainer_json = json.loads((result.last_checkpoint / "trainer.json").read_text())
    assert trainer_json["scheduler"]["lr_lambdas"][0]["kind"] == "cosine"


def test_grad_accumulation_matches_bigger_batch(tmp_path):
    data = Blobs(256)
    weights = []
    for name, batch, accum in (("a", 8, 2), ("b", 16, 1)):
        model = mlp(dropout=0.0)
        Trainer(model, data, config=_config(epochs=1, batch_size=batch, grad_accum_steps=accum),
                out_dir=tmp_path / name).fit()
        weights.append(model.state_dict())
    for key in weights[0]:
        torch.testing.assert_close(weights[0][key], weights[1][key], atol=1e-6, rtol=0)


def test_ema_is_what_is_evaluated_and_saved(tmp_path):
    plain, ema0, ema9 = mlp(dropout=0.0), mlp(dropout=0.0), mlp(dropout=0.0)
    results = {}
    for name, model, decay in (("plain", plain, None), ("ema0", ema0, 0.0), ("ema9", ema9, 0.9)):
        results[name] = Trainer(model, Blobs(), Blobs(128, seed=1), config=_config(epochs=2, ema_decay=decay),
                                out_dir=tmp_path / name, metrics_fn=accuracy).fit()
    # decay 0 averages nothing: the same run as without EMA.
    assert results["ema0"].best_metrics == results["plain"].best_metrics
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), ema0.state_dict().values()))
    # decay 0.9 keeps different weights, and the kept weights are the evaluated ones.
    assert not torch.equal(plain[0].weight, ema9[0].weight)
    best = load_state(tmp_path / "ema9" / "best" / "model.safetensors")
    assert all(torch.equal(best[k], v) for k, v in ema9.state_dict().items())


def test_exact_resume_after_sigkill(tmp_path):
    pythonpath = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": pythonpath, "OMP_NUM_THREADS": "1"}

    def run(out_dir, kill_at=None, resume=False):
        code = (
            "import json, sys; from tests.zoo.test_train import run_training; "
            f"print(json.dumps(run_training({str(out_dir)!r}, {kill_at!r}, {resume!r})))"
        )
        command = [sys.executable, "-c", code]
        return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)

    # The uninterrupted run and the one to be killed run side by side (2 cores).
    # 16 optimizer steps per epoch: step 20 is mid-epoch 1, two steps after checkpoint step-18.
    with ThreadPoolExecutor(2) as pool:
        uninterrupted = pool.submit(run, tmp_path / "a")
        killed = pool.submit(run, tmp_path / "b", kill_at=20)
        a, killed = uninterrupted.result(), killed.result()
    assert a.returncode == 0, a.stderr
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert [p.name for p in list_checkpoints(tmp_path / "b")][-1] == "step-00000018"
    b = run(tmp_path / "b", resume=True)
    assert b.returncode == 0, b.stderr

    assert json.loads(a.stdout) == json.loads(b.stdout)
    assert (tmp_path / "a" / "metrics.jsonl").read_text() == (tmp_path / "b" / "metrics.jsonl").read_text()
    for rel in ("weights.safetensors", "best/model.safetensors", "checkpoints/step-00000048/model.safetensors"):
        wa, wb = load_state(tmp_path / "a" / rel), load_state(tmp_path / "b" / rel)
        assert wa.keys() == wb.keys()
        assert all(torch.equal(wa[k], wb[k]) for k in wa), rel


def test_corrupt_latest_checkpoint_is_reported_and_older_one_resumes(tmp_path):
    def trainer():
        return Trainer(mlp(), Blobs(256), Blobs(64, seed=1), config=_config(epochs=2), out_dir=tmp_path)

    trainer().fit()
    finished = load_state(tmp_path / "weights.safetensors")
    older, latest = list_checkpoints(tmp_path)
    assert (older.name, latest.name) == ("step-00000008", "step-00000016")
    model_file = latest / "model.safetensors"
    model_file.write_bytes(model_file.read_bytes()[:100])
    before = _sha_tree(tmp_path)

    with pytest.raises(CheckpointError) as info:
        trainer().fit(resume=True)
    message = str(info.value)
    assert str(latest) in message and "model.safetensors" in message and str(older) in message
    assert _sha_tree(tmp_path) == before  # nothing deleted or overwritten while failing
    with pytest.raises(CheckpointError, match="resume=True"):
        trainer().fit()  # a fresh run would clobber the checkpoints

    result = trainer().fit(resume=older)
    assert result.last_checkpoint == latest
    load_checkpoint(latest)  # rewritten, intact
    resumed = load_state(tmp_path / "weights.safetensors")
    assert all(torch.equal(finished[k], resumed[k]) for k in finished)


def test_early_stopping(tmp_path):
    config = _config(epochs=10, lr=0.0, early_stopping_patience=2)
    result = Trainer(mlp(), Blobs(128), Blobs(64, seed=1), config=config, out_dir=tmp_path).fit()
    assert result.stopped_early
    assert [e["epoch"] for e in result.history if e["event"] == "eval"] == [0, 1, 2]
    assert result.best_metrics["epoch"] == 0


def test_no_pickle_anywhere(tmp_path):
    config = _config(epochs=2, checkpoint_every_steps=2, keep_checkpoints=3)
    Trainer(TinyZooModel(mlp()), Blobs(128), Blobs(64, seed=1), config=config, out_dir=tmp_path).fit()
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "optimizer.safetensors" for p in files)
    assert len(list_checkpoints(tmp_path)) == 3
    for path in files:
        head = path.read_bytes()[:2]
        assert not head.startswith(b"\x80") and head != b"PK", path
