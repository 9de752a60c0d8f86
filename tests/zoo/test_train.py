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
from zoo.errors import CheckpointError, InputError
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


@pytest.mark.slow
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
        return Trainer(mlp(), Blobs(256), Blobs(64, seed=1), config=_config(epochs=2, keep_checkpoints=2),
                       out_dir=tmp_path)

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


# --- checkpoint metadata: every file under the sealed manifest, typed fields --------------------


def reseal(checkpoint: Path) -> None:
    """Rewrite manifest.json for the files as they are now (what a deliberate forger would do)."""
    names = ("model.safetensors", "optimizer.safetensors", "rng.safetensors", "trainer.json")
    files = {name: hashlib.sha256((checkpoint / name).read_bytes()).hexdigest() for name in sorted(names)}
    body = {"format": 2, "files": files}
    seal = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    (checkpoint / "manifest.json").write_text(json.dumps({**body, "seal": seal}))


def edit_trainer_json(checkpoint: Path, edit) -> None:
    path = checkpoint / "trainer.json"
    trainer = json.loads(path.read_text())
    edit(trainer)
    path.write_text(json.dumps(trainer, indent=1))


def two_epoch_run(out_dir: Path):
    """A finished 2-epoch run; returns a factory for its Trainer and its checkpoints (after epoch 0, 1)."""
    def trainer():
        return Trainer(mlp(), Blobs(128), Blobs(64, seed=1), config=_config(epochs=2, keep_checkpoints=2),
                       out_dir=out_dir)

    trainer().fit()
    return trainer, list_checkpoints(out_dir)


def test_edited_epoch_in_trainer_json_is_detected_not_resumed_short(tmp_path):
    trainer, (after_epoch_0, _) = two_epoch_run(tmp_path)
    edit_trainer_json(after_epoch_0, lambda t: t.update(epoch=t["epoch"] + 1))
    before = _sha_tree(tmp_path)
    with pytest.raises(CheckpointError) as info:
        trainer().fit(resume=after_epoch_0)
    message = str(info.value)
    assert "trainer.json" in message and "manifest.json" in message
    assert "zoo finetune ... --resume PATH" in message  # the CLI form names the intact checkpoint to use
    assert _sha_tree(tmp_path) == before


@pytest.mark.parametrize("damage, expected", [
    (lambda c: (c / "manifest.json").unlink(), "older zoo"),
    (lambda c: (c / "manifest.json").write_bytes(b"[1, 2]"), "JSON list, not an object"),
    (lambda c: (c / "manifest.json").write_bytes(b"\xff\xfe"), "not valid JSON"),
    (lambda c: ((c / "rng.safetensors").unlink(), (c / "rng.safetensors").mkdir()), "rng.safetensors is missing"),
    (lambda c: ((c / "trainer.json").unlink(), (c / "trainer.json").symlink_to(c / "rng.safetensors")),
     "trainer.json is missing"),
], ids=["no-manifest", "manifest-list", "manifest-bytes", "file-is-dir", "symlink"])
def test_damaged_checkpoint_files_raise_checkpoint_error(tmp_path, damage, expected):
    trainer, (checkpoint, _) = two_epoch_run(tmp_path)
    damage(checkpoint)
    with pytest.raises(CheckpointError, match=expected):
        trainer().fit(resume=checkpoint)


def _delete(key):
    return lambda t: t.pop(key)


def _set(key, value):
    return lambda t: t.update({key: value})


