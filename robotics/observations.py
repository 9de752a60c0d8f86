"""How each environment's observations become one flat float32 vector, declared in one place.

Algorithms and datasets see a 1-D array; a network that needs the parts back (a small CNN on
the 7×7 egocentric grid, an embedding of the mission tokens) splits it with
:meth:`ObservationSpec.split`. Three kinds:

- ``box``: a 1-D ``Box`` observation, as it is (the control environments);
- ``goal``: a goal-conditioned ``Dict`` (gymnasium-robotics): ``observation``,
  ``achieved_goal`` and ``desired_goal`` concatenated in that order;
- ``grid``: a MiniGrid / BabyAI ``Dict``: the ``image`` channel-first (3×7×7: object,
  colour, state), the ``direction`` and the ``mission`` as :data:`MISSION_TOKENS` word ids
  (0 pads, 1 is a word outside :data:`VOCABULARY`, with a warning).

Each kind also declares the encoder a network puts in front of its core (:data:`ENCODERS`,
built by :mod:`robotics.models.encoders`): the flat vector as it is, or, for grids, a small
CNN over embeddings of the object, colour and state channels.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from zoo.errors import InputError

GOAL_KEYS = ("observation", "achieved_goal", "desired_goal")
GRID_KEYS = ("image", "direction", "mission")
MISSION_TOKENS = 16
PAD, UNKNOWN = "<pad>", "<unk>"
# The words of MiniGrid and BabyAI missions: colours, objects, verbs and the glue between them.
VOCABULARY = (PAD, UNKNOWN, "blue", "green", "grey", "purple", "red", "yellow", "door", "key", "ball", "box",
              "goal", "lava", "wall", "go", "to", "the", "a", "pick", "up", "open", "put", "next", "and", "then",
              "after", "you", "use", "get", "reach", "of", "on", "your", "left", "right", "in", "front", "behind",
              "avoid", "squares", "traverse", "rooms", "object", "match", "same", "color", "as", "find", "corner")
WORD_IDS = {word: i for i, word in enumerate(VOCABULARY)}
# How many values each grid channel takes: object, colour, state (minigrid's OBJECT_TO_IDX, COLOR_TO_IDX,
# STATE_TO_IDX); the agent faces one of 4 directions.
GRID_VALUES = (11, 6, 3)
DIRECTIONS = 4
# The encoder (robotics.models.encoders) a network uses for each kind of observation.
ENCODERS = {"box": "flat", "goal": "flat", "grid": "grid_cnn"}


@dataclass(frozen=True)
class ObservationSpec:
    """The flattening of one environment's observations: ``kind`` and its parts ``(name, shape)``."""

    kind: str
    parts: tuple[tuple[str, tuple[int, ...]], ...]

    @property
    def encoder(self) -> str:
        """The name of the encoder for these observations (:data:`ENCODERS`)."""
        return ENCODERS[self.kind]

    @property
    def size(self) -> int:
        return int(sum(np.prod(shape) for _, shape in self.parts))

    def flatten(self, obs: Any) -> np.ndarray:
        """One raw observation → a float32 vector of :attr:`size`; InputError if it does not fit."""
        if self.kind == "box":
            array = np.asarray(obs, dtype=np.float32)
            if array.shape != self.parts[0][1]:
                raise InputError(f"expected an observation of shape {self.parts[0][1]}, got shape {array.shape}")
            return array
        keys = GOAL_KEYS if self.kind == "goal" else GRID_KEYS
        if not isinstance(obs, dict):
            raise InputError(f"expected a {self.kind} observation dict with keys {list(keys)}, "
                             f"got {type(obs).__name__}")
        missing = [key for key in keys if key not in obs]
        if missing:
            raise InputError(f"observation dict lacks key(s) {missing}: expected {list(keys)}, got {sorted(obs)}")
        if self.kind == "goal":
            pieces = [np.asarray(obs[key], dtype=np.float32).reshape(-1) for key in keys]
        else:
            image = np.asarray(obs["image"])
            if image.shape != (7, 7, 3):
                raise InputError(f"expected a 7×7×3 egocentric grid under 'image', got shape {image.shape}")
            check_grid(image, obs["direction"])
            pieces = [image.transpose(2, 0, 1).reshape(-1).astype(np.float32),
                      np.asarray([obs["direction"]], dtype=np.float32), tokenize(obs["mission"]).astype(np.float32)]
        flat = np.concatenate(pieces)
        if flat.shape != (self.size,):
            raise InputError(f"expected a {self.kind} observation of {self.size} values "
                             f"({', '.join(f'{n} {s}' for n, s in self.parts)}), got {flat.shape[0]}")
        return flat

    def slices(self) -> dict[str, slice]:
        """Where each part lies in the flat vector."""
        slices, start = {}, 0
        for name, shape in self.parts:
            slices[name] = slice(start, start + int(np.prod(shape)))
            start = slices[name].stop
        return slices

    def split(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        """A batch of flat vectors ``[..., size]`` → its parts, each ``[..., *shape]``."""
        shapes = dict(self.parts)
        return {name: flat[..., where].reshape(*flat.shape[:-1], *shapes[name]) for name, where in self.slices().items()}

    def describe(self) -> dict[str, Any]:
        """As a dataset's or card's 1-D Box observation space, with the layout to split it."""
        return {"type": "Box", "shape": [self.size], "kind": self.kind,
                "parts": [[name, list(shape)] for name, shape in self.parts]}


class ObservationBatcher:
    """Raw observations (an environment's goal or grid ``Dict``, or its flat vector) → one float32 batch
    ``{"input": [N, size]}``, flattened as the torch policy does: an exported navigation policy's preprocessing
    (:mod:`zoo.runtime`; numpy only)."""

    def __init__(self, observation_space: Any):
        spec = spec_from_description(observation_space, "the bundle's preprocessing spec")
        if spec is None:
            raise InputError(f"expected a goal or grid observation_space description, got {observation_space!r:.80}")
        self.spec = spec

    @classmethod
    def from_bundle(cls, files: Any, spec: dict[str, Any]) -> "ObservationBatcher":
        return cls(spec["observation_space"])

    def __call__(self, raw_inputs: Any) -> dict[str, np.ndarray]:
        return {"input": np.stack([self._flat(i, obs) for i, obs in enumerate(raw_inputs)])}

    def _flat(self, i: int, obs: Any) -> np.ndarray:
        try:
            if isinstance(obs, dict):
                return self.spec.flatten(obs)
            array = np.asarray(obs, dtype=np.float32)
        except InputError as e:  # before ValueError, which it is
            raise InputError(f"input {i}: {e}") from None
        except (TypeError, ValueError) as e:
            raise InputError(f"input {i}: expected a {self.spec.kind} observation dict or {self.spec.size} numbers, "
                             f"got {type(obs).__name__} ({e})") from None
        if array.shape != (self.spec.size,) or not np.isfinite(array).all():
            raise InputError(f"input {i}: expected a {self.spec.kind} observation dict or {self.spec.size} finite "
                             f"numbers, got an array of shape {array.shape}")
        return array


def check_grid(image: np.ndarray, direction: Any) -> None:
    """InputError unless the 7×7×3 ``image`` holds whole object / colour / state indices in range
    (:data:`GRID_VALUES`) and ``direction`` is one of the :data:`DIRECTIONS`."""
    if image.dtype.kind not in "iu" and not (image.dtype.kind == "f" and np.all(np.mod(image, 1) == 0)):
        raise InputError(f"expected whole-number grid indices under 'image', got dtype {image.dtype}")
    for channel, (name, count) in enumerate(zip(("object", "colour", "state"), GRID_VALUES)):
        values = image[..., channel]
        if values.min() < 0 or values.max() >= count:
            raise InputError(f"expected {name} indices in [0, {count}) in channel {channel} of 'image', "
                             f"got values in [{values.min()}, {values.max()}]")
    if np.ndim(direction) != 0 or direction not in range(DIRECTIONS):
        raise InputError(f"expected a 'direction' in 0..{DIRECTIONS - 1}, got {direction!r}")


def spec_from_description(described: Any, where: str) -> ObservationSpec | None:
    """The :class:`ObservationSpec` a card's or dataset's ``observation_space`` describes (None for a plain
    Box); InputError, naming ``where``, if the description is malformed."""
    if not isinstance(described, dict) or "kind" not in described:
        return None
    kind, parts = described.get("kind"), described.get("parts")
    well_formed = kind in ("goal", "grid") and isinstance(parts, list) and all(
        isinstance(part, list) and len(part) == 2 and isinstance(part[0], str) and isinstance(part[1], list)
        and part[1] and all(isinstance(n, int) and not isinstance(n, bool) and 0 < n <= 4096 for n in part[1])
        for part in parts)
    expected = GOAL_KEYS if kind == "goal" else GRID_KEYS
    if not well_formed or [part[0] for part in parts] != list(expected):
        raise InputError(f"{where}: observation_space kind/parts must be 'goal' with parts {list(GOAL_KEYS)} or "
                         f"'grid' with parts {list(GRID_KEYS)}, each [name, [sizes]]; got {kind!r}, {parts!r}")
    spec = ObservationSpec(kind, tuple((name, tuple(shape)) for name, shape in parts))
    if described.get("shape") != [spec.size]:
        raise InputError(f"{where}: observation_space shape {described.get('shape')} does not match its parts "
                         f"({spec.size} values)")
    return spec


def tokenize(mission: str) -> np.ndarray:
    """A mission string → :data:`MISSION_TOKENS` int64 word ids (unknown words → 1, with a warning)."""
    if not isinstance(mission, str):
        raise InputError(f"expected the mission as a string, got {type(mission).__name__}")
    words = re.findall(r"[a-z]+", mission.lower())
    if len(words) > MISSION_TOKENS:
        raise InputError(f"mission {mission!r} has {len(words)} words; at most {MISSION_TOKENS} are encoded")
    unknown = sorted({word for word in words if word not in WORD_IDS})
    if unknown:
        warnings.warn(f"mission {mission!r}: word(s) {unknown} are not in the vocabulary; encoded as {UNKNOWN}",
                      stacklevel=2)
    ids = np.zeros(MISSION_TOKENS, dtype=np.int64)
    ids[:len(words)] = [WORD_IDS.get(word, WORD_IDS[UNKNOWN]) for word in words]
    return ids


def observation_spec(space) -> ObservationSpec:
    """The flattening of observations from ``space`` (a gymnasium space), or an InputError."""
    from gymnasium import spaces

    if isinstance(space, spaces.Box) and len(space.shape) == 1:
        return ObservationSpec("box", (("state", tuple(space.shape)),))
    if isinstance(space, spaces.Dict) and set(GOAL_KEYS) <= set(space.spaces):
        return ObservationSpec("goal", tuple((key, tuple(space[key].shape)) for key in GOAL_KEYS))
    if isinstance(space, spaces.Dict) and set(GRID_KEYS) <= set(space.spaces):
        return ObservationSpec("grid", (("image", (3, 7, 7)), ("direction", (1,)), ("mission", (MISSION_TOKENS,))))
    raise InputError(f"no observation handling for {space}: expected a 1-D Box, a goal Dict with keys "
                     f"{list(GOAL_KEYS)} or a grid Dict with keys {list(GRID_KEYS)}")
