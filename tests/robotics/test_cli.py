"""``zoo predict`` on a policy: an observation file in, its action out."""
import numpy as np

from tests.zoo.test_cli import run_console_script


def test_predict_prints_a_discrete_action_as_an_integer(tmp_path):
    np.save(tmp_path / "obs.npy", np.zeros(4, dtype=np.float32))
    result = run_console_script("predict", "robotics/mlp_categorical.ppo_cartpole_v1", str(tmp_path / "obs.npy"))
    assert result.returncode == 0 and result.stdout.strip() in (f"{tmp_path / 'obs.npy'}: 0", f"{tmp_path / 'obs.npy'}: 1")
