"""The ``control`` task: a policy maps an observation to an action.

:class:`ControlPolicy` is the task adapter (``model.predict(obs)`` → an action:
an ``int`` for discrete spaces, a float32 array for continuous ones) and
:class:`PolicyModel` the ``zoo.Model`` that ``zoo.load`` returns for the task,
adding ``rollout``.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from zoo.card import ModelCard
from zoo.errors import InputError
from zoo.model import Model, TaskAdapter


class ControlPolicy(TaskAdapter):
    """Observations in (1-D arrays of the card's shape, finite numbers); actions out."""

    def __init__(self, card: ModelCard, files: Mapping[str, Path] | None = None):
        super().__init__(card, files)
        from robotics.observations import spec_from_description

        self.obs_shape = tuple(card.input["shape"])
        self.discrete = card.input["action_space"]["type"] == "Discrete"
        # A navigation policy also takes its environment's raw Dict observation, flattened as in training.
        self.observation_spec = spec_from_description(card.input.get("observation_space"), f"card of {card.id}")
        self.state_shape = recurrent_state_shape(card)  # None: the policy keeps no state between steps

    @property
    def transform(self) -> Callable[[Any], torch.Tensor]:
        return self.observation_tensor

    def observation_tensor(self, obs: Any) -> torch.Tensor:
        """One observation as a float32 tensor, or an InputError saying what was expected."""
        if self.observation_spec is not None and isinstance(obs, dict):
            obs = self.observation_spec.flatten(obs)
        array = np.asarray(obs)
        if array.dtype.kind not in "fiu":
            raise InputError(f"expected a numeric observation of shape {self.obs_shape} for {self.card.id}, "
                             f"got dtype {array.dtype}")
        if array.shape != self.obs_shape:
            raise InputError(f"expected an observation of shape {self.obs_shape} for {self.card.id}, "
                             f"got shape {array.shape} (one observation is an array; a list is a batch of them)")
        if not np.isfinite(array).all():
            raise InputError(f"expected finite observation values for {self.card.id}, got {array.tolist()}")
        return torch.as_tensor(array, dtype=torch.float32)

    def example_inputs(self) -> list[Any]:
        """Observations of two batch sizes; a recurrent policy's step also takes states (a GRU's lie in (-1, 1))."""
        if self.state_shape is None:
            return super().example_inputs()
        generator = torch.Generator().manual_seed(0)
        return [{"input": torch.rand((n, *self.obs_shape), generator=generator),
                 "state": torch.rand((n, *self.state_shape), generator=generator) * 2 - 1} for n in (2, 3)]

    @property
    def export_outputs(self) -> tuple[str, ...]:
        return ("output",) if self.state_shape is None else ("output", "next_state")

    def runtime_preprocessing(self) -> dict[str, Any]:
        """Arrays of the card's shape; a navigation policy's bundle also takes its environment's raw ``Dict``."""
        if self.observation_spec is None:
            return super().runtime_preprocessing()
        return {"ref": "robotics.observations:ObservationBatcher",
                "spec": {"observation_space": self.card.input["observation_space"]}}

    def runtime_postprocessing(self) -> dict[str, Any]:
        """Actions as they come (``raw``); a recurrent policy's graph also gives the next state (``recurrent``)."""
        if self.state_shape is None:
            return {"kind": "raw"}
        return {"kind": "recurrent", "state_shape": list(self.state_shape)}

    def predict(self, module, raw_inputs, *, device: torch.device, **options: Any) -> list[Any]:
        """Actions for observations; a recurrent policy starts each from a fresh state (an episode's first step)."""
        if self.state_shape is None:
            return super().predict(module, raw_inputs, device=device, **options)
        if options:
            raise InputError(f"task {self.card.task!r} takes no predict options, got {sorted(options)}")
        return self.predict_step(module, raw_inputs, None, device=device)[0]

    def predict_step(self, module, raw_inputs, state: Any, *, device: torch.device) -> tuple[list[Any], np.ndarray]:
        """One step of a recurrent policy: actions for ``raw_inputs`` and the next state ``[N, *state_shape]``
        (``state`` None: episodes that start here)."""
        inputs = self.batch(raw_inputs).to(device)
        if state is None:
            state = torch.zeros((len(raw_inputs), *self.state_shape))
        else:
            state = self.state_tensor(state, len(raw_inputs))
        actions, next_state = module(inputs, state.to(device))
        return self.postprocess(actions), next_state.cpu().numpy()

    def state_tensor(self, state: Any, batch: int) -> torch.Tensor:
        """A recurrent state for ``batch`` observations as a float32 tensor, or an InputError saying what was
        expected."""
        array = state.detach().cpu().numpy() if torch.is_tensor(state) else np.asarray(state)
        expected = (batch, *self.state_shape)
        if array.dtype.kind not in "fiu" or array.shape != expected:
            raise InputError(f"expected a recurrent state of shape {expected} (float) for {batch} observation(s) "
                             f"of {self.card.id}, got shape {array.shape} dtype {array.dtype}: pass the state the "
                             "previous predict returned for the same observations, or None at an episode's start")
        if not np.isfinite(array).all():
            raise InputError(f"expected a finite recurrent state for {self.card.id}, got non-finite values")
        return torch.as_tensor(array, dtype=torch.float32)

    #: The episodes a recurrent policy's exported bundle is checked on, at export (seeded from ``int8_quality_seed``).
    bundle_check_episodes = 5

    def bundle_checks(self, model, bundle) -> dict[str, Any] | None:
        """A recurrent policy's bundle stepped beside the eager policy along real episodes (the eager policy acts;
        both get the same observations and states): the share of equal actions and the largest state difference.
        A feed-forward policy's tensor parity check is enough."""
        if self.state_shape is None:
            return None
        env_id = self.card.input["env_ids"][0]
        steps, agreed, state_diff = 0, 0, 0.0

        def act(obs, state):
            nonlocal steps, agreed, state_diff
            actions, next_state = model.act(obs, state)
            bundle_actions, bundle_state = bundle.run({"input": obs.astype(np.float32), "state": state})
            steps, agreed = steps + len(actions), agreed + int((bundle_actions == actions).sum())
            state_diff = max(state_diff, float(np.abs(bundle_state - next_state).max()))
            return actions, next_state

        run_episodes(act, env_id, self.bundle_check_episodes, self.int8_quality_seed,
                     initial_state=model.initial_state(self.bundle_check_episodes))
        return {"metric": "action_agreement", "dataset": env_id, "episodes": self.bundle_check_episodes,
                "seed": self.int8_quality_seed, "steps": steps, "agreement": agreed / steps,
                "max_state_diff": state_diff, "passed": agreed == steps and state_diff <= 1e-3}

    @property
    def int8(self) -> str | None:
        """Dynamic int8 for feed-forward policies (an MLP's time goes to its matrix products); not recurrent ones."""
        return None if self.state_shape is not None else "dynamic"

    #: The int8 policy's mean return may be at most this fraction of the fp32 policy's (absolute) mean below it.
    int8_tolerance = 0.05
    # With 8-bit weights an AVX2-only CPU's int8 kernels saturated: CartPole's return fell from 500 to 70.7.
    int8_reduce_range = True
    #: The held-out episodes the int8 quality is measured on: reset with seeds from ``int8_quality_seed``.
    int8_quality_episodes = 10
    int8_quality_seed = 100_000

    def int8_quality(self, model, fp32_bundle, int8_bundle) -> dict[str, Any]:
        """Mean return of the fp32 and the int8 bundle, each acting on the same held-out episodes."""
        from zoo.quantize import quality_record

        env_id = self.card.input["env_ids"][0]
        returns = [run_episodes(lambda obs, bundle=bundle: bundle.run({"input": np.asarray(obs, np.float32)}),
                                env_id, self.int8_quality_episodes, self.int8_quality_seed).returns
                   for bundle in (fp32_bundle, int8_bundle)]
        fp32, int8 = (float(r.mean()) for r in returns)
        return quality_record("mean_return", env_id, f"episodes seeded {self.int8_quality_seed}+",
                              self.int8_quality_episodes, fp32, int8, self.int8_tolerance * abs(fp32),
                              fp32_returns=returns[0].tolist(), int8_returns=returns[1].tolist())

    def postprocess(self, outputs: torch.Tensor) -> list[Any]:
        actions = outputs.cpu().numpy()
        if self.discrete:
            return [int(a) for a in actions]
        if not np.isfinite(actions).all():
            raise InputError(f"policy {self.card.id} produced a non-finite action {actions.tolist()}; "
                             "its weights may be corrupt")
        return list(actions.astype(np.float32))


@dataclass
class Rollout:
    """Per-episode returns and lengths of a rollout, and how fast it ran."""

    env_id: str
    returns: np.ndarray
    lengths: np.ndarray
    seed: int
    seconds: float

    @property
    def mean_return(self) -> float:
        return float(self.returns.mean())

    @property
    def steps_per_second(self) -> float:
        return float(self.lengths.sum() / max(self.seconds, 1e-9))


@dataclass
class Recording:
    """The rendered RGB frames of each episode of a rollout (the reset's, then one a step), and their frame rate."""

    episodes: list[list[np.ndarray]] = field(default_factory=list)
    fps: float = 30.0

    def write_gif(self, path: str | Path, max_side: int = 320) -> Path:
        """The episodes one after another as an animated GIF (frames scaled to fit ``max_side`` pixels,
        at most 50 frames/s: browsers slow faster GIFs down), written atomically."""
        from PIL import Image

        from zoo.atomic import atomic_path

        frames = [Image.fromarray(frame) for episode in self.episodes for frame in episode]
        if not frames:
            raise InputError("no frames were rendered: the environment returned none")
        scale = min(1.0, max_side / max(frames[0].size))
        size = (round(frames[0].width * scale), round(frames[0].height * scale))
        frames = [frame.resize(size, Image.Resampling.BILINEAR) for frame in frames]
        with atomic_path(path) as tmp:
            frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], loop=0,
                           duration=round(1000 / min(self.fps, 50.0)))
        return Path(path)


