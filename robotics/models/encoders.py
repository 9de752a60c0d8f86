"""Observation encoders: the part of a policy network that turns a flat observation into features.

Which one an environment gets is declared with its observation kind
(:data:`robotics.observations.ENCODERS`), so algorithms never special-case observations:

- :class:`FlatEncoder`  a 1-D vector (control states, goal-conditioned mazes): one tanh layer.
- :class:`GridEncoder`  a MiniGrid / BabyAI egocentric grid: each cell's object, colour and state
                        indices embedded (as the BabyAI baseline does), a small CNN over the 7×7 map
                        (rl-starter-files' 2×2 convolutions and max-pool), and the agent's direction,
                        one-hot. The mission tokens are not read (constant in DoorKey, FourRooms,
                        MultiRoom).
- ``film`` (robotics.models.film.FiLMEncoder)  a grid read under its mission (BabyAI): FiLM blocks
                        conditioned on a GRU's reading of the mission, as the BabyAI baseline.

Each has ``features``, the width of what it returns for a batch ``[N, obs_dim]``.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from robotics.observations import DIRECTIONS, GRID_VALUES


class FlatEncoder(nn.Module):
    """``tanh(Linear(obs))``: vector observations."""

    def __init__(self, obs_dim: int, features: int = 64):
        super().__init__()
        self.features = features
        self.layer = nn.Sequential(nn.Linear(obs_dim, features), nn.Tanh())

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.layer(obs)


class GridEncoder(nn.Module):
    """Embedded grid channels → three 2×2 convolutions (7 → 6 → pool 3 → 2 → 1) → 64 features, + direction."""

    def __init__(self, parts: Sequence[Sequence], embedding_dim: int = 8):
        super().__init__()
        shapes, start = {}, 0
        for name, shape in parts:  # where the image and direction lie in the flat vector
            size = int(torch.tensor(shape).prod())
            shapes[name] = (start, start + size, tuple(shape))
            start += size
        self.image_at, self.direction_at = shapes["image"], shapes["direction"]
        # One table for the three channels, each channel's indices offset past the previous channels'.
        self.register_buffer("offsets", torch.tensor([0, GRID_VALUES[0], GRID_VALUES[0] + GRID_VALUES[1]]),
                             persistent=False)
        self.register_buffer("limits", torch.tensor(GRID_VALUES) - 1, persistent=False)
        self.embedding = nn.Embedding(sum(GRID_VALUES), embedding_dim)
        self.cnn = nn.Sequential(
            nn.Conv2d(3 * embedding_dim, 32, 2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 2), nn.ReLU(),
            nn.Conv2d(64, 64, 2), nn.ReLU(), nn.Flatten(),
        )
        self.features = 64 + DIRECTIONS

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        first, last, shape = self.image_at
        image = obs[:, first:last].reshape(-1, *shape).long()  # [N, 3, 7, 7]: object, colour, state
        # Out-of-range indices (a hand-made observation) are clamped rather than crash the lookup.
        image = torch.minimum(image.clamp(min=0), self.limits[None, :, None, None]) + self.offsets[None, :, None, None]
        embedded = self.embedding(image)  # [N, 3, 7, 7, E]
        maps = embedded.permute(0, 1, 4, 2, 3).flatten(1, 2)  # [N, 3E, 7, 7]
        direction = obs[:, self.direction_at[0]].long().clamp(0, DIRECTIONS - 1)
        return torch.cat([self.cnn(maps), nn.functional.one_hot(direction, DIRECTIONS).float()], -1)


def build_encoder(name: str, obs_dim: int, parts: Sequence[Sequence] | None, channels: int = 128) -> nn.Module:
    """The encoder ``name`` (:data:`robotics.observations.ENCODERS`, or ``film``: a mission-conditioned grid view,
    robotics.models.film, ``channels`` wide) for observations of ``obs_dim`` values."""
    from zoo.errors import InputError

    if name == "flat":
        return FlatEncoder(obs_dim)
    if name == "grid_cnn":
        if not parts or [part[0] for part in parts][:2] != ["image", "direction"]:
            raise InputError(f"the grid_cnn encoder needs the observation's parts (image, direction, ...), "
                             f"got {parts!r}")
        return GridEncoder(parts)
    if name == "film":
        from robotics.models.film import FiLMEncoder

        return FiLMEncoder(obs_dim, parts, channels, channels)
    raise InputError(f"unknown observation encoder {name!r}: expected 'flat', 'grid_cnn' or 'film'")
