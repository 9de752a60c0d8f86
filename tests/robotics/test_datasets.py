"""Demonstration datasets: Parquet round trip, an older format read by migration, clear errors, atomic writes."""
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import zoo
from robotics import datasets


def zeros_policy(observations):
    return np.zeros((len(observations), 1), dtype=np.float32)


@pytest.fixture
def pendulum_demos(tmp_path):
    return datasets.record(zeros_policy, "Pendulum-v1", tmp_path / "demos", episodes=2, seed=0)


def test_record_and_load_round_trip(pendulum_demos):
    demos = datasets.load(pendulum_demos)
    meta = json.loads((pendulum_demos / "meta.json").read_text())
    assert meta["format_version"] == 1 and meta["env_id"] == "Pendulum-v1"
    assert meta["action_space"]["type"] == "Box" and meta["observation_space"]["shape"] == [3]
    assert len(demos) == meta["frames"] == 400
    assert demos.observations.shape == (400, 3) and demos.actions.shape == (400, 1)
    assert demos.truncated.sum() == 2 and not demos.terminated.any()  # time limit ends both episodes
    np.testing.assert_allclose(demos.episode_returns(), meta["returns"], rtol=1e-6)
    assert pq.read_schema(pendulum_demos / "data.parquet").names == list(datasets.COLUMNS)


def test_recorded_discrete_policy_matches_a_live_rollout(tmp_path):
    expert = zoo.load("robotics/mlp_categorical.ppo_cartpole_v1")
    demos = datasets.load(datasets.record(expert, "CartPole-v1", tmp_path / "d", episodes=1, seed=4))
    assert demos.actions.dtype == np.int64
    np.testing.assert_array_equal(expert.act(demos.observations), demos.actions)  # obs i → recorded action i
    assert demos.episode_returns()[0] == expert.rollout("CartPole-v1", episodes=1, seed=4).returns[0]


def write_v0(path, episodes=2, frames=200, limit=200):
    """A dataset as format version 0 wrote it: other column names, one ``done`` flag."""
    rows = episodes * frames
    table = pa.table({
        "episode": np.repeat(np.arange(episodes), frames),
        "step": np.tile(np.arange(frames), episodes),
        "obs": pa.FixedSizeListArray.from_arrays(pa.array(np.ones(rows * 3, np.float32)), 3),
        "action": pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(rows, np.float32)), 1),
        "reward": np.full(rows, -1.0),
        "done": np.tile(np.arange(frames) == frames - 1, episodes),
    })
    meta = {"version": 0, "env_id": "Pendulum-v1", "episodes": episodes,
            "observation_space": {"type": "Box", "shape": [3]}, "action_space": {"type": "Box", "shape": [1]}}
    return datasets.write(table, meta, path)


def test_format_version_0_is_migrated(tmp_path):
    demos = datasets.load(write_v0(tmp_path / "old"))
    assert demos.meta["migrated_from"] == 0 and len(demos) == 400
    assert demos.truncated.sum() == 2 and not demos.terminated.any()  # done at the 200-step limit = truncated


def test_a_newer_format_version_is_refused_with_the_reason(pendulum_demos):
    meta = json.loads((pendulum_demos / "meta.json").read_text())
    (pendulum_demos / "meta.json").write_text(json.dumps({**meta, "format_version": 7}))
    with pytest.raises(zoo.InputError, match="format version 7; this code reads versions 0, 1"):
        datasets.load(pendulum_demos)


def rewrite(path, table):
    meta = json.loads((path / "meta.json").read_text())
    meta.pop("fingerprint")
    return datasets.write(table, meta, path, overwrite=True)


def test_a_missing_column_is_named(pendulum_demos):
    table = pq.read_table(pendulum_demos / "data.parquet").drop_columns(["truncated"])
    with pytest.raises(zoo.InputError, match=r"lacks column\(s\) \['truncated'\]"):
        datasets.load(rewrite(pendulum_demos, table))


def test_a_broken_frame_index_is_located(pendulum_demos):
    table = pq.read_table(pendulum_demos / "data.parquet")
    frames = table["frame_index"].to_numpy().copy()
    frames[250] = 7
    table = table.set_column(1, "frame_index", pa.array(frames))
    with pytest.raises(zoo.InputError, match="broken frame index in episode 1: row 250 has frame_index 7, expected 50"):
        datasets.load(rewrite(pendulum_demos, table))


def test_interleaved_episodes_are_a_broken_episode_index(pendulum_demos):
    table = pq.read_table(pendulum_demos / "data.parquet")
    episodes = table["episode_index"].to_numpy().copy()
    episodes[10] = 1
    table = table.set_column(0, "episode_index", pa.array(episodes))
    with pytest.raises(zoo.InputError, match="broken episode index"):
        datasets.load(rewrite(pendulum_demos, table))