def recurrent_state_shape(card: ModelCard) -> tuple[int, ...] | None:
    """The shape of one episode's recurrent state, from the card's ``input.state_shape`` (None: no state)."""
    shape = card.input.get("state_shape")
    if shape is None:
        return None
    if not (isinstance(shape, list) and len(shape) == 1 and isinstance(shape[0], int)
            and not isinstance(shape[0], bool) and 0 < shape[0] <= 4096):
        raise InputError(f"card of {card.id}: input.state_shape must be [size] with 0 < size <= 4096, got {shape!r}")
    return tuple(shape)


_NO_STATE = object()  # predict without a state argument: each observation starts an episode


class PolicyModel(Model):
    """A control policy: ``predict(obs)`` → action, ``rollout(env_id, episodes, seed)`` → returns.

    A recurrent policy also takes the state it returned for the previous step:
    ``predict(obs, state)`` → ``(action, next_state)``.
    """

    @property
    def recurrent(self) -> bool:
        return self.adapter.state_shape is not None

    def predict(self, raw_inputs: Any, state: Any = _NO_STATE, **options: Any) -> Any:
        """The action for one observation (or a list for a list); with ``state`` (a recurrent policy's, None at
        an episode's start; shape ``state_shape`` for one observation, ``[N, *state_shape]`` for a list of N),
        ``(action(s), next_state)`` of the same layout."""
        if state is _NO_STATE:
            return super().predict(raw_inputs, **options)
        if not self.recurrent:
            raise InputError(f"policy {self.card.id} is not recurrent: it takes no state; call predict(obs)")
        if options:
            raise InputError(f"a recurrent step takes no predict options, got {sorted(options)}")
        single = not isinstance(raw_inputs, (list, tuple))
        items = [raw_inputs] if single else list(raw_inputs)
        if not items:
            raise InputError("expected at least one observation")
        if single and state is not None:  # one observation's state carries no batch axis
            state = state.detach().cpu().numpy() if torch.is_tensor(state) else np.asarray(state)
            if state.shape != self.adapter.state_shape:
                raise InputError(f"expected the recurrent state of one observation of {self.card.id}, shape "
                                 f"{self.adapter.state_shape}, got shape {state.shape} (a list of observations "
                                 "takes states [N, *state_shape])")
            state = state[None]
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                actions, next_state = self.adapter.predict_step(self.net, items, state, device=self.device)
        finally:
            self.train(was_training)
        return (actions[0], next_state[0]) if single else (actions, next_state)

    def initial_state(self, episodes: int) -> np.ndarray | None:
        """What :meth:`act` starts ``episodes`` episodes from: zeros for a recurrent policy, else None."""
        return np.zeros((episodes, *self.adapter.state_shape), np.float32) if self.recurrent else None

    def rollout(self, env_id: str, episodes: int = 10, seed: int = 0) -> Rollout:
        """Run ``episodes`` deterministic episodes (episode ``i`` reset with ``seed + i``)."""
        from robotics.envs import check_env

        check_env(self.card, env_id)
        was_training = self.training
        self.eval()
        try:
            return run_episodes(self.act, env_id, episodes, seed, initial_state=self.initial_state(episodes))
        finally:
            self.train(was_training)

    def render(self, path: str | Path, env_id: str | None = None, episodes: int = 1, seed: int = 0) -> Rollout:
        """Roll out as :meth:`rollout` does (``env_id`` defaults to the first the policy was trained for) and write
        the episodes' frames to the animated GIF ``path``."""
        from robotics.envs import check_env

        if Path(path).suffix.lower() != ".gif":
            raise InputError(f"a rollout renders to an animated GIF: expected a path ending in .gif, got {path}")
        env_id = env_id or self.card.input["env_ids"][0]
        check_env(self.card, env_id)
        recording = Recording()
        was_training = self.training
        self.eval()
        try:
            rollout = run_episodes(self.act, env_id, episodes, seed, initial_state=self.initial_state(episodes),
                                   recording=recording)
        finally:
            self.train(was_training)
        recording.write_gif(path)
        return rollout

    @torch.inference_mode()
    def act(self, observations: np.ndarray, state: np.ndarray | None = None):
        """A batch of float32 observations ``[N, obs_dim]`` → actions, without per-call checks; a recurrent
        policy also takes the batch's states and returns ``(actions, next_states)``."""
        obs = torch.as_tensor(observations, device=self.device)
        if self.recurrent:
            actions, next_state = self.net(obs, torch.as_tensor(state, device=self.device))
            return actions.cpu().numpy(), next_state.cpu().numpy()
        actions = self.net(obs).cpu().numpy()
        if not self.adapter.discrete and not np.isfinite(actions).all():
            raise InputError(f"policy {self.card.id} produced a non-finite action; its weights may be corrupt")
        return actions


