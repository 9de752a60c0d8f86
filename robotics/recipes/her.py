"""Hindsight experience replay (Andrychowicz et al. 2017), ``future`` strategy, for goal-conditioned envs.

A sparse maze rarely rewards a random walk; HER also learns from where the agent did
get. Transitions are stored as they happened (flat observations: ``observation``,
``achieved_goal``, ``desired_goal``, see robotics.observations). When a batch is sampled,
a fraction ``k / (k + 1)`` of it has its desired goal replaced by the goal achieved at a
transition drawn uniformly from the same episode's present-or-future ones, and its reward
and termination recomputed by the environment's own ``compute_reward`` /
``compute_terminated`` (relabelling at sample time, as Stable-Baselines3 does online).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from robotics.recipes.sac import ReplayBuffer


class HerReplayBuffer(ReplayBuffer):
    """A :class:`ReplayBuffer` that knows episodes and relabels goals when sampling.

    ``achieved`` and ``desired`` are the slices of the flat observation holding the two
    goals; ``compute_reward(achieved, desired, info)`` is vectorised (gymnasium-robotics'),
    ``compute_terminated`` is called per transition.
    """

    FIELDS = ReplayBuffer.FIELDS + ("last",)

    def __init__(self, capacity: int, obs_dim: int, action_dim: int, device, *, achieved: slice, desired: slice,
                 compute_reward: Callable, compute_terminated: Callable, future_goals: int = 4):
        import torch

        super().__init__(capacity, obs_dim, action_dim, device)
        self.achieved, self.desired = achieved, desired
        self.compute_reward, self.compute_terminated = compute_reward, compute_terminated
        self.relabel_fraction = future_goals / (future_goals + 1)
        # The index of each transition's episode's last transition; -1 while that episode runs.
        self.last = torch.full((capacity,), -1, dtype=torch.int64)

    def add(self, obs, next_obs, action, reward, terminated, episode_done: bool = False) -> None:
        """Store one transition; ``episode_done`` (terminated or truncated) closes its episode."""
        i = self.pos
        self.last[i] = -1
        super().add(obs, next_obs, action, reward, terminated)
        if episode_done:
            running = self.last[:self.size] == -1
            self.last[:self.size][running] = i

    def future_indices(self, index):
        """For each transition (a CPU int64 tensor of indices), one of the same episode's transitions at or after
        it, uniformly."""
        import torch

        last = self.last[index]
        last = torch.where(last >= 0, last, (self.pos - 1) % self.capacity)  # a running episode ends, so far, here
        remaining = (last - index) % self.capacity
        offset = (torch.rand(len(index)) * (remaining + 1)).long()  # torch's RNG: checkpointed, so resumes are exact
        return (index + offset) % self.capacity

    def sample(self, batch_size: int):
        import torch

        index = torch.randint(0, self.size, (batch_size,))
        obs, next_obs = self.obs[index], self.next_obs[index]  # copies: relabelling leaves the buffer as stored
        rewards, terminated = self.rewards[index], self.terminated[index]
        relabel = torch.nonzero(torch.rand(batch_size) < self.relabel_fraction).flatten()
        if len(relabel):
            # The goal: what was achieved after a future transition of the same episode.
            goals = self.next_obs[self.future_indices(index[relabel])][:, self.achieved]
            obs[relabel, self.desired] = goals
            next_obs[relabel, self.desired] = goals
            achieved = next_obs[relabel, self.achieved].cpu().numpy().astype(np.float64)
            desired = goals.cpu().numpy().astype(np.float64)
            rewards[relabel] = torch.as_tensor(self.compute_reward(achieved, desired, {}), dtype=rewards.dtype,
                                               device=rewards.device)
            terminated[relabel] = torch.as_tensor([float(self.compute_terminated(a, d, {}))
                                                   for a, d in zip(achieved, desired)], device=terminated.device)
        return obs, self.actions[index], rewards, next_obs, terminated
