"""Test setup: run the Triton kernels through the interpreter on CPU tensors.

TRITON_INTERPRET must be set before triton_convt (which defines the kernels) is imported, so it is set here, at
conftest import time. TRITON_DEFAULT_FP_FUSION is set explicitly because triton 3.9 warns when it is not.
"""

import os

os.environ["TRITON_INTERPRET"] = "1"
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from triton_convt import launch  # noqa: E402

assert launch.interpreter_active(), "triton_convt was imported before conftest set TRITON_INTERPRET=1"

@pytest.fixture
def count_launches():
    """Returns a function giving the number of Triton launches since the test started."""
    start = launch.launch_count()
    return lambda: launch.launch_count() - start


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