@contextlib.contextmanager
def torch_threads(n: int):
    """Run torch's CPU ops on ``n`` threads for the duration.

    Small policy networks run one observation batch at a time: thread hand-offs cost
    more than the maths (50× slower with 2 threads on a busy 2-core machine).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_episodes(act: Callable, env_id: str, episodes: int, seed: int,
                 on_step: Callable[..., None] | None = None, initial_state: np.ndarray | None = None,
                 recording: Recording | None = None) -> Rollout:
    """Run ``episodes`` episodes side by side, episode ``i`` reset with ``seed + i``.

    ``act`` maps a batch of observations to actions; given ``initial_state`` (a recurrent
    policy's, ``[episodes, ...]``), it maps observations and their episodes' states to actions
    and next states. ``on_step(episode, frame, obs, action, reward, terminated, truncated)``
    sees every transition (for recording datasets). ``recording`` gets every episode's rendered frames.
    """
    from robotics.envs import make_env
    from robotics.observations import observation_spec

    if episodes < 1:
        raise InputError(f"episodes must be >= 1, got {episodes}")
    envs = [make_env(env_id, render_mode=None if recording is None else "rgb_array") for _ in range(episodes)]
    flatten = observation_spec(envs[0].observation_space).flatten  # Dict observations → flat float32
    obs = np.stack([flatten(env.reset(seed=seed + i)[0]) for i, env in enumerate(envs)])
    if recording is not None:
        recording.fps = float(envs[0].metadata.get("render_fps") or recording.fps)
        recording.episodes = [[env.render()] for env in envs]
    returns, lengths = np.zeros(episodes), np.zeros(episodes, dtype=np.int64)
    states = None if initial_state is None else initial_state.copy()
    active = list(range(episodes))
    start = time.perf_counter()
    while active:
        with torch_threads(1):
            if states is None:
                actions = act(obs[active])
            else:
                actions, states[active] = act(obs[active], states[active])
        still = []
        for action, i in zip(actions, active):
            next_obs, reward, terminated, truncated, _ = envs[i].step(action)
            if on_step is not None:
                on_step(i, int(lengths[i]), obs[i].copy(), action, float(reward), bool(terminated), bool(truncated))
            returns[i] += reward
            lengths[i] += 1
            obs[i] = flatten(next_obs)
            if recording is not None:
                recording.episodes[i].append(envs[i].render())
            if not (terminated or truncated):
                still.append(i)
        active = still
    seconds = time.perf_counter() - start
    for env in envs:
        env.close()
    return Rollout(env_id=env_id, returns=returns, lengths=lengths, seed=seed, seconds=seconds)


def random_actions(env_id: str, seed: int) -> Callable[[np.ndarray], np.ndarray]:
    """A uniformly random policy (the control arm), reproducible in ``seed``."""
    from robotics.envs import make_env

    env = make_env(env_id)
    space = env.action_space
    env.close()
    space.seed(seed)
    return lambda observations: np.stack([space.sample() for _ in range(len(observations))])

