"""torch-compile and onnxruntime backends: same predictions as eager, checked, with clear failures."""
import tempfile

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

import backends
import zoo
from backends.onnx_backend import ExportError, export_onnx
from backends.parity import ParityError, Tolerance, check_parity
from zoo.errors import BackendError
from zoo.hub import weights_status

DIGITS = "vision/digits_cnn.sklearn"


@pytest.fixture(scope="module")
def digit_images():
    return list(load_digits().images[:7])


@pytest.mark.parametrize("backend", ["onnxruntime", "torch-compile"])
def test_backend_predicts_as_eager_at_any_batch_size(backend, digit_images):
    eager = zoo.load(DIGITS, device="cpu")
    converted = zoo.load(DIGITS, device="cpu", backend=backend)
    assert converted.backend == backend and converted.parity.passed
    assert [b["inputs"][0] for b in converted.parity.to_dict()["batches"]] == [2, 3]  # two batch sizes checked
    for batch in (digit_images[:1], digit_images):  # batch sizes the conversion never saw
        expected, got = eager.predict(batch), converted.predict(batch)
        assert [p["label"] for p in got] == [p["label"] for p in expected]
        assert np.allclose([p["score"] for p in got], [p["score"] for p in expected], atol=1e-5)
    assert converted.card.id == DIGITS and converted.num_params == eager.num_params
    assert not any(p.requires_grad for p in converted.parameters())  # inference only: nothing to train
    assert converted.device == eager.device and not list(converted.net.parameters())  # no stand-in parameter


def test_parity_failure_names_the_model_and_the_largest_difference(monkeypatch):
    class Off:
        name, can_train = "off-by-one", False

        def prepare(self, module, example_inputs=None):
            return lambda inputs: module(inputs) + 1.0  # a broken converter

    monkeypatch.setitem(backends._registered, "off-by-one", Off)
    with pytest.raises(BackendError, match=r"vision/digits_cnn.sklearn on off-by-one does not match eager PyTorch: "
                                           r"largest difference 1"):
        zoo.load(DIGITS, device="cpu", backend="off-by-one")


def test_relative_tolerance_for_large_outputs():
    net = torch.nn.Linear(4, 2)
    scaled = lambda x: net(x) * 1e6  # noqa: E731
    nudged = lambda x: scaled(x) * (1 + 1e-6)  # noqa: E731
    report = check_parity(scaled, nudged, [torch.rand(2, 4)], name="big", backend="b", tolerance=Tolerance(1e-4, 1e-4))
    assert report.passed and report.max_abs_diff > 1e-4
    with pytest.raises(ParityError, match="big on b"):
        check_parity(scaled, nudged, [torch.rand(2, 4)], name="big", backend="b", tolerance=Tolerance(1e-4, 1e-9))


class DataDependent(torch.nn.Module):
    def forward(self, x):
        return x * 2 if x.sum() > 0 else x  # control flow on values: no static graph


def test_an_unexportable_network_says_so(tmp_path):
    with pytest.raises(ExportError, match="DataDependent cannot be exported to ONNX"):
        export_onnx(DataDependent(), torch.rand(2, 3), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_unknown_backend_lists_the_known_ones():
    with pytest.raises(BackendError, match="known backends: .*onnxruntime.*torch-compile"):
        zoo.load(DIGITS, device="cpu").to_backend("tensorrt")


# Molecule graphs have no fixed-shape tensor input, and recurrent policies take their state as a second
# one: those models refuse other backends (tests/medical, tests/robotics/test_recurrent_ppo.py).
@pytest.mark.parametrize("model_id", [m for m in zoo.list_models(pretrained=True)
                                      if m.split("/")[0] in ("medical", "robotics") and weights_status(m) == "bundled"
                                      and zoo.info(m).task != "molecular-property"
                                      and not zoo.info(m).input.get("state_shape")])
def test_bundled_models_of_every_domain_run_on_onnxruntime(model_id):
    converted = zoo.load(model_id, device="cpu", backend="onnxruntime")
    assert converted.parity.passed and len(converted.parity.batches) == 2


@pytest.mark.parametrize("model_id", ["medical/unet3d.ct_phantom", "robotics/mlp_gaussian.ppo_hopper_v5"])
def test_bundled_3d_unet_and_policy_run_on_torch_compile(model_id):
    converted = zoo.load(model_id, device="cpu", backend="torch-compile")
    assert converted.parity.passed and len(converted.parity.batches) == 2


def test_torch_compile_freezes_weights_into_the_graph():
    # Dynamo decides from the global Inductor config whether parameters are constants;
    # the runner must set it, or no batch norm is folded and no weight pre-packed.
    from torch._dynamo.utils import counters

    from backends.compile_backend import TorchCompileBackend

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.ReLU()).eval()
    counters.clear()
    runner = TorchCompileBackend().prepare(net, torch.rand(2, 3, 16, 16))
    assert counters["inductor"]["binary_folding_conv"] >= 1  # the batch norm folded into the conv
    if torch.backends.mkldnn.is_available():
        assert counters["inductor"]["mkldnn_conv_weight_pack_matcher_count"] == 1
    x = torch.rand(5, 3, 16, 16)  # a new batch size recompiles, frozen again
    with torch.no_grad():
        assert torch.allclose(runner(x), net(x), atol=1e-5)
    assert counters["inductor"]["binary_folding_conv"] >= 2


def test_a_conversion_leaves_no_graph_behind(tmp_path, monkeypatch):
    """Converting without a path exports into a temporary folder that goes once the session holds the graph
    (each conversion used to leave its .onnx file in the system's temp folder)."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    converted = zoo.load(DIGITS, device="cpu", backend="onnxruntime")
    assert converted.parity.passed and not list(tmp_path.glob("zoo-onnx-*"))
