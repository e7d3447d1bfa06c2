"""What differs between the supported Triton releases (``triton_convt.compat``): each rule decides what it should
on the installed Triton and on a stand-in for another one. CI runs this file on triton 3.9.0 and on 3.6.0."""

import numpy
import pytest
import torch
import torch.nn.functional as F
import triton
from helpers import assert_close_to_reference, forward_launches

import triton_convt
from triton_convt import compat
from triton_convt.launch import configs

FWD = "conv_transpose2d_fwd"
#: 6 input channels: the fp64 forward's smallest K tile that fits is 8 where triton compiles it (3.8 on).
SMALL_K = {"BLOCK_M": 32, "BLOCK_N": 8, "BLOCK_K": 6}


def test_a_config_below_the_dot_bound_of_the_installed_triton_is_no_candidate(monkeypatch):
    listed = configs.load("default")[FWD]["fp64"]
    assert min(c["BLOCK_K"] for c in listed) == 8  # the file ships a K step of 8 for fp64
    monkeypatch.setattr(compat, "min_dot_k", lambda cls: 16)  # triton 3.6 and 3.7: no tl.dot with K < 16
    assert all(c["BLOCK_K"] >= 16 for c in configs.usable("default", FWD, "fp64"))
    assert configs.choose(FWD, torch.float64, SMALL_K)["BLOCK_K"] == 16
    monkeypatch.setattr(compat, "min_dot_k", lambda cls: {"16bit": 16, "fp32": 8, "fp64": 4}[cls])  # 3.8 on
    assert configs.usable("default", FWD, "fp64") == listed
    assert configs.choose(FWD, torch.float64, SMALL_K)["BLOCK_K"] == 8


def test_an_fp64_layer_with_few_input_channels_runs_with_a_config_the_installed_triton_compiles(count_launches):
    x, w = torch.randn(2, 6, 5, 5, dtype=torch.float64), torch.randn(6, 4, 3, 3, dtype=torch.float64)
    y = triton_convt.conv_transpose2d(x, w, stride=2)
    assert count_launches() == forward_launches(w)
    assert_close_to_reference(y, F.conv_transpose2d(x, w, stride=2))
    assert configs.choose(FWD, torch.float64, SMALL_K)["BLOCK_K"] >= compat.min_dot_k("fp64")


def test_bf16_dot_runs_in_fp32_only_under_the_interpreter():
    assert compat.dot_in_fp32(torch.bfloat16, interpreted=True)
    assert not compat.dot_in_fp32(torch.bfloat16, interpreted=False)
    assert not any(compat.dot_in_fp32(d, True) for d in (torch.float16, torch.float32, torch.float64))


@pytest.mark.parametrize(
    "triton_version, numpy_version, broken",
    [("3.6.0", "2.4.0", True), ("3.6.0", "2.3.5", False), ("3.7.1", "2.4.0", False), ("3.9.0", "2.4.6", False)],
)
def test_interpreter_error_names_the_numpy_that_triton_36_cannot_run_with(
    monkeypatch, triton_version, numpy_version, broken
):
    monkeypatch.setattr(triton, "__version__", triton_version)
    monkeypatch.setattr(numpy, "__version__", numpy_version)
    error = compat.interpreter_error.__wrapped__()
    assert (error is not None) == broken
    if broken:
        assert "numpy<2.4" in error and triton_version in error


def test_this_environment_can_run_the_interpreter():
    assert compat.interpreter_error() is None


def test_a_launch_under_a_broken_interpreter_says_why_instead_of_failing_in_the_kernel(monkeypatch):
    monkeypatch.setattr(compat, "interpreter_error", lambda: "the Triton interpreter of triton 3.6.0 cannot run")
    x, w = torch.randn(1, 4, 3, 3), torch.randn(4, 2, 3, 3)
    with pytest.raises(RuntimeError, match="cannot run"):
        triton_convt.conv_transpose2d(x, w)
