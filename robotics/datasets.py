"""Demonstration datasets: episodes recorded from any policy, stored as Parquet + JSON (no pickle).

A dataset is a directory::

    meta.json      format_version, env_id, spaces, episodes, frames, the sha256 of data.parquet
                   (its fingerprint), and how it was recorded
    data.parquet   one row per transition, in LeRobot's spirit:
                   episode_index, frame_index, observation.state, action, reward, terminated, truncated
                   (and, for expert navigation episodes, the episode's generating ``seed`` and its
                   ``success`` flag, repeated on each of its rows)

Writes are atomic (a temp directory renamed into place). :func:`load` treats a
dataset as untrusted: it checks the fingerprint, the metadata's spaces, each column's
type, nulls and list lengths, finite values, actions inside the action space and the
episode index (any problem is an InputError), and reads format version 0 (the
layout before terminated/truncated were split: ``episode, step, obs, action,
reward, done``) by migrating it.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from zoo.errors import InputError

FORMAT_VERSION = 1
READS = (0, 1)
META_FILE = "meta.json"
DATA_FILE = "data.parquet"
COLUMNS = ("episode_index", "frame_index", "observation.state", "action", "reward", "terminated", "truncated")
V0_COLUMNS = ("episode", "step", "obs", "action", "reward", "done")
EPISODE_COLUMNS = ("seed", "success")  # optional: per-episode facts of expert recordings


@dataclass
class Demonstrations:
    """A loaded dataset: one row per transition (arrays), plus its metadata."""

    episode_index: np.ndarray
    frame_index: np.ndarray
    observations: np.ndarray  # [N, obs_dim] float32
    actions: np.ndarray  # [N] int64 (discrete) or [N, action_dim] float32
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    meta: dict[str, Any]
    seed: np.ndarray | None = None  # the seed each row's episode was reset with, where recorded
    success: np.ndarray | None = None  # whether each row's episode reached its goal, where recorded

    def __len__(self) -> int:
        return len(self.rewards)

    @property
    def env_id(self) -> str:
        return self.meta["env_id"]

    @property
    def discrete(self) -> bool:
        return self.meta["action_space"]["type"] == "Discrete"

    def episode_returns(self) -> np.ndarray:
        """The return of each episode, in episode order."""
        return np.bincount(self.episode_index, weights=self.rewards)


def record(policy, env_id: str, path: str | os.PathLike, *, episodes: int = 10, seed: int = 0,
           overwrite: bool = False) -> Path:
    """Roll ``policy`` out for ``episodes`` episodes (episode ``i`` reset with ``seed + i``) and write them.

    ``policy`` is a loaded policy (``zoo.load(...)``; the env must be one it was trained
    for) or a function from a batch of observations to actions. Nothing is written
    unless the whole dataset is.
    """
    import pyarrow as pa

    from robotics.envs import describe_spaces, make_env
    from robotics.tasks import run_episodes

    path = Path(path)
    if path.exists() and not overwrite:
        raise InputError(f"{path} exists; choose another path or pass overwrite=True")
    act: Callable = policy
    initial_state = None
    source = getattr(policy, "card", None)
    if source is not None:
        from robotics.envs import check_env

        check_env(source, env_id)
        act, initial_state = policy.act, policy.initial_state(episodes)
    rows: dict[str, list] = {name: [] for name in COLUMNS}

    def on_step(episode, frame, obs, action, reward, terminated, truncated):
        for name, value in zip(COLUMNS, (episode, frame, np.asarray(obs, np.float32), action, reward,
                                         terminated, truncated)):
            rows[name].append(value)

    rollout = run_episodes(act, env_id, episodes, seed, on_step=on_step, initial_state=initial_state)
    env = make_env(env_id)
    spaces = describe_spaces(env)
    env.close()
    order = np.lexsort((rows["frame_index"], rows["episode_index"]))  # episodes ran side by side
    table = pa.table({
        "episode_index": pa.array(np.asarray(rows["episode_index"], np.int64)[order]),
        "frame_index": pa.array(np.asarray(rows["frame_index"], np.int64)[order]),
        "observation.state": _fixed_size_list(np.stack(rows["observation.state"])[order]),
        "action": _action_column(np.asarray(rows["action"])[order], spaces["action_space"]),
        "reward": pa.array(np.asarray(rows["reward"], np.float64)[order]),
        "terminated": pa.array(np.asarray(rows["terminated"], bool)[order]),
        "truncated": pa.array(np.asarray(rows["truncated"], bool)[order]),
    })
    meta = {
        "format_version": FORMAT_VERSION,
        "env_id": env_id,
        **spaces,
        "episodes": episodes,
        "frames": table.num_rows,
        "columns": list(COLUMNS),
        "recorded_by": {"policy": source.id if source is not None else getattr(policy, "__name__", "callable"),
                        "seed": seed, "episodes": episodes},
        "returns": rollout.returns.round(6).tolist(),
    }
    return write(table, meta, path, overwrite=overwrite)


def write(table, meta: dict[str, Any], path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write ``table`` and ``meta`` (its fingerprint added) as a dataset directory, atomically."""
    import pyarrow.parquet as pq

    from zoo.cache import sha256_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp-"))
    try:
        pq.write_table(table, tmp / DATA_FILE)
        meta = {**meta, "fingerprint": sha256_file(tmp / DATA_FILE)}
        (tmp / META_FILE).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        if path.exists():
            if not overwrite:
                raise InputError(f"{path} exists; choose another path or pass overwrite=True")
            aside = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, aside)
            os.replace(tmp, path)
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def load(path: str | os.PathLike) -> Demonstrations:
    """Read and check a dataset directory (format version 0 or 1); InputError says what is wrong."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from zoo.cache import sha256_file

    path = Path(path)
    meta_file, data_file = path / META_FILE, path / DATA_FILE
    if not meta_file.is_file() or not data_file.is_file():
        raise InputError(f"expected a dataset directory with {META_FILE} and {DATA_FILE} at {path}, "
                         f"found {sorted(p.name for p in path.iterdir()) if path.is_dir() else 'no directory'}")
    meta = _read_meta(meta_file)
    version = meta.get("format_version", meta.get("version"))
    if isinstance(version, bool) or version not in READS:
        raise InputError(f"{path} is a dataset of format version {version!r}; this code reads versions "
                         f"{', '.join(map(str, READS))} (a newer domain-zoo wrote it? upgrade to read it)")
    actual = sha256_file(data_file)
    if meta.get("fingerprint") != actual:
        raise InputError(f"{data_file} does not match the fingerprint in {META_FILE} "
                         f"(expected {meta.get('fingerprint')}, got {actual}): modified or truncated")
    try:
        table = pq.read_table(data_file)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{data_file} is not a readable Parquet file ({type(exc).__name__}: {exc})") from None
    if version == 0:
        table, meta = _migrate_v0(table, meta, path)
    discrete = meta["action_space"]["type"] == "Discrete"
    _check_columns(table, data_file, {**COLUMN_TYPES, "action": _is_integer if discrete else _is_number_list})
    extras = [name for name in EPISODE_COLUMNS if name in table.column_names]
    _check_columns(table, data_file, {name: EPISODE_COLUMN_TYPES[name] for name in extras})
    demos = Demonstrations(
        episode_index=table["episode_index"].to_numpy().astype(np.int64),
        frame_index=table["frame_index"].to_numpy().astype(np.int64),
        observations=_stacked(table["observation.state"]).astype(np.float32),
        actions=_actions(table["action"], meta["action_space"]),
        rewards=table["reward"].to_numpy().astype(np.float64),
        terminated=table["terminated"].to_numpy(zero_copy_only=False).astype(bool),
        truncated=table["truncated"].to_numpy(zero_copy_only=False).astype(bool),
        meta=meta,
        seed=table["seed"].to_numpy().astype(np.int64) if "seed" in extras else None,
        success=table["success"].to_numpy(zero_copy_only=False).astype(bool) if "success" in extras else None,
    )
    _check(demos, path)
    return demos


def _read_meta(meta_file: Path) -> dict[str, Any]:
    """``meta.json`` as a dict whose spaces are a 1-D Box or Discrete (what the loader relies on)."""
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise InputError(f"{meta_file} is not valid UTF-8 JSON ({type(exc).__name__}: {exc})") from None
    if not isinstance(meta, dict):
        raise InputError(f"{meta_file} must hold a JSON object, got {type(meta).__name__}")
    if not isinstance(meta.get("env_id"), str):
        raise InputError(f"{meta_file} must name its environment as a string env_id, got {meta.get('env_id')!r}")
    observation, action = meta.get("observation_space"), meta.get("action_space")
    if not (isinstance(observation, dict) and _is_shape(observation.get("shape"))):
        raise InputError(f"{meta_file}: observation_space must be an object with a shape of one positive integer, "
                         f"got {observation!r}")
    box = isinstance(action, dict) and action.get("type") == "Box" and _is_shape(action.get("shape"))
    discrete = isinstance(action, dict) and action.get("type") == "Discrete" and _is_count(action.get("n"))
    if not (box or discrete):
        raise InputError(f"{meta_file}: action_space must be a Discrete space with n >= 1 or a Box with a shape "
                         f"of one positive integer, got {action!r}")
    return meta


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _is_shape(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 1 and _is_count(value[0])


def _is_integer(kind) -> bool:
    import pyarrow as pa

    return pa.types.is_integer(kind)


def _is_number(kind) -> bool:
    import pyarrow as pa

    return pa.types.is_integer(kind) or pa.types.is_floating(kind)


def _is_boolean(kind) -> bool:
    import pyarrow as pa

    return pa.types.is_boolean(kind)


def _is_number_list(kind) -> bool:
    import pyarrow as pa

    lists = pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)
    return lists and _is_number(kind.value_type)


EPISODE_COLUMN_TYPES = {"seed": _is_integer, "success": _is_boolean}
COLUMN_TYPES = {"episode_index": _is_integer, "frame_index": _is_integer, "observation.state": _is_number_list,
                "reward": _is_number, "terminated": _is_boolean, "truncated": _is_boolean}


def _check_columns(table, data_file: Path, expected: dict[str, Callable]) -> None:
    """Each expected column present, of its kind, without nulls, and a list column of one length throughout."""
    import pyarrow.compute as pc

    missing = [c for c in expected if c not in table.column_names]
    if missing:
        raise InputError(f"{data_file} lacks column(s) {missing}; it has {table.column_names}")
    if table.num_rows == 0:
        raise InputError(f"{data_file} holds no transitions")
    for name, is_kind in expected.items():
        column = table[name]
        if not is_kind(column.type):
            raise InputError(f"{data_file}: column {name!r} has the wrong type {column.type}")
        values = column.combine_chunks()
        if hasattr(values, "flatten"):  # a list column: every row the same length, no empty lists
            lengths = pc.list_value_length(values).to_numpy(zero_copy_only=False)
            if lengths.min() != lengths.max() or lengths.min() < 1:
                raise InputError(f"{data_file}: column {name!r} holds lists of lengths {lengths.min()} to "
                                 f"{lengths.max()}; expected one fixed length >= 1")
            values = values.flatten()
        if column.null_count or values.null_count:
            raise InputError(f"{data_file}: column {name!r} has missing (null) values")


def _check(demos: Demonstrations, path: Path) -> None:
    """Episodes are contiguous blocks numbered 0, 1, ... with frames 0, 1, ... and finite values."""
    episodes, frames = demos.episode_index, demos.frame_index
    if len(demos) == 0:
        raise InputError(f"{path} holds no transitions")
    starts = np.flatnonzero(np.r_[True, episodes[1:] != episodes[:-1]])  # row 0 starts one, whatever its number
    expected_frames = np.arange(len(demos)) - np.repeat(starts, np.diff(np.append(starts, len(demos))))
    if not np.array_equal(episodes[starts], np.arange(len(starts))):
        raise InputError(f"{path}: broken episode index: episodes must be contiguous blocks numbered 0, 1, ...; "
                         f"found blocks {episodes[starts][:10].tolist()}...")
    bad = np.flatnonzero(frames != expected_frames)
    if bad.size:
        i = bad[0]
        raise InputError(f"{path}: broken frame index in episode {episodes[i]}: row {i} has frame_index "
                         f"{frames[i]}, expected {expected_frames[i]}")
    for name in EPISODE_COLUMNS:
        values = getattr(demos, name)
        if values is not None and (values != values[starts].repeat(np.diff(np.append(starts, len(demos))))).any():
            raise InputError(f"{path}: column {name!r} changes within an episode; it holds one value per episode")
    if demos.meta.get("episodes") not in (None, len(starts)):
        raise InputError(f"{path}: {META_FILE} says {demos.meta['episodes']} episodes, the data holds {len(starts)}")
    obs_shape = tuple(demos.meta["observation_space"]["shape"])
    if demos.observations.shape[1:] != obs_shape:
        raise InputError(f"{path}: observation.state has shape {demos.observations.shape[1:]}, "
                         f"the observation space {obs_shape}")
    if not (np.isfinite(demos.observations).all() and np.isfinite(demos.actions).all()
            and np.isfinite(demos.rewards).all()):
        raise InputError(f"{path}: observations, actions or rewards hold NaN or infinite values")
    space = demos.meta["action_space"]
    if demos.discrete and not ((demos.actions >= 0) & (demos.actions < space["n"])).all():
        raise InputError(f"{path}: discrete actions must lie in [0, {space['n']}), found {demos.actions.min()} "
                         f"to {demos.actions.max()}")
    if not demos.discrete and demos.actions.shape[1:] != tuple(space["shape"]):
        raise InputError(f"{path}: action has shape {demos.actions.shape[1:]}, the action space {tuple(space['shape'])}")


def _migrate_v0(table, meta: dict[str, Any], path: Path):
    """Version 0 → 1: renamed columns; ``done`` split into terminated / truncated by the time limit."""
    import pyarrow as pa

    from robotics.envs import make_env

    import gymnasium

    missing = [c for c in V0_COLUMNS if c not in table.column_names]
    if missing:
        raise InputError(f"{path} (format version 0) lacks column(s) {missing}; it has {table.column_names}")
    _check_columns(table, path / DATA_FILE, {"episode": _is_integer, "step": _is_integer, "done": _is_boolean})
    if meta["env_id"] not in gymnasium.registry:  # make_env would import a "module:Env" id's module
        raise InputError(f"{path}: {META_FILE} names the environment {meta['env_id']!r}, which gymnasium does not "
                         "register; migrating format version 0 needs its time limit")
    env = make_env(meta["env_id"])
    limit = env.spec.max_episode_steps
    env.close()
    done = table["done"].to_numpy(zero_copy_only=False).astype(bool)
    at_limit = table["step"].to_numpy() + 1 == limit
    migrated = pa.table({
        "episode_index": table["episode"], "frame_index": table["step"], "observation.state": table["obs"],
        "action": table["action"], "reward": table["reward"],
        "terminated": pa.array(done & ~at_limit), "truncated": pa.array(done & at_limit),
    })
    return migrated, {**meta, "format_version": FORMAT_VERSION, "migrated_from": 0, "columns": list(COLUMNS)}


def _fixed_size_list(array: np.ndarray):
    import pyarrow as pa

    return pa.FixedSizeListArray.from_arrays(pa.array(array.reshape(-1)), array.shape[1])


def _action_column(actions: np.ndarray, space: dict[str, Any]):
    import pyarrow as pa

    if space["type"] == "Discrete":
        return pa.array(actions.astype(np.int64))
    return _fixed_size_list(actions.astype(np.float32).reshape(len(actions), -1))


def _stacked(column) -> np.ndarray:
    """A list column as a 2-D array (one row per transition)."""
    values = column.combine_chunks()
    return np.asarray(values.flatten().to_numpy(zero_copy_only=False)).reshape(len(values), -1)


def _actions(column, space: dict[str, Any]) -> np.ndarray:
    if space["type"] == "Discrete":
        return column.to_numpy().astype(np.int64)
    return _stacked(column).astype(np.float32)


def record_expert(env_id: str, path: str | os.PathLike, *, episodes: int = 10, seed: int = 0,
                  overwrite: bool = False, driver=None) -> Path:
    """Record ``episodes`` episodes of ``env_id``'s scripted expert (robotics.experts), episode ``i``
    reset with ``seed + i``, observations flattened by robotics.observations; each row also
    carries its episode's ``seed`` and ``success``. Nothing is written unless the whole dataset is.

    With ``driver`` (a loaded policy for ``env_id``) the driver acts, deterministically, and the
    expert only labels: each row's action is the expert's in the state the driver reached, and
    ``success`` is the driver's (DAgger's data, Ross et al. 2011). An episode the expert cannot
    follow further ends at its last labelled row, marked truncated."""
    import pyarrow as pa

    from robotics.envs import check_env, describe_spaces, make_env
    from robotics.experts import ExpertLost, expert_for
    from robotics.navigation import policy_actor
    from robotics.observations import observation_spec

    path = Path(path)
    if path.exists() and not overwrite:
        raise InputError(f"{path} exists; choose another path or pass overwrite=True")
    if episodes < 1:
        raise InputError(f"episodes must be >= 1, got {episodes}")
    make_expert = expert_for(env_id)
    if driver is not None:
        check_env(driver.card, env_id)
        make_driver = policy_actor(driver)
    rows: dict[str, list] = {name: [] for name in COLUMNS + EPISODE_COLUMNS}
    successes = []
    for episode in range(episodes):
        env = make_env(env_id)
        spec, spaces = observation_spec(env.observation_space), describe_spaces(env)
        obs, _ = env.reset(seed=seed + episode)
        expert, frames, done, success = make_expert(env), 0, False, False
        drive = make_driver(env) if driver is not None else None
        while not done:
            try:
                label = expert(obs)
            except ExpertLost:
                rows["truncated"][-1] = True  # the driver's first action cannot lose the expert: a row exists
                break
            action = label if drive is None else drive(obs)
            if drive is not None and hasattr(expert, "took"):
                expert.took(action)
            next_obs, reward, terminated, truncated, info = env.step(action)
            success = bool(info["success"]) if "success" in info else bool(terminated and reward > 0)
            for name, value in zip(COLUMNS, (episode, frames, spec.flatten(obs), label, reward, terminated,
                                             truncated)):
                rows[name].append(value)
            obs, frames, done = next_obs, frames + 1, terminated or truncated
        env.close()
        rows["seed"] += [seed + episode] * frames
        rows["success"] += [success] * frames
        successes.append(success)
    table = pa.table({
        "episode_index": pa.array(np.asarray(rows["episode_index"], np.int64)),
        "frame_index": pa.array(np.asarray(rows["frame_index"], np.int64)),
        "observation.state": _fixed_size_list(np.stack(rows["observation.state"])),
        "action": _action_column(np.asarray(rows["action"]), spaces["action_space"]),
        "reward": pa.array(np.asarray(rows["reward"], np.float64)),
        "terminated": pa.array(np.asarray(rows["terminated"], bool)),
        "truncated": pa.array(np.asarray(rows["truncated"], bool)),
        "seed": pa.array(np.asarray(rows["seed"], np.int64)),
        "success": pa.array(np.asarray(rows["success"], bool)),
    })
    meta = {
        "format_version": FORMAT_VERSION,
        "env_id": env_id,
        **spaces,
        "episodes": episodes,
        "frames": table.num_rows,
        "columns": list(COLUMNS + EPISODE_COLUMNS),
        "recorded_by": {"policy": f"robotics.experts.{make_expert.__name__}", "seed": seed, "episodes": episodes,
                        **({"driver": driver.card.id} if driver is not None else {})},
        "success_rate": float(np.mean(successes)),
    }
    return write(table, meta, path, overwrite=overwrite)


def _recorded_once(name: str, record_into: Callable[[Path], Any]) -> Path:
    """``ZOO_HOME/datasets/robotics/NAME``, recorded by ``record_into(path)`` the first time it is asked for."""
    from zoo.cache import zoo_home

    path = zoo_home() / "datasets" / "robotics" / name
    if not (path / META_FILE).is_file():
        try:
            record_into(path)
        except InputError:
            if not (path / META_FILE).is_file():  # another process may have written it meanwhile
                raise
    return path


def cartpole_expert() -> Path:
    """``robotics/cartpole-v1.ppo-expert``: recorded from the bundled PPO policy on first use, then cached."""
    from zoo.hub import load as load_model

    def record_into(path: Path) -> None:
        expert = load_model("robotics/mlp_categorical.ppo_cartpole_v1", device="cpu")
        record(expert, "CartPole-v1", path, episodes=20, seed=1000)

    return _recorded_once("cartpole-v1.ppo-expert", record_into)


def pointmaze_umaze_expert() -> Path:
    """``robotics/pointmaze_umaze_expert``: 100 PointMaze_UMaze-v3 episodes (seeds 1000-1099) of the planner expert."""
    return _recorded_once("pointmaze_umaze_expert",
                          lambda path: record_expert("PointMaze_UMaze-v3", path, episodes=100, seed=1000))


def pointmaze_medium_expert() -> Path:
    """``robotics/pointmaze_medium_expert``: 300 PointMaze_Medium-v3 episodes (seeds 1000-1299) of the planner expert
    (about 30,000 frames, half a minute to record on first use)."""
    return _recorded_once("pointmaze_medium_expert",
                          lambda path: record_expert("PointMaze_Medium-v3", path, episodes=300, seed=1000))


def babyai_gotolocal_expert() -> Path:
    """``robotics/babyai_gotolocal_expert``: 100 BabyAI-GoToLocal-v0 episodes (seeds 1000-1099) of ``BabyAIBot``."""
    return _recorded_once("babyai_gotolocal_expert",
                          lambda path: record_expert("BabyAI-GoToLocal-v0", path, episodes=100, seed=1000))


def babyai_gotolocal_expert_5k() -> Path:
    """``robotics/babyai_gotolocal_expert_5k``: 5,000 BabyAI-GoToLocal-v0 episodes (seeds 1000-5999) of
    ``BabyAIBot``, the most demonstrations issue 18's BC target allows (about 29,000 frames; a few minutes to
    record on first use)."""
    return _recorded_once("babyai_gotolocal_expert_5k",
                          lambda path: record_expert("BabyAI-GoToLocal-v0", path, episodes=5000, seed=1000))
