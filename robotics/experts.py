"""Scripted navigation experts: the ceiling arm of the suite and the source of demonstrations.

- :class:`PointMazeExpert`: breadth-first search over the maze map's free cells, from the
  point's cell to the goal's, then a PD controller pushing the point mass towards the centre
  of the next cell on that path (towards the goal itself in the goal's cell).
- :func:`babyai_bot`: minigrid's own ``BabyAIBot``, which plans on the full grid state.

An expert for one episode is made by ``expert_for(env)`` from the environment just reset;
it maps the raw observation to an action. Where a learner acts instead (DAgger), an expert
with a ``took(action)`` method is told each action taken; the planner needs none, as it
plans from the observation alone.
"""
from __future__ import annotations

from collections import deque
from typing import Any, Callable

import numpy as np

from zoo.errors import InputError, ZooError

class ExpertLost(ZooError):
    """A learner led the expert where it cannot label the next state (DAgger ends that episode there)."""


KP, KD = 10.0, 1.0  # PD gains on the point mass: position error (m) and velocity (m/s) → force in [-1, 1]


class PointMazeExpert:
    """Plans on ``maze`` (a gymnasium-robotics ``Maze``) and steers the point mass along the plan."""

    def __init__(self, maze):
        self.maze = maze
        self.free = np.asarray([[cell != 1 for cell in row] for row in maze.maze_map], dtype=bool)
        self.plans: dict[tuple, list[tuple[int, int]]] = {}  # (start, goal) → path: the map never changes

    def cell(self, xy: np.ndarray, what: str) -> tuple[int, int]:
        """The free cell holding ``xy``, or an InputError (outside the maze, or inside a wall)."""
        row, col = (int(v) for v in self.maze.cell_xy_to_rowcol(np.asarray(xy, dtype=np.float64)))
        rows, cols = self.free.shape
        if not (0 <= row < rows and 0 <= col < cols) or not self.free[row, col]:
            raise InputError(f"{what} {np.asarray(xy).tolist()} lies outside the maze's free cells "
                             f"(cell {(row, col)} of a {rows}×{cols} map whose free cells are "
                             f"{np.argwhere(self.free).tolist()})")
        return row, col

    def path(self, start: tuple[int, int], goal: tuple[int, int]) -> list[tuple[int, int]]:
        """The shortest 4-connected path of free cells from ``start`` to ``goal`` (both included)."""
        previous: dict[tuple[int, int], tuple[int, int] | None] = {start: None}
        queue = deque([start])
        while queue:
            cell = queue.popleft()
            if cell == goal:
                break
            for step in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                nxt = (cell[0] + step[0], cell[1] + step[1])
                if self.free[nxt] and nxt not in previous:  # the map's border is wall: no bounds check
                    previous[nxt] = cell
                    queue.append(nxt)
        if goal not in previous:
            raise InputError(f"no path of free cells from {start} to {goal} in this maze")
        path = [goal]
        while previous[path[-1]] is not None:
            path.append(previous[path[-1]])
        return path[::-1]

    def __call__(self, obs: dict[str, Any]) -> np.ndarray:
        """The force (float32 ``[2]``) for one goal-conditioned observation."""
        for key in ("observation", "desired_goal"):
            if key not in obs:
                raise InputError(f"observation dict lacks key {key!r}: expected observation, achieved_goal, "
                                 f"desired_goal; got {sorted(obs)}")
        position, velocity = np.asarray(obs["observation"][:2]), np.asarray(obs["observation"][2:4])
        goal = np.asarray(obs["desired_goal"], dtype=np.float64)
        cells = (self.cell(position, "the point"), self.cell(goal, "the goal"))
        if cells not in self.plans:
            self.plans[cells] = self.path(*cells)
        path = self.plans[cells]
        target = goal if len(path) == 1 else self.maze.cell_rowcol_to_xy(np.asarray(path[1]))
        return np.clip(KP * (target - position) - KD * velocity, -1.0, 1.0).astype(np.float32)


def pointmaze_expert(env) -> PointMazeExpert:
    """The planner expert for a PointMaze ``env``."""
    return PointMazeExpert(env.unwrapped.maze)


class BabyAIExpert:
    """minigrid's ``BabyAIBot`` for the episode ``env`` was just reset into; it plans on the full grid state, not on
    ``obs``. Told the action a learner took instead of its suggestion (:meth:`took`), it plans from where that
    led: what DAgger labels learner-driven states with."""

    def __init__(self, env):
        from minigrid.utils.baby_ai_bot import BabyAIBot

        self.bot = BabyAIBot(env.unwrapped)
        self.taken: int | None = None  # None: the bot's own suggestion was taken

    def __call__(self, obs: dict[str, Any]) -> int:
        """The bot's action; ExpertLost where the learner did what the bot cannot plan around (opened a box)."""
        from minigrid.utils.baby_ai_bot import DisappearedBoxError

        try:
            return int(self.bot.replan(self.taken))
        except DisappearedBoxError as exc:
            raise ExpertLost(f"BabyAIBot cannot go on: {exc}") from None

    def took(self, action: int) -> None:
        """The action actually taken after the last suggestion."""
        self.taken = int(action)


def babyai_bot(env) -> BabyAIExpert:
    """minigrid's ``BabyAIBot`` for the episode ``env`` was just reset into."""
    return BabyAIExpert(env)


def expert_for(env_id: str) -> Callable[[Any], Callable[[Any], Any]]:
    """The expert factory of ``env_id``: ``factory(env)`` → the episode's ``obs → action``."""
    if env_id.startswith("PointMaze_"):
        return pointmaze_expert
    if env_id.startswith("BabyAI-"):
        return babyai_bot
    raise InputError(f"no scripted expert for {env_id}: experts exist for PointMaze_* and BabyAI-* environments")
