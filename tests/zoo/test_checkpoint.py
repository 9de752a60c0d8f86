"""zoo.checkpoint: save, load, verify and prune training checkpoints, without a Trainer."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from backends.seed import rng_state
from zoo.checkpoint import (
    checkpoints_dir,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
    verify_checkpoint,
)
from zoo.errors import CheckpointError


def tiny_state():
    """A model and optimizer state after one Adam step (so the optimizer has tensors to flatten)."""
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 3)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    net(torch.ones(2, 4)).sum().backward()
    optimizer.step()
    return net, optimizer


def save(out_dir: Path, step: int, keep: int = 1, rng: dict | None = None, **state) -> Path:
    net, optimizer = tiny_state()
    return save_checkpoint(out_dir, step, model=net.state_dict(), optimizer=optimizer.state_dict(), rng=rng or rng_state(),
                           state={"step": step, "epoch": 0, "batch": step, **state}, keep=keep)


def test_save_then_load_gives_back_model_optimizer_rng_and_state(tmp_path):
    net, optimizer = tiny_state()
    rng = rng_state()
    path = save(tmp_path, 3, rng=rng, note="hello")
    assert path == tmp_path / "checkpoints" / "step-00000003" and latest_checkpoint(tmp_path) == path
    loaded = load_checkpoint(path, expected_model=net.state_dict(), fields={"note": str})
    assert all(torch.equal(loaded.model[k], v) for k, v in net.state_dict().items())
    restored = torch.optim.Adam(torch.nn.Linear(4, 3).parameters(), lr=1e-2)
    restored.load_state_dict(loaded.optimizer)
    assert torch.equal(restored.state_dict()["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"])
    assert torch.equal(loaded.rng["torch"], rng["torch"])
    assert (loaded.rng["python"], loaded.rng["numpy"]) == (rng["python"], rng["numpy"])
    assert (loaded.state["step"], loaded.state["note"]) == (3, "hello")


def test_state_that_is_not_json_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(TypeError):
        save(tmp_path, 1, note=object())
    assert list_checkpoints(tmp_path) == [] and not any((tmp_path / "checkpoints").iterdir())


@pytest.mark.parametrize("name", ["model.safetensors", "optimizer.safetensors", "rng.safetensors", "trainer.json"])
def test_verify_catches_one_flipped_byte_in_any_file(tmp_path, name):
    path = save(tmp_path, 1)
    verify_checkpoint(path)
    data = bytearray((path / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (path / name).write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=name):
        verify_checkpoint(path)


def test_manifest_edited_to_match_breaks_its_seal(tmp_path):
    checkpoint = save(tmp_path, 1)
    trainer = json.loads((checkpoint / "trainer.json").read_text())
    trainer["epoch"] += 1
    (checkpoint / "trainer.json").write_text(json.dumps(trainer))
    manifest = json.loads((checkpoint / "manifest.json").read_text())
    manifest["files"]["trainer.json"] = hashlib.sha256((checkpoint / "trainer.json").read_bytes()).hexdigest()
    (checkpoint / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="manifest.json is corrupt or was edited"):
        load_checkpoint(checkpoint)


def test_a_load_error_names_the_intact_checkpoints_and_changes_nothing(tmp_path):
    older = save(tmp_path, 1, keep=2)
    newer = save(tmp_path, 2, keep=2)
    (newer / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match=f"intact checkpoints still there .*{older}"):
        load_checkpoint(newer)
    assert (newer / "model.safetensors").read_bytes() == b"garbage"


def test_a_model_of_other_keys_or_shapes_is_refused(tmp_path):
    path = save(tmp_path, 1)
    with pytest.raises(CheckpointError):
        load_checkpoint(path, expected_model=torch.nn.Linear(4, 5).state_dict())
    with pytest.raises(CheckpointError):
        load_checkpoint(path, fields={"note": str})


@pytest.mark.parametrize("keep, kept", [(1, [4]), (2, [3, 4]), (9, [1, 2, 3, 4])])
def test_saving_prunes_to_the_newest_keep(tmp_path, keep, kept):
    for step in (1, 2, 3, 4):
        save(tmp_path, step, keep=keep)
    assert [int(p.name.removeprefix("step-")) for p in list_checkpoints(tmp_path)] == kept


def test_stale_temp_folders_of_a_killed_save_are_removed_on_the_next(tmp_path):
    save(tmp_path, 1)
    stale = tmp_path / "checkpoints" / ".tmp-step-00000002-99999"
    stale.mkdir()
    save(tmp_path, 2)
    assert not stale.exists()


def test_latest_falls_back_to_the_newest_folder_and_refuses_a_bad_pointer(tmp_path):
    assert latest_checkpoint(tmp_path) is None
    save(tmp_path, 1, keep=2)
    newest = save(tmp_path, 2, keep=2)
    (tmp_path / "checkpoints" / "latest").unlink()
    assert latest_checkpoint(tmp_path) == newest
    (tmp_path / "checkpoints" / "latest").write_bytes(b"../../etc\n")
    with pytest.raises(CheckpointError, match="not a checkpoint directory"):
        latest_checkpoint(tmp_path)


def test_a_file_where_the_checkpoints_folder_goes_is_refused(tmp_path):
    (tmp_path / "checkpoints").write_text("not a folder")
    with pytest.raises(CheckpointError, match="checkpoints is a file, not a directory"):
        checkpoints_dir(tmp_path)
