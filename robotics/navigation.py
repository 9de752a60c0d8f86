"""Navigation metrics: shortest paths at reset, the path an agent took, success and SPL.

SPL (success weighted by path length, Anderson et al. 2018, "On Evaluation of Embodied
Navigation Agents") of episode ``i`` is ``S_i * l_i / max(p_i, l_i)``: ``S_i`` its success,
``l_i`` the shortest path from the start to the goal, ``p_i`` the path the agent took
(``l_i = p_i = 0``, a start at the goal, counts ``S_i``). How ``l`` and ``p`` are measured:

- **Grid worlds** (MiniGrid, BabyAI): moves between cells, from the full grid at reset
  (breadth-first search, 4-connected). Turns, pick-ups and door toggles are no moves, on
  either side. Walls and objects (keys, balls, boxes, lava) block; doors that are not locked
  are passable (opening one is no move). A locked door opens only on a path that first
  reaches a cell beside a key (DoorKey: start → beside the key → through the door → goal),
  and the key's own cell is free once it is carried (DoorKey can put the key in the only
  cell before the door); with several keys every locked door counts as opened by any of
  them and every key as carried, a lower bound.
  The goal is the goal square (MiniGrid) or, for a BabyAI ``go to`` mission, any free cell
  beside an object the mission names (the agent must face it from there).
- **PointMaze**: metres. ``l`` is the planner expert's path (robotics.experts), from the
  start position through the centres of the cells on the breadth-first path over the maze
  map's free cells to the goal position, less the success radius (the episode ends within
  0.45 m of the goal; 0 when it starts there); ``p`` sums the point's displacements. A path
  that cuts corners can still fall below ``l``: SPL's ``max(p, l)`` keeps the ratio at most 1.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from zoo.errors import InputError

GRID_PREFIXES = ("MiniGrid-", "BabyAI-")
MAZE_PREFIXES = ("PointMaze_",)
MOVES = ((1, 0), (-1, 0), (0, 1), (0, -1))
MAZE_SUCCESS_RADIUS_M = 0.45  # gymnasium-robotics' Maze: success once the point is this close to the goal


def is_navigation(env_id: str) -> bool:
    """Whether ``env_id`` is a navigation environment the suite scores by success and SPL."""
    return env_id.startswith(GRID_PREFIXES + MAZE_PREFIXES)


def spl(successes, shortest, taken) -> np.ndarray:
    """Per-episode SPL ``S * l / max(p, l)`` (1 for a success with ``l = p = 0``), from arrays of equal length."""
    s, l, p = (np.asarray(v, dtype=np.float64) for v in (successes, shortest, taken))
    if not s.shape == l.shape == p.shape or s.ndim != 1:
        raise InputError(f"SPL needs 1-D successes, shortest and taken paths of one length, got shapes "
                         f"{s.shape}, {l.shape}, {p.shape}")
    if not np.isin(s, (0.0, 1.0)).all() or (l < 0).any() or (p < 0).any() or not np.isfinite(l).all():
        raise InputError("SPL needs 0/1 successes and finite, non-negative path lengths")
    longer = np.maximum(p, l)
    return s * np.divide(l, longer, out=np.ones_like(l), where=longer > 0)


def grid_distances(passable: np.ndarray, sources) -> np.ndarray:
    """Moves from the nearest of ``sources`` (``(x, y)`` cells) to each cell of the boolean ``passable[x, y]``
    grid, 4-connected; ``inf`` where none is reachable. Sources are reached even when impassable (the agent's
    own cell)."""
    distances = np.full(passable.shape, np.inf)
    queue = deque()
    for cell in sources:
        distances[cell] = 0
        queue.append(cell)
    while queue:
        x, y = queue.popleft()
        for dx, dy in MOVES:
            nxt = (x + dx, y + dy)
            if (0 <= nxt[0] < passable.shape[0] and 0 <= nxt[1] < passable.shape[1] and passable[nxt]
                    and distances[nxt] == np.inf):
                distances[nxt] = distances[x, y] + 1
                queue.append(nxt)
    return distances


def _neighbours(cells, shape) -> list[tuple[int, int]]:
    return [(x + dx, y + dy) for x, y in cells for dx, dy in MOVES
            if 0 <= x + dx < shape[0] and 0 <= y + dy < shape[1]]


def minigrid_shortest_path(env) -> float:
    """Moves on the shortest path from the agent to its goal in a MiniGrid/BabyAI ``env`` just reset (see the
    module docstring); InputError when the grid has no goal this knows or none is reachable."""
    base = env.unwrapped
    grid = base.grid
    kinds = [[grid.get(x, y) for y in range(grid.height)] for x in range(grid.width)]
    shape = (grid.width, grid.height)

    def free(keys_held: bool) -> np.ndarray:
        return np.array([[_passable(obj, keys_held) for obj in column] for column in kinds], dtype=bool)

    closed, opened = free(False), free(True)
    goals = _goal_cells(base, kinds, opened)
    start = tuple(int(v) for v in base.agent_pos)
    direct = grid_distances(closed, [start])
    best = min(direct[g] for g in goals)
    keys = [(x, y) for x in range(shape[0]) for y in range(shape[1]) if _kind(kinds[x][y]) == "key"]
    if keys and any(_kind(obj) == "door" and obj.is_locked for column in kinds for obj in column):
        to_goal = grid_distances(opened, goals)  # symmetric moves: distance from the goals is distance to them
        beside_key = [n for n in _neighbours(keys, shape) if n == start or closed[n]]
        best = min([best] + [direct[n] + to_goal[n] for n in beside_key])
    if not np.isfinite(best):
        where = base.spec.id if base.spec else "this grid"
        raise InputError(f"no path from the agent at {start} to the goal {goals} in {where}")
    return float(best)


def _kind(obj) -> str | None:
    return None if obj is None else obj.type


def _passable(obj, keys_held: bool) -> bool:
    """Whether the agent can move into a cell holding ``obj`` (doors open; locked ones, and the key's own
    cell, once a key is held)."""
    kind = _kind(obj)
    if kind is None or kind in ("goal", "floor"):
        return True
    if kind == "door":
        return keys_held or not obj.is_locked
    if kind == "key":
        return keys_held
    return False  # walls, lava, and objects the agent cannot step onto


def _goal_cells(base, kinds, free: np.ndarray) -> list[tuple[int, int]]:
    """The cells the agent must reach: the goal square, or the free cells beside a BabyAI mission's objects."""
    goals = [(x, y) for x, column in enumerate(kinds) for y, obj in enumerate(column) if _kind(obj) == "goal"]
    if goals:
        return goals
    instrs = getattr(base, "instrs", None)
    objects = getattr(getattr(instrs, "desc", None), "obj_poss", None)
    if type(instrs).__name__ != "GoToInstr" or not objects:
        raise InputError(f"cannot tell the goal of {base.spec.id if base.spec else base}: shortest paths know "
                         "MiniGrid goal squares and BabyAI 'go to' missions")
    start = tuple(int(v) for v in base.agent_pos)
    return [n for n in _neighbours([tuple(int(v) for v in o) for o in objects], free.shape) if n == start or free[n]]