@pytest.mark.parametrize("edit, expected", [
    (_set("epoch", "1"), "'epoch' must be int, got '1'"),
    (_set("epoch", -1), "'epoch' must not be negative"),
    (_set("step", 1.5), "'step' must be int"),
    (_set("batch", True), "'batch' must be int"),
    (_delete("batch"), "lacks \\['batch'\\]"),
    (_set("format", 1), "format 1"),
    (_set("history", {}), "'history' must be list"),
    (_set("scheduler", []), "'scheduler' must be dict"),
    (_set("best", "high"), "'best' must be float or int or null"),
    (_set("stopped_early", 0), "'stopped_early' must be bool"),
    (_delete("rank_rngs"), "lacks \\['rank_rngs'\\]"),
    (_set("optimizer", {"param_groups": "x", "scalars": {}}), "optimizer field 'param_groups' must be list"),
    (_set("rng", {"python": [], "numpy": [], "cuda_devices": -2}), "'cuda_devices' must not be negative"),
    (lambda t: t["optimizer"]["param_groups"].clear(), "different number of parameter groups"),
    (lambda t: t["optimizer"]["scalars"].update(x={}), "optimizer/rng entries are malformed"),
    (lambda t: t["rng"].update(python=[3, [1, 2], None]), "malformed RNG states"),
    (lambda t: t["scheduler"].update(base_lrs="x"), "scheduler.base_lrs is str 'x', expected list"),
    (lambda t: t["scaler"].update(scale="x"), "scaler has keys \\['scale'\\], expected \\[\\]"),
    (lambda t: t["config"].update(lr=99.0), "different run setup"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_wrong_fields_in_a_resealed_trainer_json_raise_checkpoint_error(tmp_path, edit, expected):
    trainer, (checkpoint, _) = two_epoch_run(tmp_path)
    edit_trainer_json(checkpoint, edit)
    reseal(checkpoint)
    with pytest.raises(CheckpointError, match=expected):
        trainer().fit(resume=checkpoint)


@pytest.mark.parametrize("resume", [False, True])
def test_a_file_named_checkpoints_is_refused_before_training(tmp_path, resume):
    (tmp_path / "checkpoints").write_text("not a folder")
    trainer = Trainer(mlp(), Blobs(128), None, config=_config(epochs=1), out_dir=tmp_path)
    with pytest.raises(CheckpointError, match="checkpoints is a file, not a directory"):
        trainer.fit(resume=resume)
    assert not (tmp_path / "metrics.jsonl").exists()  # refused before anything ran


@pytest.mark.parametrize("latest", [b"step-00000004/../..\n", b"\xff\xfe\n", b"../../etc\n"])
def test_latest_naming_something_else_is_refused(tmp_path, latest):
    trainer, _ = two_epoch_run(tmp_path)
    (tmp_path / "checkpoints" / "latest").write_bytes(latest)
    with pytest.raises(CheckpointError, match="not a checkpoint directory"):
        trainer().fit(resume=True)


@pytest.mark.parametrize("keep, kept", [(1, ["step-00000012"]), (2, ["step-00000009", "step-00000012"])])
def test_the_run_folder_holds_the_model_best_weights_and_the_newest_n_checkpoints(tmp_path, keep, kept):
    # 4 steps an epoch; checkpoints at steps 3, 4, 6, 8, 9 and 12.
    config = _config(epochs=3, checkpoint_every_steps=3, keep_checkpoints=keep)
    Trainer(TinyZooModel(mlp()), Blobs(128), Blobs(64, seed=1), config=config, out_dir=tmp_path).fit()
    assert [p.name for p in list_checkpoints(tmp_path)] == kept
    checkpoint_files = {"manifest.json", "model.safetensors", "optimizer.safetensors", "rng.safetensors",
                        "trainer.json"}
    expected = {"card.json", "weights.safetensors", "metrics.jsonl", "best/model.safetensors", "checkpoints/latest"}
    expected |= {f"checkpoints/{name}/{file}" for name in kept for file in checkpoint_files}
    assert {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()} == expected
    # Weights three times over plus, per checkpoint, weights and AdamW's two moments: nothing else of that size.
    model_bytes = (tmp_path / "weights.safetensors").stat().st_size
    total = sum(p.stat().st_size for p in tmp_path.rglob("*") if p.is_file())
    assert total < model_bytes * (2 + 3 * keep) + 64_000 * keep


def test_keep_checkpoints_below_one_is_refused():
    with pytest.raises(InputError, match=r"'keep_checkpoints' must be in \[1, inf\)"):
        _config(keep_checkpoints=0)


def test_a_run_keeping_one_checkpoint_resumes_exactly(tmp_path):
    class Crash(Exception):
        pass

    def crash_at_step_7(trainer, event):
        if event["step"] == 7:
            raise Crash

    def trainer(out_dir, callbacks=()):
        config = _config(epochs=3, checkpoint_every_steps=3, keep_checkpoints=1, deterministic=True)
        return Trainer(mlp(), Blobs(128), Blobs(64, seed=1), config=config, out_dir=out_dir,
                       callbacks=callbacks, metrics_fn=accuracy)

    whole = trainer(tmp_path / "whole").fit()
    with pytest.raises(Crash):
        trainer(tmp_path / "crashed", [crash_at_step_7]).fit()
    assert [p.name for p in list_checkpoints(tmp_path / "crashed")] == ["step-00000006"]
    resumed = trainer(tmp_path / "crashed").fit(resume=True)
    assert resumed.history == whole.history
    a, b = load_state(tmp_path / "whole" / "weights.safetensors"), load_state(tmp_path / "crashed" / "weights.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_progress_off_a_terminal_is_one_line_per_epoch_with_the_epoch_mean_loss_and_val_metrics(tmp_path, capsys):
    result = Trainer(mlp(), Blobs(128), Blobs(64, seed=1), config=_config(epochs=3, progress=True),
                     out_dir=tmp_path, metrics_fn=accuracy).fit()
    lines = capsys.readouterr().out.splitlines()
    evals = [e for e in result.history if e["event"] == "eval"]
    assert len(lines) == 3
    for index, (line, event) in enumerate(zip(lines, evals)):
        assert line.startswith(f"epoch {index + 1}/3  4/4 batches  train_loss {event['train_loss']:.4f}  ")
        assert f"val_loss {event['val_loss']:.4f}  val_acc {event['val_acc']:.4f}" in line
        assert float(line.split(" samples/s")[0].split()[-1].replace(",", "")) > 0 and "nan" not in line


def test_samples_per_batch_are_counted_for_every_input_shape():
    """The samples/s a run shows: a list of pictures (a detector's batch) counts its length, not the first
    picture's channels; text dicts and tuples count their first tensor's rows."""
    from zoo.train import _num_samples

    pictures = [torch.zeros(3, 8, 8) for _ in range(5)]
    assert _num_samples({"images": pictures, "targets": [{}] * 5}) == 5
    assert _num_samples(pictures) == 5
    assert _num_samples({"input_ids": torch.zeros(4, 9), "attention_mask": torch.zeros(4, 9)}) == 4
    assert _num_samples((torch.zeros(6, 3), torch.zeros(6))) == 6
    assert _num_samples(torch.zeros(7, 2)) == 7


class Patches(torch.utils.data.Dataset):
    """4×8×8 pictures whose class is the channel holding a bright square."""

    def __init__(self, n: int = 96, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.y = torch.randint(0, 4, (n,), generator=g)
        self.x = 0.1 * torch.randn(n, 4, 8, 8, generator=g)
        for i, label in enumerate(self.y):
            self.x[i, label, 2:6, 2:6] += 1.0

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def test_channels_last_trains_the_same_network_in_nhwc_memory(tmp_path):
    def cnn():
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                             nn.Flatten(), nn.Linear(8, 4))

    results, nets = {}, {}
    for name, channels_last in (("plain", False), ("nhwc", True)):
        nets[name] = cnn()
        results[name] = Trainer(nets[name], Patches(), Patches(32, seed=1), out_dir=tmp_path / name, metrics_fn=accuracy,
                                config=_config(epochs=8, lr=3e-2, channels_last=channels_last)).fit()
    conv = nets["nhwc"][0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert results["nhwc"].best_metrics["val_acc"] == results["plain"].best_metrics["val_acc"] >= 0.9
    # The same arithmetic in another memory order: the same network to float rounding.
    torch.testing.assert_close(nets["nhwc"][0].weight, nets["plain"][0].weight, rtol=1e-3, atol=1e-4)
    saved = load_state(tmp_path / "nhwc" / "best" / "model.safetensors")  # stored plainly contiguous
    assert all(tensor.is_contiguous() for tensor in saved.values())
