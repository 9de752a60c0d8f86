"""The ``control`` task: a policy maps an observation to an action.

:class:`ControlPolicy` is the task adapter (``model.predict(obs)`` → an action:
an ``int`` for discrete spaces, a float32 array for continuous ones) and
:class:`PolicyModel` the ``zoo.Model`` that ``zoo.load`` returns for the task,
adding ``rollout``.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
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


class PolicyModel(Model):
    """A control policy: ``predict(obs)`` → action, ``rollout(env_id, episodes, seed)`` → returns."""

    def rollout(self, env_id: str, episodes: int = 10, seed: int = 0) -> Rollout:
        """Run ``episodes`` deterministic episodes (episode ``i`` reset with ``seed + i``)."""
        from robotics.envs import check_env

        check_env(self.card, env_id)
        was_training = self.training
        self.eval()
        try:
            return run_episodes(self.act, env_id, episodes, seed)
        finally:
            self.train(was_training)

    @torch.inference_mode()
    def act(self, observations: np.ndarray) -> np.ndarray:
        """A batch of float32 observations ``[N, obs_dim]`` → actions, without per-call checks."""
        actions = self.net(torch.as_tensor(observations, device=self.device)).cpu().numpy()
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


def run_episodes(act: Callable[[np.ndarray], np.ndarray], env_id: str, episodes: int, seed: int,
                 on_step: Callable[..., None] | None = None) -> Rollout:
    """Run ``episodes`` episodes side by side, episode ``i`` reset with ``seed + i``.

    ``act`` maps a batch of observations to actions. ``on_step(episode, frame, obs, action,
    reward, terminated, truncated)`` sees every transition (for recording datasets).
    """
    from robotics.envs import make_env
    from robotics.observations import observation_spec

    if episodes < 1:
        raise InputError(f"episodes must be >= 1, got {episodes}")
    envs = [make_env(env_id) for _ in range(episodes)]
    flatten = observation_spec(envs[0].observation_space).flatten  # Dict observations → flat float32
    obs = np.stack([flatten(env.reset(seed=seed + i)[0]) for i, env in enumerate(envs)])
    returns, lengths = np.zeros(episodes), np.zeros(episodes, dtype=np.int64)
    active = list(range(episodes))
    start = time.perf_counter()
    while active:
        with torch_threads(1):
            actions = act(obs[active])
        still = []
        for action, i in zip(actions, active):
            next_obs, reward, terminated, truncated, _ = envs[i].step(action)
            if on_step is not None:
                on_step(i, int(lengths[i]), obs[i].copy(), action, float(reward), bool(terminated), bool(truncated))
            returns[i] += reward
            lengths[i] += 1
            obs[i] = flatten(next_obs)
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