def test_a_modified_data_file_fails_its_fingerprint(pendulum_demos):
    table = pq.read_table(pendulum_demos / "data.parquet").slice(0, 100)
    pq.write_table(table, pendulum_demos / "data.parquet")
    with pytest.raises(zoo.InputError, match="does not match the fingerprint"):
        datasets.load(pendulum_demos)


def test_a_failed_recording_writes_nothing(tmp_path):
    calls = []

    def dies_midway(observations):
        calls.append(1)
        if len(calls) > 50:
            raise RuntimeError("policy crashed")
        return zeros_policy(observations)

    with pytest.raises(RuntimeError):
        datasets.record(dies_midway, "Pendulum-v1", tmp_path / "demos", episodes=1)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_dataset_is_not_overwritten_by_default(pendulum_demos):
    before = (pendulum_demos / "meta.json").read_text()
    with pytest.raises(zoo.InputError, match="exists"):
        datasets.record(zeros_policy, "Pendulum-v1", pendulum_demos, episodes=1)
    assert (pendulum_demos / "meta.json").read_text() == before


def test_recording_a_policy_in_an_env_it_was_not_trained_for_is_refused(tmp_path):
    with pytest.raises(zoo.InputError, match="trained for CartPole-v1, not for Acrobot-v1"):
        datasets.record(zoo.load("robotics/mlp_categorical.ppo_cartpole_v1"), "Acrobot-v1", tmp_path / "d", episodes=1)
    assert not (tmp_path / "d").exists()


# -- untrusted dataset files: typed errors, never another exception (issue 13) ----------
def replaced_column(path, name, array):
    table = pq.read_table(path / "data.parquet")
    return rewrite(path, table.set_column(table.column_names.index(name), name, array))


@pytest.mark.parametrize("name, make_array, message", [
    ("reward", lambda t: pa.array(np.where(np.arange(t.num_rows) == 5, np.nan, 1.0)), "rewards hold NaN"),
    ("reward", lambda t: pa.array(["x"] * t.num_rows), "column 'reward' has the wrong type string"),
    ("terminated", lambda t: pa.array(np.zeros(t.num_rows, np.int64)), "column 'terminated' has the wrong type"),
    ("episode_index", lambda t: pa.array([None] + [0] * (t.num_rows - 1), pa.int64()), "'episode_index' has missing"),
    ("observation.state", lambda t: pa.array([[0.0, 1.0, 2.0]] * (t.num_rows - 1) + [[0.0] * 5]),
     "'observation.state' holds lists of lengths 3 to 5"),
    ("observation.state", lambda t: pa.array([[0.0, None, 2.0]] * t.num_rows), "'observation.state' has missing"),
    ("action", lambda t: pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(2 * t.num_rows, np.float32)), 2),
     r"action has shape \(2,\), the action space \(1,\)"),
])
def test_bad_columns_are_input_errors(pendulum_demos, name, make_array, message):
    table = pq.read_table(pendulum_demos / "data.parquet")
    with pytest.raises(zoo.InputError, match=message):
        datasets.load(replaced_column(pendulum_demos, name, make_array(table)))


def test_a_garbled_parquet_file_with_a_matching_fingerprint_is_an_input_error(pendulum_demos):
    data = bytearray((pendulum_demos / "data.parquet").read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = b"\xff" * 64
    data[-12:-8] = b"\xff\xff\xff\x7f"  # the footer length
    (pendulum_demos / "data.parquet").write_bytes(bytes(data))
    meta = json.loads((pendulum_demos / "meta.json").read_text())
    meta["fingerprint"] = zoo.cache.sha256_file(pendulum_demos / "data.parquet")
    (pendulum_demos / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(zoo.InputError, match="not a readable Parquet file"):
        datasets.load(pendulum_demos)


@pytest.mark.parametrize("edit, message", [
    (lambda meta: [meta], "must hold a JSON object, got list"),
    (lambda meta: {**meta, "action_space": {"type": "Box"}}, "action_space must be"),
    (lambda meta: {**meta, "observation_space": {"shape": ["3"]}}, "observation_space must be"),
    (lambda meta: {**meta, "format_version": True}, "format version True"),
    (lambda meta: {**meta, "action_space": {"type": "Discrete", "n": 2}}, "column .action. has the wrong type fixed_size_list"),
])
def test_bad_metadata_is_an_input_error(pendulum_demos, edit, message):
    meta = json.loads((pendulum_demos / "meta.json").read_text())
    (pendulum_demos / "meta.json").write_text(json.dumps(edit(meta)))
    with pytest.raises(zoo.InputError, match=message):
        datasets.load(pendulum_demos)


def test_version_0_with_an_unregistered_env_is_refused_without_importing_it(tmp_path):
    path = write_v0(tmp_path / "old")
    meta = json.loads((path / "meta.json").read_text())
    (path / "meta.json").write_text(json.dumps({**meta, "env_id": "json:Evil-v0"}))
    with pytest.raises(zoo.InputError, match="which gymnasium does not register"):
        datasets.load(path)
