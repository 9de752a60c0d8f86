"""Medical tests run torch on one thread: the volumes are small, and on a shared CPU extra threads only contend."""
import pytest


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")  # for the `zoo` subprocesses
        yield
    torch.set_num_threads(previous)
