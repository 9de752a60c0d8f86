"""Recurrent policies for partially observed environments: an encoder, a GRU core, actor and critic heads.

The recurrent state ``[N, core_size]`` is what the policy remembers of its episode so far. It is
reset where an episode starts: :meth:`GRUActorCritic.unroll` takes, beside each step's observation,
a flag ``starts`` that zeroes the state before that step, so one unroll can run across episode
boundaries (truncated BPTT over fixed-length sequences of a rollout) and gives the same outputs as
starting each episode fresh.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.distributions import Categorical

from robotics.models.encoders import build_encoder
from robotics.models.mlp import mlp


class GRUActorCritic(nn.Module):
    """Discrete actions: ``encoder`` → ``GRUCell(core_size)`` → logits and a state value.

    ``forward(obs, state)`` returns the most likely action (int64) and the next state.
    """

    discrete = True
    recurrent = True

    def __init__(self, obs_dim: int, num_actions: int, encoder: str = "flat",
                 observation_parts: Sequence[Sequence] | None = None, core_size: int = 128,
                 hidden: Sequence[int] = (64,), channels: int = 128):
        super().__init__()
        self.encoder = build_encoder(encoder, obs_dim, observation_parts, channels)
        self.core = nn.GRUCell(self.encoder.features, core_size)
        self.actor = mlp(core_size, hidden, num_actions, "tanh", out_gain=0.01)
        self.critic = mlp(core_size, hidden, 1, "tanh", out_gain=1.0)
        self.state_shape = (core_size,)

    def initial_state(self, batch: int) -> torch.Tensor:
        """The state at an episode's start, for ``batch`` episodes."""
        return torch.zeros((batch, *self.state_shape), device=self.core.weight_hh.device)

    def unroll(self, obs: torch.Tensor, state: torch.Tensor, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Run ``L`` steps of ``B`` sequences: ``obs [L, B, obs_dim]``, ``state [B, core]`` before the first
        step, ``starts [L, B]`` (1 where an episode starts: the state is zeroed before that step).

        Returns the core's output at every step ``[L, B, core]`` and the state after the last one.
        """
        steps, batch = obs.shape[:2]
        features = self.encoder(obs.reshape(steps * batch, -1)).reshape(steps, batch, -1)  # one batched CNN call
        outputs = []
        for t in range(steps):
            state = self.core(features[t], state * (1.0 - starts[t]).unsqueeze(-1))
            outputs.append(state)
        return torch.stack(outputs), state

    def forward(self, input: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One step of ``N`` episodes: observations ``input [N, obs_dim]`` and states ``[N, core]`` → the most likely
        actions ``[N]`` and the next states (named as an exported graph's inputs, which callers may pass as keywords)."""
        core, state = self.unroll(input[None], state, torch.zeros(1, input.shape[0], device=input.device))
        return self.actor(core[0]).argmax(-1), state

    def distribution(self, core: torch.Tensor) -> Categorical:
        """The action distribution for core outputs ``[..., core]``."""
        return Categorical(logits=self.actor(core), validate_args=False)

    def value(self, core: torch.Tensor) -> torch.Tensor:
        return self.critic(core).squeeze(-1)


def gru_categorical(obs_dim: int, num_actions: int, encoder: str = "flat",
                    observation_parts: Sequence[Sequence] | None = None, core_size: int = 128,
                    hidden: Sequence[int] = (64,), channels: int = 128) -> GRUActorCritic:
    """The architecture ``gru_categorical``: a recurrent policy over discrete actions (``channels``: the width
    of the ``film`` encoder)."""
    return GRUActorCritic(obs_dim, num_actions, encoder, observation_parts, core_size, tuple(hidden), channels)