def pointmaze_shortest_path(env, obs: dict[str, Any]) -> float:
    """Metres along the planner's path from the point to within the success radius of the goal, in a PointMaze
    ``env`` just reset."""
    from robotics.experts import PointMazeExpert

    planner = PointMazeExpert(env.unwrapped.maze)
    start, goal = (np.asarray(obs[key], dtype=np.float64) for key in ("achieved_goal", "desired_goal"))
    cells = planner.path(planner.cell(start, "the point"), planner.cell(goal, "the goal"))
    waypoints = [start] + [planner.maze.cell_rowcol_to_xy(np.asarray(c)) for c in cells[1:-1]] + [goal]
    length = sum(np.linalg.norm(b - a) for a, b in zip(waypoints, waypoints[1:]))
    return float(max(0.0, length - MAZE_SUCCESS_RADIUS_M))


def shortest_path(env, obs: Any) -> float:
    """The shortest path of the episode ``env`` was just reset into (moves or metres, see the module docstring)."""
    env_id = env.spec.id if env.spec else ""
    if env_id.startswith(MAZE_PREFIXES):
        return pointmaze_shortest_path(env, obs)
    if env_id.startswith(GRID_PREFIXES):
        return minigrid_shortest_path(env)
    raise InputError(f"no shortest path for {env_id or env}: navigation metrics cover PointMaze_*, MiniGrid-* "
                     "and BabyAI-* environments")


