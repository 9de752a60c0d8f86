"""Symmetries of grid-world tasks, for behaviour cloning on few demonstrations.

A BabyAI "go to the red ball" episode stays a valid episode when (1) the colours of the
objects are permuted, in the view and in the mission alike ("go to the blue ball" among
permuted objects), and (2) the world is mirrored: the egocentric view flips left-right,
the agent's absolute heading is reflected (east ↔ west), and a left turn becomes a right
turn. Sampling one of these transforms per training example multiplies what each
demonstration teaches: each mission colour is seen in every demonstration instead of in
about a sixth of them.

Observations are the flat vectors of :mod:`robotics.observations` (``grid`` kind: image
3×7×7 channel-first as object / colour / state, the direction, the mission's word ids).
"""
from __future__ import annotations

import torch

from robotics.observations import WORD_IDS, ObservationSpec
from zoo.errors import InputError

# minigrid's COLOR_TO_IDX order, and the object kinds whose colour a mission can name (door, key, ball, box):
# walls, floor and goal squares keep theirs.
COLOURS = ("red", "green", "blue", "purple", "yellow", "grey")
COLOURED_OBJECTS = (4, 5, 6, 7)
# minigrid's actions: 0 turns left, 1 turns right; headings 0 east, 1 south, 2 west, 3 north.
LEFT, RIGHT = 0, 1
REFLECTED_HEADING = (2, 1, 0, 3)


class GridSymmetries:
    """Random colour permutations and mirrorings of batches of flat grid observations and their actions."""

    def __init__(self, spec: ObservationSpec):
        if spec.kind != "grid":
            raise InputError(f"grid symmetries need grid observations (image, direction, mission), got {spec.kind}")
        slices = spec.slices()
        self.image, self.direction, self.mission = slices["image"], slices["direction"], slices["mission"]
        self.colour_words = torch.tensor([WORD_IDS[c] for c in COLOURS])
        self.vocabulary = len(WORD_IDS)

    def __call__(self, obs: torch.Tensor, actions: torch.Tensor, *, per_row: bool = True):
        """``obs [N, size]`` and ``actions [N]`` transformed: each row by its own draw (``per_row``), or all
        rows by one (the steps of one episode). Draws come from torch's global generator (seeded, resumed)."""
        draws = len(obs) if per_row else 1
        permutations = torch.argsort(torch.rand(draws, len(COLOURS)), dim=1).expand(len(obs), -1)
        mirrored = (torch.rand(draws) < 0.5).expand(len(obs))
        return self.apply(obs, actions, permutations, mirrored)

    def apply(self, obs: torch.Tensor, actions: torch.Tensor, permutations: torch.Tensor, mirrored: torch.Tensor):
        """Row ``i`` with colour ``c`` repainted ``permutations[i, c]`` and, where ``mirrored[i]``, the world
        mirrored."""
        obs = obs.clone()
        image = obs[:, self.image].reshape(len(obs), 3, 7, 7)
        coloured = torch.isin(image[:, 0], torch.tensor(COLOURED_OBJECTS, dtype=image.dtype))
        colours = image[:, 1].long().clamp(0, len(COLOURS) - 1).reshape(len(obs), -1)
        permuted = torch.gather(permutations, 1, colours).reshape_as(image[:, 1]).to(image.dtype)
        image[:, 1] = torch.where(coloured, permuted, image[:, 1])
        image = torch.where(mirrored[:, None, None, None], image.flip(2), image)
        obs[:, self.image] = image.reshape(len(obs), -1)
        obs[:, self.mission] = self._permuted_words(obs[:, self.mission].long(), permutations).to(obs.dtype)
        heading = obs[:, self.direction].long().squeeze(1)
        reflected = torch.tensor(REFLECTED_HEADING)[heading]
        obs[:, self.direction] = torch.where(mirrored, reflected, heading).to(obs.dtype)[:, None]
        swapped = torch.where(actions == LEFT, RIGHT, torch.where(actions == RIGHT, LEFT, actions))
        return obs, torch.where(mirrored, swapped, actions)

    def _permuted_words(self, words: torch.Tensor, permutations: torch.Tensor) -> torch.Tensor:
        """Mission word ids with colour ``c``'s word replaced by colour ``permutation[c]``'s, row by row."""
        table = torch.arange(self.vocabulary).repeat(len(words), 1)
        table[:, self.colour_words] = self.colour_words[permutations]
        return torch.gather(table, 1, words.clamp(0, self.vocabulary - 1))
