"""Test setup: where the kernels run.

By default (``python -m pytest``) the Triton kernels run through the interpreter on CPU tensors. With
``--device cuda`` they run compiled on a CUDA GPU: tensors made without a device are made on the GPU
(``torch.set_default_device``), results are still compared with torch in fp64, float32 with TF32-aware tolerances
(``helpers.py``), and the tests that only make sense under the interpreter (``@pytest.mark.interpreter_only``) are
skipped. Without a CUDA device, ``--device cuda`` stops at once with an error naming CUDA: it never passes silently.

Two tiers: the tests marked ``full`` (the full matrix: every shipped config x dtype x layout x arch, the hot-loop
gate, deep fuzzing) run with ``-m full``; ``python -m pytest`` leaves them out (``addopts`` in pyproject.toml) and
still covers every public function, kernel, dtype and layout, the errors, autograd and one AOT build per kernel and
arch. CI runs both (``.ci/run``).

TRITON_INTERPRET must be set (or unset) before triton_convt, which defines the kernels, is imported: it is done in
``pytest_configure``, before any test module is collected. TRITON_DEFAULT_FP_FUSION is set explicitly because
triton warns when it is not.
"""

import os

import pytest
import torch


def pytest_addoption(parser):
    parser.addoption("--device", choices=("cpu", "cuda"), default="cpu",
                     help="cpu: the Triton interpreter on CPU tensors (default); cuda: the compiled kernels on a CUDA "
                     "GPU")  # fmt: skip


def pytest_configure(config):
    config.addinivalue_line("markers", "interpreter_only: needs the Triton interpreter (skipped with --device cuda)")
    config.addinivalue_line("markers", "cuda_only: checks CUDA-only behaviour (runs with --device cuda)")
    config.addinivalue_line("markers", "full: the full matrix, left out of the quick tier (run with -m full)")
    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    if config.getoption("--device") == "cuda":
        if not torch.cuda.is_available():
            raise pytest.UsageError("--device cuda: no CUDA device (torch.cuda.is_available() is False); run without "
                                    "--device to test on the CPU under the Triton interpreter")  # fmt: skip
        os.environ.pop("TRITON_INTERPRET", None)
        torch.set_default_device("cuda")
    else:
        os.environ["TRITON_INTERPRET"] = "1"
    from triton_convt import launch

    expected = config.getoption("--device") == "cpu"
    assert launch.interpreter_active() == expected, "triton_convt was imported before conftest set TRITON_INTERPRET"


def pytest_collection_modifyitems(config, items):
    device = config.getoption("--device")
    skip = {
        "interpreter_only": pytest.mark.skip(reason="needs the Triton interpreter (CPU run)"),
        "cuda_only": pytest.mark.skip(reason="CUDA-only behaviour (run with --device cuda)"),
    }
    for item in items:
        if device == "cuda" and "interpreter_only" in item.keywords:
            item.add_marker(skip["interpreter_only"])
        if device == "cpu" and "cuda_only" in item.keywords:
            item.add_marker(skip["cuda_only"])


@pytest.fixture(scope="session")
def device(request) -> torch.device:
    """The device the kernels are tested on (``--device``)."""
    return torch.device(request.config.getoption("--device"))


@pytest.fixture
def count_launches():
    """Returns a function giving the number of Triton launches since the test started."""
    from triton_convt import launch

    start = launch.launch_count()
    return lambda: launch.launch_count() - start


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
