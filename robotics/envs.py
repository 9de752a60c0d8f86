"""Environments: making them, describing their spaces, checking a policy fits one, and
:class:`SyncEnvs`, the vectorised environment the recipes train in.

Gymnasium is imported inside the functions: ``import robotics`` stays light.
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np

from zoo.errors import InputError

# The environments the domain documents and tests; any gymnasium id with Box observations works.
CLASSIC_CONTROL = ("CartPole-v1", "Acrobot-v1", "Pendulum-v1", "MountainCarContinuous-v0")
MUJOCO = ("InvertedPendulum-v5", "InvertedDoublePendulum-v5", "Reacher-v5", "Hopper-v5", "HalfCheetah-v5")
# Navigation: goal-conditioned mazes (gymnasium-robotics; sparse and dense rewards) and partially
# observed grid worlds (minigrid, BabyAI). Their Dict observations are flattened by robotics.observations.
POINTMAZE = ("PointMaze_UMaze-v3", "PointMaze_UMazeDense-v3", "PointMaze_Medium-v3", "PointMaze_MediumDense-v3")
MINIGRID = ("MiniGrid-DoorKey-8x8-v0", "MiniGrid-FourRooms-v0", "MiniGrid-MultiRoom-N4-S5-v1", "BabyAI-GoToLocal-v0")
# The package that registers each family of ids, and the keyword arguments the zoo makes them with:
# a maze episode ends when the goal is reached (gymnasium-robotics' default runs on to the time
# limit), so ``terminated`` is success, as in minigrid.
ENV_FAMILIES = {"PointMaze_": ("gymnasium_robotics", {"continuing_task": False}),
                "AntMaze_": ("gymnasium_robotics", {"continuing_task": False}),
                "MiniGrid-": ("minigrid", {}), "BabyAI-": ("minigrid", {})}


def make_env(env_id: str, render_mode: str | None = None):
    """``gymnasium.make(env_id)``, with an InputError naming known ids when it does not exist.

    ``render_mode="rgb_array"`` makes ``env.render()`` return frames; without a display, MuJoCo
    then draws through EGL (``MUJOCO_GL=egl``) unless ``MUJOCO_GL`` says otherwise.
    """
    import contextlib
    import importlib
    import io
    import os

    import gymnasium as gym

    if render_mode is not None and not os.environ.get("DISPLAY"):
        os.environ.setdefault("MUJOCO_GL", "egl")  # GLFW, MuJoCo's default, needs a display
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # pygame (classic control) would print an SDL error

    package, kwargs = next((family for prefix, family in ENV_FAMILIES.items() if env_id.startswith(prefix)),
                           (None, {}))
    if package is not None:
        try:
            # gymnasium-robotics prints a notice about its Adroit hands on import: not about our environments
            with contextlib.redirect_stderr(io.StringIO()):
                gym.register_envs(importlib.import_module(package))
        except ImportError:
            raise InputError(f"{env_id} needs the {package} package: pip install 'domain-zoo[robotics]'") from None
    try:
        # Only when asked: an environment that does not render need not take the argument
        env = gym.make(env_id, **kwargs, **({"render_mode": render_mode} if render_mode else {}))
    except gym.error.Error as exc:
        raise InputError(f"unknown or unavailable environment {env_id!r} ({exc}); "
                         f"e.g. {', '.join(CLASSIC_CONTROL + MUJOCO + POINTMAZE + MINIGRID)}") from None
    return _muted_resets(env) if env_id.startswith("BabyAI-") else env


def _muted_resets(env):
    """``env`` wrapped so that its resets print nothing: BabyAI prints a line for every mission it rejects
    while sampling one (``Sampling rejected: unreachable object at ...``), dozens a recording."""
    import contextlib
    import io

    import gymnasium as gym

    class MutedReset(gym.Wrapper):
        def reset(self, **kwargs):
            with contextlib.redirect_stdout(io.StringIO()):
                return self.env.reset(**kwargs)

    return MutedReset(env)


def describe_spaces(env) -> dict[str, Any]:
    """The observation and action spaces as JSON (for a card or a dataset's metadata).

    A ``Dict`` observation space is described as the flat Box it becomes (robotics.observations).
    """
    from gymnasium import spaces

    from robotics.observations import observation_spec

    observation = env.observation_space
    described = (observation_spec(observation).describe() if isinstance(observation, spaces.Dict)
                 else _describe(observation))
    return {"observation_space": described, "action_space": _describe(env.action_space)}


def _describe(space) -> dict[str, Any]:
    from gymnasium import spaces

    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n)}
    if isinstance(space, spaces.Box) and len(space.shape) == 1:
        return {"type": "Box", "shape": list(space.shape), "low": space.low.astype(float).tolist(),
                "high": space.high.astype(float).tolist(), "dtype": str(space.dtype)}
    raise InputError(f"only Discrete and 1-D Box spaces are supported, got {space}")


def policy_arch(env_id: str, algorithm: str, hidden: tuple[int, ...], activation: str = "tanh",
                log_std_init: float = 0.0, core_size: int = 128, channels: int = 128,
                memory: bool = False) -> tuple[str, dict[str, Any]]:
    """The architecture name and ``arch_args`` of a fresh ``algorithm`` policy for ``env_id``.

    A recurrent policy (``recurrent_ppo``) puts the encoder its observations declare
    (robotics.observations) before a GRU core of ``core_size``. Behaviour cloning (``bc``) on
    grid observations, which carry a mission, gets the FiLM policy (robotics.models.film) of
    ``channels``; with ``memory``, that FiLM encoder before a GRU core of ``core_size``, as the BabyAI baseline.
    """
    from robotics.observations import observation_spec

    env = make_env(env_id)
    spaces = describe_spaces(env)
    observations = observation_spec(env.observation_space)
    env.close()
    obs_dim = spaces["observation_space"]["shape"][0] if spaces["observation_space"]["type"] == "Box" else None
    if obs_dim is None:
        raise InputError(f"{env_id} has {spaces['observation_space']['type']} observations; policies take 1-D Box ones")
    action = spaces["action_space"]
    if algorithm == "recurrent_ppo":
        if action["type"] != "Discrete":
            raise InputError(f"recurrent PPO takes Discrete actions; {env_id} has {action['type']} ones: "
                             "use PPO or SAC")
        return "gru_categorical", {
            "obs_dim": obs_dim, "num_actions": action["n"], "encoder": observations.encoder,
            "observation_parts": [[name, list(shape)] for name, shape in observations.parts],
            "core_size": core_size, "hidden": list(hidden)}
    if memory and observations.kind != "grid":
        raise InputError(f"memory=True is for grid observations with a mission (BabyAI, MiniGrid); {env_id} has "
                         f"{observations.kind!r} ones")
    if algorithm == "bc" and observations.kind == "grid" and memory:
        return "gru_categorical", {
            "obs_dim": obs_dim, "num_actions": action["n"], "encoder": "film",
            "observation_parts": [[name, list(shape)] for name, shape in observations.parts],
            "core_size": core_size, "hidden": list(hidden), "channels": channels}
    if algorithm == "bc" and observations.kind == "grid":
        return "film_categorical", {
            "obs_dim": obs_dim, "num_actions": action["n"],
            "observation_parts": [[name, list(shape)] for name, shape in observations.parts],
            "channels": channels, "mission_size": channels, "hidden": list(hidden)}
    args: dict[str, Any] = {"obs_dim": obs_dim, "hidden": list(hidden), "activation": activation}
    if action["type"] == "Discrete":
        if algorithm == "sac":
            raise InputError(f"SAC needs continuous (Box) actions; {env_id} has Discrete({action['n']}): use PPO")
        return "mlp_categorical", {**args, "num_actions": action["n"]}
    args.update(action_dim=action["shape"][0], action_low=action["low"], action_high=action["high"])
    if algorithm == "sac":
        return "mlp_squashed_gaussian", args
    return "mlp_gaussian", {**args, "log_std_init": log_std_init}


def check_env(card, env_id: str, *, same_spaces_ok: bool = False) -> None:
    """Raise InputError unless the policy of ``card`` was trained for ``env_id``.

    ``same_spaces_ok`` also accepts another environment with identical spaces (training a
    policy further in a variant of its environment).
    """
    trained = card.input.get("env_ids", [])
    if env_id in trained:
        return
    if same_spaces_ok:
        env = make_env(env_id)
        spaces = describe_spaces(env)
        env.close()
        if spaces["observation_space"] == card.input.get("observation_space") and \
                spaces["action_space"] == card.input.get("action_space"):
            return
        raise InputError(f"policy {card.id} was trained for {', '.join(trained)}, whose spaces differ from "
                         f"{env_id}'s (observations {card.input.get('observation_space')} vs "
                         f"{spaces['observation_space']}, actions {card.input.get('action_space')} vs "
                         f"{spaces['action_space']})")
    raise InputError(f"policy {card.id} was trained for {', '.join(trained) or 'no recorded environment'}, "
                     f"not for {env_id}")


def has_physics_state(env) -> bool:
    """Whether :func:`env_state` can read ``env``'s state: classic control, MuJoCo and PointMaze. Other
    environments (grid worlds) resume by replaying their episode (:class:`SyncEnvs`)."""
    base = env.unwrapped
    return hasattr(getattr(base, "point_env", base), "set_state") or hasattr(base, "state")


def env_state(env) -> dict[str, Any]:
    """What continues an episode exactly: physics, step count and RNG (JSON-able, no pickle)."""
    base = env.unwrapped
    physics = getattr(base, "point_env", base)  # a PointMaze simulates its point in an inner MuJoCo env
    if not has_physics_state(env):
        raise InputError(f"cannot save the state of {env.spec.id if env.spec else env} to resume from it: "
                         "only classic-control, MuJoCo and PointMaze environments are supported")
    state: dict[str, Any] = {
        "rng": base.np_random.bit_generator.state,
        "elapsed_steps": _time_limit(env)._elapsed_steps,
    }
    if hasattr(physics, "data") and hasattr(physics, "set_state"):  # MuJoCo
        state["qpos"] = physics.data.qpos.tolist()
        state["qvel"] = physics.data.qvel.tolist()
        state["qacc_warmstart"] = physics.data.qacc_warmstart.tolist()
        state["time"] = float(physics.data.time)
        if physics is not base:  # and the maze episode's goal
            state["goal"] = np.asarray(base.goal, dtype=np.float64).tolist()
    else:  # classic control keeps its physics in ``state``
        state["physics"] = np.asarray(base.state, dtype=np.float64).tolist()
    return state


def load_env_state(env, state: dict[str, Any]) -> None:
    """Restore what :func:`env_state` returned into an environment that has been reset once."""
    base = env.unwrapped
    base.np_random.bit_generator.state = state["rng"]
    _time_limit(env)._elapsed_steps = state["elapsed_steps"]
    if "qpos" in state:
        physics = getattr(base, "point_env", base)
        physics.set_state(np.asarray(state["qpos"]), np.asarray(state["qvel"]))
        physics.data.qacc_warmstart[:] = state["qacc_warmstart"]
        physics.data.time = state["time"]
        if "goal" in state:
            base.goal = np.asarray(state["goal"], dtype=np.float64)
            base.update_target_site_pos()
    else:
        base.state = np.asarray(state["physics"], dtype=np.asarray(base.state).dtype)


def _time_limit(env):
    from gymnasium.wrappers import TimeLimit

    while not isinstance(env, TimeLimit):
        if not hasattr(env, "env"):
            raise InputError(f"{env} has no TimeLimit wrapper; make it with gymnasium.make")
        env = env.env
    return env


class SyncEnvs:
    """``n`` copies of one environment stepped in lockstep in this process.

    Env ``i`` is first reset with seed ``seed + i``. An episode that ends is reset at
    once, in the same ``step`` (its last observation is returned in ``final_obs``, for
    bootstrapping a truncated episode). Observations are flat float32 (robotics.observations). ``state_dict`` is
    JSON-able and restores the envs exactly, so a training run resumes mid-episode: physics envs by their
    state (:func:`env_state`), the others (grid worlds) by replaying the running episode from how it was
    reset (its seed, or the RNG state before the reset) with the actions taken since.
    """

    def __init__(self, env_id: str, n: int, seed: int):
        self.env_id, self.seed = env_id, seed
        from robotics.observations import observation_spec

        self.envs = [make_env(env_id) for _ in range(n)]
        self.single_observation_space = self.envs[0].observation_space
        self.single_action_space = self.envs[0].action_space
        self.observation_spec = observation_spec(self.single_observation_space)  # Dict observations → flat
        self.episode_returns = np.zeros(n)
        self.episode_lengths = np.zeros(n, dtype=np.int64)
        # Per env without a readable state: how its running episode began and the actions since (a replay).
        self.replays = [None if has_physics_state(env) else self._replay_start(env, seed + i)
                        for i, env in enumerate(self.envs)]
        self.obs = np.stack([self.observation_spec.flatten(env.reset(seed=seed + i)[0])
                             for i, env in enumerate(self.envs)])

    def __len__(self) -> int:
        return len(self.envs)

    @staticmethod
    def _replay_start(env, seed: int) -> dict[str, Any]:
        # The same keys for every episode (a checkpoint's structure is checked): seed -1 resets from ``rng``.
        return {"seed": seed, "rng": env.unwrapped.np_random.bit_generator.state, "actions": []}

    def step(self, actions: np.ndarray):
        """``(obs, rewards, terminated, truncated, final_obs, finished)``; ``finished`` lists the
        ``(return, length)`` of episodes that ended this step."""
        n = len(self.envs)
        rewards = np.zeros(n, dtype=np.float32)
        terminated = np.zeros(n, dtype=bool)
        truncated = np.zeros(n, dtype=bool)
        next_obs = np.empty_like(self.obs)
        final_obs = np.empty_like(self.obs)
        finished = []
        for i, env in enumerate(self.envs):
            obs, reward, terminated[i], truncated[i], _ = env.step(actions[i])
            if self.replays[i] is not None:
                self.replays[i]["actions"].append(np.asarray(actions[i]).tolist())
            rewards[i] = reward
            final_obs[i] = self.observation_spec.flatten(obs)
            self.episode_returns[i] += reward
            self.episode_lengths[i] += 1
            if terminated[i] or truncated[i]:
                finished.append((float(self.episode_returns[i]), int(self.episode_lengths[i])))
                self.episode_returns[i], self.episode_lengths[i] = 0.0, 0
                if self.replays[i] is not None:
                    self.replays[i] = self._replay_start(env, -1)
                next_obs[i] = self.observation_spec.flatten(env.reset()[0])
            else:
                next_obs[i] = final_obs[i]
        self.obs = next_obs
        return next_obs, rewards, terminated, truncated, final_obs, finished

    def state_dict(self) -> dict[str, Any]:
        return {
            "env_id": self.env_id,
            "envs": [env_state(env) if replay is None else {**replay, "actions": json.dumps(replay["actions"])}
                     for env, replay in zip(self.envs, self.replays)],
            "obs": self.obs.tolist(),
            "episode_returns": self.episode_returns.tolist(),
            "episode_lengths": self.episode_lengths.tolist(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["env_id"] != self.env_id or len(state["envs"]) != len(self.envs):
            raise InputError(f"saved envs are {len(state['envs'])}× {state['env_id']}, "
                             f"these are {len(self.envs)}× {self.env_id}")
        self.obs = np.asarray(state["obs"], dtype=np.float32)
        for i, (env, saved) in enumerate(zip(self.envs, state["envs"])):
            if self.replays[i] is None:
                load_env_state(env, saved)
            else:
                self.replays[i] = self._replay(i, saved)
        self.episode_returns = np.asarray(state["episode_returns"], dtype=np.float64)
        self.episode_lengths = np.asarray(state["episode_lengths"], dtype=np.int64)

    def _replay(self, i: int, saved: dict[str, Any]) -> dict[str, Any]:
        """Re-run env ``i``'s saved episode up to where it was; InputError unless it ends on the saved observation."""
        env = self.envs[i]
        try:
            actions = json.loads(saved["actions"])
            if saved["seed"] >= 0:
                obs, _ = env.reset(seed=saved["seed"])
            else:
                env.unwrapped.np_random.bit_generator.state = saved["rng"]
                obs, _ = env.reset()
            for action in actions:
                obs, *_ = env.step(np.asarray(action, dtype=self.single_action_space.dtype))
        except (ValueError, TypeError, KeyError, IndexError, AssertionError) as exc:
            raise InputError(f"cannot replay the saved episode of {self.env_id} env {i}: {exc}") from None
        if not np.array_equal(self.observation_spec.flatten(obs), self.obs[i]):
            raise InputError(f"replaying the saved episode of {self.env_id} env {i} ({len(actions)} actions) did "
                             "not reach the saved observation: the environment changed, or the state was edited")
        return {**saved, "actions": actions}

    def close(self) -> None:
        for env in self.envs:
            env.close()
