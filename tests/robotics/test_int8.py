"""int8 export of MLP policies: the return over held-out episodes of the int8 bundle beside fp32's."""
import json
import os
import shutil
import subprocess

import pytest

from zoo.errors import BackendError
from zoo.export import export

CARTPOLE = "robotics/mlp_categorical.ppo_cartpole_v1"


def test_the_zoo_script_writes_an_int8_policy_with_its_return_beside_fp32s(tmp_path):
    pytest.importorskip("gymnasium", reason="the episodes run in gymnasium: pip install 'domain-zoo[robotics]'")
    out = tmp_path / "int8"
    result = subprocess.run([shutil.which("zoo"), "export", CARTPOLE, "--format", "onnx", "--quantize", "int8",
                             "--out", str(out)], capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "int8: mean_return 500.0000 (fp32 500.0000) on 10 samples of CartPole-v1" in result.stdout
    quality = json.loads((out / "parity.json").read_text())["quality"]
    assert quality["split"] == "episodes seeded 100000+" and len(quality["int8_returns"]) == 10
    assert quality["tolerance"] == pytest.approx(25.0) and quality["passed"]  # 5% of fp32's 500
    quantization = json.loads((out / "bundle.json").read_text())["quantization"]
    assert quantization["quantized_nodes"] == 3  # the three linear layers


def test_a_recurrent_policy_is_not_quantized(monkeypatch):
    from zoo.model import require_int8
    from zoo.hub import load

    policy = load(CARTPOLE, device="cpu")
    monkeypatch.setattr(policy.adapter, "state_shape", (4,))  # as a recurrent policy's card would give it
    with pytest.raises(BackendError, match="has no int8 quantization"):
        require_int8(policy.adapter)
    with pytest.raises(BackendError, match="has no int8 quantization"):
        export(policy, "unused", quantize="int8")