def position(env, obs: Any) -> np.ndarray:
    """Where the agent is: its cell (grid worlds) or the point's position in metres (PointMaze)."""
    if isinstance(obs, dict) and "achieved_goal" in obs:
        return np.asarray(obs["achieved_goal"], dtype=np.float64)
    return np.asarray(env.unwrapped.agent_pos, dtype=np.float64)


@dataclass
class NavigationRun:
    """Per-episode outcomes of navigation episodes: success, length in steps, shortest and taken paths."""

    env_id: str
    successes: np.ndarray
    lengths: np.ndarray
    shortest: np.ndarray
    taken: np.ndarray
    returns: np.ndarray
    seconds: float

    @property
    def spl(self) -> np.ndarray:
        return spl(self.successes, self.shortest, self.taken)

    def metrics(self) -> dict[str, float]:
        return {"success": float(self.successes.mean()), "spl": float(self.spl.mean()),
                "mean_length": float(self.lengths.mean()), "mean_return": float(self.returns.mean())}

    @property
    def steps_per_second(self) -> float:
        return float(self.lengths.sum() / max(self.seconds, 1e-9))


def run_navigation(make_actor: Callable[[Any], Callable[[Any], Any]], env_id: str, episodes: int,
                   seed: int) -> NavigationRun:
    """Run ``episodes`` episodes of ``env_id`` one after another, episode ``i`` reset with ``seed + i``;
    ``make_actor(env)``, called after each reset, gives that episode's ``raw observation → action``.
    Success is gymnasium-robotics' ``info["success"]``, else ending with a positive reward (minigrid)."""
    from robotics.envs import make_env

    if episodes < 1:
        raise InputError(f"episodes must be >= 1, got {episodes}")
    rows = []
    start = time.perf_counter()
    for episode in range(episodes):
        env = make_env(env_id)
        obs, _ = env.reset(seed=seed + episode)
        act, where = make_actor(env), position(env, obs)
        row = {"success": 0.0, "length": 0, "shortest": shortest_path(env, obs), "taken": 0.0, "return": 0.0}
        done = False
        while not done:
            obs, reward, terminated, truncated, info = env.step(act(obs))
            moved_to = position(env, obs)
            row["taken"] += float(np.linalg.norm(moved_to - where))
            row["length"] += 1
            row["return"] += float(reward)
            where, done = moved_to, terminated or truncated
            row["success"] = float(info["success"]) if "success" in info else float(terminated and reward > 0)
        env.close()
        rows.append(row)
    return NavigationRun(env_id=env_id, successes=np.array([r["success"] for r in rows]),
                         lengths=np.array([r["length"] for r in rows]),
                         shortest=np.array([r["shortest"] for r in rows]), taken=np.array([r["taken"] for r in rows]),
                         returns=np.array([r["return"] for r in rows]), seconds=time.perf_counter() - start)


def random_actor(seed: int) -> Callable[[Any], Callable[[Any], Any]]:
    """Actors drawing uniform random actions (the control arm), reproducible in ``seed``."""
    rng = np.random.default_rng(seed)

    def make_actor(env):
        space = env.action_space
        space.seed(int(rng.integers(2**31)))
        return lambda obs: space.sample()

    return make_actor


def policy_actor(policy) -> Callable[[Any], Callable[[Any], Any]]:
    """Actors running a loaded policy (``zoo.load``) deterministically, a recurrent one from a fresh state."""
    from robotics.observations import observation_spec

    def make_actor(env):
        flatten = observation_spec(env.observation_space).flatten
        state = policy.initial_state(1)

        def act(obs):
            nonlocal state
            batch = flatten(obs)[None]
            if state is None:
                return policy.act(batch)[0]
            actions, state = policy.act(batch, state)
            return actions[0]

        return act

    return make_actor
