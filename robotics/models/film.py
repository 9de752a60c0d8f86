"""A mission-conditioned grid policy: a GRU reads the mission, FiLM layers let it steer a CNN over the grid.

After the BabyAI baseline (Chevalier-Boisvert et al. 2019, "BabyAI: First Steps Towards Grounded
Language Learning With a Human In the Loop"; BabyAI 1.1's ``bow_endpool_res`` model):

- the mission's word ids (robotics.observations.MISSION_TOKENS, 0 pads) are embedded and read by a
  GRU; its output at the last word is the mission encoding;
- each cell's object, colour and state indices are embedded and summed (a bag of words per cell);
  ours adds one map the baseline lacks: each cell's embedding, projected, against the mission encoding
  (a dot product), so that the cells holding what the mission names stand out from the first layer;
- two 3×3 convolutions (batch norm, ReLU) keep the 7×7 map;
- :class:`FiLM` blocks, each two 3×3 convolutions whose second output is scaled and shifted per
  channel by ``gamma``, ``beta`` computed from the mission encoding, with a residual connection;
- a max-pool over the whole 7×7 map, the agent's direction one-hot, and an MLP to the action logits.

``film_categorical`` has no memory over steps: it acts on the current view and mission. The baseline's
memory is the recurrent policy ``gru_categorical`` with the encoder ``film`` (:class:`FiLMEncoder`), which
behaviour cloning trains on whole episodes (``memory=True``).
``forward(obs)`` is the most likely action (int64) for flat observations ``[N, obs_dim]`` laid out as
the card's ``observation_space`` parts (image, direction, mission); :meth:`actor_outputs` (the logits)
is what behaviour cloning trains.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.distributions import Categorical

from robotics.models.mlp import mlp
from robotics.observations import DIRECTIONS, GRID_KEYS, GRID_VALUES, MISSION_TOKENS, VOCABULARY


class FiLM(nn.Module):
    """``relu(bn(gamma(m) * conv(relu(bn(conv(x)))) + beta(m)))``: a convolution block modulated by ``m``."""

    def __init__(self, channels: int, condition: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm2 = nn.BatchNorm2d(channels)
        self.gamma = nn.Linear(condition, channels)
        self.beta = nn.Linear(condition, channels)

    def forward(self, maps: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        hidden = self.conv2(torch.relu(self.norm1(self.conv1(maps))))
        gamma, beta = self.gamma(condition)[:, :, None, None], self.beta(condition)[:, :, None, None]
        return torch.relu(self.norm2(gamma * hidden + beta))


class MissionEncoder(nn.Module):
    """Word embeddings and a GRU over the mission's word ids ``[N, MISSION_TOKENS]``: its output after the
    last (non-padding) word ``[N, size]``."""

    def __init__(self, size: int):
        super().__init__()
        self.embedding = nn.Embedding(len(VOCABULARY), size, padding_idx=0)
        self.gru = nn.GRU(size, size, batch_first=True)

    def forward(self, words: torch.Tensor) -> torch.Tensor:
        outputs, _ = self.gru(self.embedding(words))
        last = (words != 0).sum(1).clamp(min=1) - 1  # padding follows the words: earlier outputs ignore it
        return outputs[torch.arange(len(words), device=words.device), last]


class FiLMEncoder(nn.Module):
    """A grid view conditioned on its mission: flat observations ``[N, obs_dim]`` → ``[N, channels + 4]`` (the
    pooled FiLM maps and the direction one-hot). The feature part of :class:`FiLMActorCritic`, and the encoder
    ``film`` of the recurrent policy (robotics.models.recurrent), which adds a memory over steps."""

    def __init__(self, obs_dim: int, observation_parts: Sequence[Sequence], channels: int = 128,
                 mission_size: int = 128, film_blocks: int = 2):
        super().__init__()
        self.image_at, self.direction_at, self.mission_at = _grid_slices(obs_dim, observation_parts)
        # One embedding table for the three channels, each channel's indices offset past the previous ones'.
        self.register_buffer("offsets", torch.tensor([0, GRID_VALUES[0], GRID_VALUES[0] + GRID_VALUES[1]]),
                             persistent=False)
        self.register_buffer("limits", torch.tensor(GRID_VALUES) - 1, persistent=False)
        self.cell_embedding = nn.Embedding(sum(GRID_VALUES), channels)
        # How well each cell answers the mission. Without this map, 5,000 GoToLocal demonstrations taught the
        # FiLM blocks little of which object the mission names (shuffling the missions of held-out frames cost
        # 4 points of action accuracy, which stalled at 0.77); with it, 0.97.
        self.cell_key = nn.Linear(channels, mission_size, bias=False)
        self.image_conv = nn.Sequential(
            nn.Conv2d(channels + 1, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU(),
        )
        self.mission = MissionEncoder(mission_size)
        self.films = nn.ModuleList(FiLM(channels, mission_size) for _ in range(film_blocks))
        self.features = channels + DIRECTIONS

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        image = obs[:, self.image_at].reshape(-1, 3, 7, 7).long()  # object, colour, state indices
        # Out-of-range indices (a hand-made observation) are clamped rather than crash the lookup.
        image = torch.minimum(image.clamp(min=0), self.limits[None, :, None, None]) + self.offsets[None, :, None, None]
        cells = self.cell_embedding(image).sum(1)  # [N, 7, 7, C]
        mission = self.mission(obs[:, self.mission_at].long().clamp(0, len(VOCABULARY) - 1))
        match = torch.einsum("nxym,nm->nxy", self.cell_key(cells), mission) / mission.shape[1] ** 0.5
        maps = self.image_conv(torch.cat([cells.permute(0, 3, 1, 2), match[:, None]], 1))  # [N, C, 7, 7]
        for film in self.films:
            maps = maps + film(maps, mission)
        pooled = torch.relu(torch.amax(maps, dim=(2, 3)))
        direction = obs[:, self.direction_at].long().clamp(0, DIRECTIONS - 1)
        return torch.cat([pooled, nn.functional.one_hot(direction, DIRECTIONS).float()], -1)


class FiLMActorCritic(nn.Module):
    """Discrete actions from a 7×7 grid, a direction and a mission (see the module docstring)."""

    discrete = True

    def __init__(self, obs_dim: int, num_actions: int, observation_parts: Sequence[Sequence],
                 channels: int = 128, mission_size: int = 128, film_blocks: int = 2, hidden: Sequence[int] = (64,)):
        super().__init__()
        self.encoder = FiLMEncoder(obs_dim, observation_parts, channels, mission_size, film_blocks)
        self.actor = mlp(self.encoder.features, hidden, num_actions, "tanh", out_gain=0.01)
        self.critic = mlp(self.encoder.features, hidden, 1, "tanh", out_gain=1.0)

    def actor_outputs(self, obs: torch.Tensor) -> torch.Tensor:
        """Action logits ``[N, num_actions]`` for flat observations (what behaviour cloning trains)."""
        return self.actor(self.encoder(obs))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.actor_outputs(obs).argmax(-1)

    def distribution(self, obs: torch.Tensor) -> Categorical:
        """The action distribution for flat observations."""
        return Categorical(logits=self.actor_outputs(obs), validate_args=False)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(self.encoder(obs)).squeeze(-1)


def _grid_slices(obs_dim: int, parts: Sequence[Sequence]) -> tuple[slice, int, slice]:
    """Where the image, the direction and the mission lie in a flat grid observation; InputError unless ``parts``
    are robotics.observations' grid parts and add up to ``obs_dim``."""
    from zoo.errors import InputError

    expected = [["image", [3, 7, 7]], ["direction", [1]], ["mission", [MISSION_TOKENS]]]
    given = [[name, list(shape)] for name, shape in parts] if isinstance(parts, (list, tuple)) and all(
        isinstance(part, (list, tuple)) and len(part) == 2 for part in parts) else parts
    if given != expected or obs_dim != 3 * 7 * 7 + 1 + MISSION_TOKENS:
        raise InputError(f"the FiLM policy reads grid observations of {3 * 7 * 7 + 1 + MISSION_TOKENS} values with "
                         f"parts {expected} ({list(GRID_KEYS)}); got obs_dim {obs_dim}, parts {parts!r}")
    image = slice(0, 3 * 7 * 7)
    return image, image.stop, slice(image.stop + 1, image.stop + 1 + MISSION_TOKENS)


def film_categorical(obs_dim: int, num_actions: int, observation_parts: Sequence[Sequence], channels: int = 128,
                     mission_size: int = 128, film_blocks: int = 2, hidden: Sequence[int] = (64,)) -> FiLMActorCritic:
    """The architecture ``film_categorical``: a GRU mission encoder FiLM-conditioning a grid CNN, discrete actions."""
    return FiLMActorCritic(obs_dim, num_actions, observation_parts, channels, mission_size, film_blocks, tuple(hidden))
