"""Navigation in the robotics suite: SPL, BFS shortest paths on grids and maze maps, the success/SPL rows."""
from types import SimpleNamespace

import numpy as np
import pytest

from robotics.navigation import grid_distances, minigrid_shortest_path, pointmaze_shortest_path, spl
from zoo.bench_stats import wilson_ci95
from zoo.errors import InputError

pytest.importorskip("gymnasium_robotics")
pytest.importorskip("minigrid")


def test_spl_weights_each_success_by_shortest_over_taken_path():
    values = spl([1, 1, 0, 1, 1], [4, 4, 4, 0, 6], [4, 8, 4, 0, 3])
    # exact path, twice as long, a failure, a start at the goal, and a path under the bound (capped at 1)
    np.testing.assert_allclose(values, [1.0, 0.5, 0.0, 1.0, 1.0])
    with pytest.raises(InputError, match="0/1 successes"):
        spl([0.5], [1], [1])
    with pytest.raises(InputError, match="one length"):
        spl([1, 0], [1], [1])


def _grid_env(rows: list[str]):
    """A MiniGrid-like env from a picture (x across, y down): # wall, A agent, G goal, K yellow key,
    L yellow locked door, D closed unlocked door, B ball."""
    from minigrid.core.grid import Grid
    from minigrid.core.world_object import Ball, Door, Goal, Key, Wall

    makers = {"#": Wall, "G": Goal, "K": lambda: Key("yellow"), "B": Ball,
              "L": lambda: Door("yellow", is_locked=True), "D": lambda: Door("yellow")}
    grid, agent = Grid(len(rows[0]), len(rows)), None
    for y, row in enumerate(rows):
        for x, char in enumerate(row):
            if char == "A":
                agent = (x, y)
            elif char in makers:
                grid.set(x, y, makers[char]())
    return SimpleNamespace(unwrapped=SimpleNamespace(grid=grid, agent_pos=agent, spec=None))


DOORKEY = ["#######",
           "#.A#.G#",
           "#..L..#",
           "#K.#..#",
           "#######"]


def test_grid_shortest_paths_on_hand_made_grids():
    # An open room: Manhattan distance; a wall forces the detour round it; a ball blocks like a wall.
    assert minigrid_shortest_path(_grid_env(["#####", "#A..#", "#...#", "#..G#", "#####"])) == 4
    assert minigrid_shortest_path(_grid_env(["#####", "#A#G#", "#.#.#", "#...#", "#####"])) == 6
    assert minigrid_shortest_path(_grid_env(["#####", "#ABG#", "#...#", "#####"])) == 4
    # An unlocked door is passable: 5 moves. Locked: to beside the key (2), then through the door (5) = 7.
    assert minigrid_shortest_path(_grid_env([row.replace("L", "D") for row in DOORKEY])) == 5
    assert minigrid_shortest_path(_grid_env(DOORKEY)) == 7
    # The key in the only cell before the door: picked up, its cell is free (beside it 2, key cell, door, goal: 6).
    assert minigrid_shortest_path(_grid_env(["#######", "#A.#..#", "#..#..#", "#.KL.G#", "#######"])) == 6
    with pytest.raises(InputError, match="no path"):  # a locked door and no key
        minigrid_shortest_path(_grid_env([row.replace("K", ".") for row in DOORKEY]))


def test_bfs_on_real_maps():
    from robotics.envs import make_env

    env = make_env("MiniGrid-DoorKey-8x8-v0")
    env.reset(seed=3)  # agent (1, 1); key (2, 4); locked door (5, 5); goal (6, 6): 3 moves to beside the key, 7 on
    assert minigrid_shortest_path(env) == 10
    env.reset(seed=1)  # agent (1, 6); key (2, 1), the only way to the door (3, 1); goal (6, 6): 5 + 2 + 8 moves
    assert minigrid_shortest_path(env) == 15
    env.close()
    env = make_env("PointMaze_UMaze-v3")
    env.reset(seed=0)
    maze = env.unwrapped.maze
    free = np.asarray(maze.maze_map) == 0  # the U: (1,1)-(1,3), (2,3), (3,1)-(3,3)
    assert grid_distances(free, [(1, 1)])[3, 1] == 6 and np.isinf(grid_distances(free, [(1, 1)])[0, 0])
    start, goal = (maze.cell_rowcol_to_xy(np.array(cell)) for cell in ((1, 1), (3, 1)))
    # Six cells of the maze's 1 m scaling, less the 0.45 m success radius.
    length = pointmaze_shortest_path(env, {"achieved_goal": start, "desired_goal": goal})
    assert length == pytest.approx(6 * maze.maze_size_scaling - 0.45)
    env.close()


