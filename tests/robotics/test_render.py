"""Rendering a policy's episodes to an animated GIF: ``PolicyModel.render`` and ``zoo predict --render``."""
import numpy as np
import pytest
from PIL import Image

import zoo
from robotics.tasks import Recording, run_episodes
from tests.zoo.test_cli import run_console_script

CARTPOLE = "robotics/mlp_categorical.ppo_cartpole_v1"


def gif_frames(path):
    """Each frame's size and display time (ms) of an animated GIF."""
    with Image.open(path) as gif:
        frames = []
        for index in range(gif.n_frames):
            gif.seek(index)
            frames.append((gif.size, gif.info["duration"]))
        return frames


def test_a_recording_holds_the_reset_frame_and_one_a_step_for_each_episode():
    recording = Recording()
    rollout = run_episodes(lambda obs: (obs[:, 2] > 0).astype(np.int64), "CartPole-v1", 2, seed=0, recording=recording)
    assert [len(frames) for frames in recording.episodes] == [n + 1 for n in rollout.lengths]
    assert recording.fps == 50 and recording.episodes[0][0].shape == (400, 600, 3)
    assert not np.array_equal(recording.episodes[0][0], recording.episodes[0][-1])  # the pole moved


def test_render_writes_the_episode_as_a_gif_scaled_to_320_px(tmp_path):
    policy = zoo.load(CARTPOLE)
    rollout = policy.render(tmp_path / "cartpole.gif", seed=1)
    frames = gif_frames(tmp_path / "cartpole.gif")
    assert {size for size, _ in frames} == {(320, 213)}
    # Pillow merges identical consecutive frames, adding up their durations: the time shown is the episode's
    assert sum(duration for _, duration in frames) == (rollout.lengths[0] + 1) * 20
    assert rollout.returns[0] == rollout.lengths[0] >= 475


def test_render_refuses_a_path_that_is_not_a_gif_and_writes_nothing(tmp_path):
    with pytest.raises(zoo.InputError, match=r"expected a path ending in \.gif, got .*clip\.mp4"):
        zoo.load(CARTPOLE).render(tmp_path / "clip.mp4")
    assert not list(tmp_path.iterdir())


def test_zoo_predict_render_writes_a_gif_and_prints_the_return(tmp_path):
    result = run_console_script("predict", CARTPOLE, "--render", str(tmp_path / "ep.gif"), "--seed", "2")
    assert result.returncode == 0 and result.stderr == ""  # pygame's SDL is kept from printing without a display
    assert result.stdout.startswith("CartPole-v1, seed 2: return ") and "ep.gif" in result.stdout
    assert len(gif_frames(tmp_path / "ep.gif")) > 100


@pytest.mark.parametrize("args, message", [
    ([CARTPOLE], "error: expected INPUTS to predict on"),
    ([CARTPOLE, "obs.npy", "--render", "ep.gif"], "error: --render rolls the policy out in its own environment"),
    ([CARTPOLE, "--render", "ep.gif", "--json"], "error: --render rolls the policy out in its own environment"),
    (["vision/efficientnet_lite0.in1k", "--render", "ep.gif"], "error: --render needs a policy (task control)"),
])
def test_zoo_predict_render_usage_mistakes_are_one_line_errors(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = run_console_script("predict", *args)
    assert result.returncode == 1 and result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(message) and not (tmp_path / "ep.gif").exists()


def test_zoo_predict_renders_the_maze_policy_reaching_its_goal_with_nothing_on_stderr(tmp_path):
    pytest.importorskip("gymnasium_robotics")
    result = run_console_script("predict", "robotics/mlp_squashed_gaussian.sac_pointmaze_umaze_v3",
                                "--render", str(tmp_path / "maze.gif"), "--seed", "1")
    assert result.returncode == 0 and result.stderr == ""  # no upstream import notices either
    assert result.stdout.startswith("PointMaze_UMaze-v3, seed 1: return 1.0 in ")
    assert gif_frames(tmp_path / "maze.gif")[0][0] == (320, 320)