def test_suite_has_random_and_expert_arms_on_each_navigation_env_with_100_full_episodes():
    from robotics.bench import NAVIGATION_ENVS, suite

    quick, full = suite(quick=True), suite(quick=False)
    for env_id in NAVIGATION_ENVS:
        arms = {t.model for t in quick if t.dataset == env_id and t.control}
        assert arms == {"control/random", "control/expert"}
    expert = next(t for t in full if t.name == "expert@PointMaze_UMaze-v3")
    assert expert.run.args[-1] * len(expert.seeds) >= 100  # episodes per seed × seeds


def test_babyai_rows_report_wilson_success_spl_and_length(tmp_path):
    from robotics.bench import suite
    from zoo.bench import run_tasks

    tasks = [t for t in suite(quick=True) if t.dataset == "BabyAI-GoToLocal-v0"]
    rows = {row["model"]: row for row in run_tasks(tasks, suite="robotics", out_dir=tmp_path, progress=False)}
    expert, random = rows["control/expert"], rows["control/random"]
    assert expert["status"] == random["status"] == "ok"
    success = expert["metrics"]["success"]
    assert success["mean"] == 1.0 and success["ci_method"] == "wilson"
    assert success["ci95"] == pytest.approx(list(wilson_ci95(3, 3)[1:]))
    for row in (expert, random):
        assert 0.0 <= row["metrics"]["spl"]["mean"] <= row["metrics"]["success"]["mean"]
        assert row["metrics"]["spl"]["range"] == [0.0, 1.0] and row["extra"]["path_unit"] == "moves"
    assert expert["metrics"]["mean_length"]["mean"] < random["metrics"]["mean_length"]["mean"]
    assert "| spl |" in (tmp_path / "leaderboard.md").read_text()


class ForwardPolicy:
    """A fake bundled navigation policy: always moves forward (action 2)."""

    card = SimpleNamespace(input={"shape": [4]})
    num_params = 7

    def initial_state(self, episodes):
        return None

    def act(self, batch):
        return np.full(len(batch), 2)

    def predict(self, obs):
        return 2


def test_a_bundled_navigation_policy_gets_navigation_rows(monkeypatch, tmp_path):
    import zoo.hub
    from robotics.bench import suite
    from zoo.bench import run_tasks

    monkeypatch.setattr(zoo.hub, "list_models", lambda pattern, pretrained: ["robotics/fake.doorkey"])
    monkeypatch.setattr(zoo.hub, "info", lambda model_id: SimpleNamespace(
        input={"env_ids": ["MiniGrid-DoorKey-8x8-v0"]}, provenance={}))
    monkeypatch.setattr(zoo.hub, "load", lambda model_id, **kwargs: ForwardPolicy())
    tasks = [t for t in suite(quick=True) if t.dataset == "MiniGrid-DoorKey-8x8-v0"]
    assert {t.model for t in tasks} == {"robotics/fake.doorkey", "control/random"}  # DoorKey has no expert
    rows = {row["model"]: row for row in run_tasks(tasks, suite="robotics", out_dir=tmp_path, progress=False)}
    policy = rows["robotics/fake.doorkey"]
    assert policy["status"] == "ok", policy["error"]
    # Walking into the wall never opens the door: no success, SPL 0, every episode runs to the time limit.
    assert policy["metrics"]["success"]["mean"] == 0.0 and policy["metrics"]["spl"]["mean"] == 0.0
    assert policy["metrics"]["mean_length"]["mean"] == 640 and policy["params"] == 7
    assert policy["latency_ms"]["n"] >= 20 and policy["extra"]["path_unit"] == "moves"
