"""Fused bias + activation, and out= (the UNet concat-buffer case)."""

import pytest
import torch
import torch.nn.functional as F
from helpers import assert_close_to_reference, forward_launches

import triton_convt
from triton_convt.activations import ACTIVATIONS

KWARGS = dict(stride=2, padding=1, output_padding=1)
SENTINEL = -12345.0


def tensors(dtype=torch.float32, n=2, c_in=8, c_out=6, hw=(4, 5)):
    # Scaled so that the outputs cover the interesting range of every activation (saturation included).
    x = torch.randn(n, c_in, *hw, dtype=dtype)
    w = (torch.randn(c_in, c_out, 3, 3) / 2).to(dtype)
    b = torch.randn(c_out, dtype=dtype)
    return x, w, b


def unfused_reference(x, w, b, activation, negative_slope=0.01, **kwargs):
    """The chain a user runs today (conv, bias, activation), in fp64."""
    y = F.conv_transpose2d(x.double(), w.double(), None if b is None else b.double(), **kwargs)
    return ACTIVATIONS[activation](y, negative_slope)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_activation_matches_unfused_chain_in_one_launch(activation, dtype, count_launches):
    x, w, b = tensors(dtype)
    y = triton_convt.conv_transpose2d(x, w, b, **KWARGS, activation=activation, negative_slope=0.2)
    assert count_launches() == forward_launches(w, KWARGS.get("groups", 1))
    assert_close_to_reference(y, unfused_reference(x, w, b, activation, 0.2, **KWARGS))


def test_activation_without_bias_and_on_empty_phases(count_launches):
    """k1 s2: three of four phases have no tap; they still get act(bias) (here act(0) without bias)."""
    x, _, b = tensors()
    w = torch.randn(8, 6, 1, 1)
    for bias in (b, None):
        y = triton_convt.conv_transpose2d(x, w, bias, stride=2, activation="sigmoid")
        assert_close_to_reference(y, unfused_reference(x, w, bias, "sigmoid", stride=2))
    assert count_launches() == 2 * forward_launches(w)


@pytest.mark.parametrize("activation", ["swish", "ReLU", ""])
def test_unknown_activation_lists_the_valid_ones(activation, count_launches):
    x, w, b = tensors()
    with pytest.raises(ValueError, match=r"unknown activation.*'relu'.*'leaky_relu'.*'gelu_tanh'.*'tanh'"):
        triton_convt.conv_transpose2d(x, w, b, activation=activation)
    assert count_launches() == 0


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_out_into_concat_buffer_slice(layout, count_launches):
    """The decoder writes its upsampled half straight into the concat buffer: no torch.cat copy, and nothing
    outside the slice is touched."""
    x, w, b = tensors()
    skip = torch.randn(2, 5, 8, 10)
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    buf = torch.full((2, 6 + 5, 8, 10), SENTINEL).contiguous(memory_format=fmt)
    buf[:, 6:] = skip
    out = buf[:, :6]
    result = triton_convt.conv_transpose2d(x, w, b, **KWARGS, activation="relu", out=out)
    assert result is out
    assert count_launches() == forward_launches(w, KWARGS.get("groups", 1))
    assert torch.equal(buf[:, 6:], skip)
    expected = torch.cat([F.relu(F.conv_transpose2d(x, w, b, **KWARGS)), skip], dim=1)
    assert_close_to_reference(buf, expected.double())


def test_out_inside_a_sentinel_border_is_written_exactly():
    x, w, b = tensors()
    big = torch.full((4, 10, 13, 15), SENTINEL)
    out = big[1:3, 2:8, 2:10, 3:13]
    triton_convt.conv_transpose2d(x, w, b, **KWARGS, out=out)
    assert_close_to_reference(out, F.conv_transpose2d(x.double(), w.double(), b.double(), **KWARGS))
    inside = torch.zeros_like(big, dtype=torch.bool)
    inside[1:3, 2:8, 2:10, 3:13] = True
    assert (big[~inside] == SENTINEL).all()


def test_out_unbatched():
    x, w, b = tensors()
    out = torch.empty(6, 8, 10)
    result = triton_convt.conv_transpose2d(x[0], w, b, **KWARGS, out=out)
    assert result is out
    assert_close_to_reference(out, F.conv_transpose2d(x[:1].double(), w.double(), b.double(), **KWARGS)[0])


X, W, B = tensors()
BAD_OUT = {
    "wrong-shape": (lambda: torch.zeros(2, 6, 9, 10), RuntimeError, r"out has shape \[2, 6, 9, 10\].*\[2, 6, 8, 10\]"),
    "wrong-dtype": (lambda: torch.zeros(2, 6, 8, 10, dtype=torch.float64), RuntimeError, r"dtype torch.float64"),
    "wrong-device": (lambda: torch.zeros(2, 6, 8, 10, device="meta"), RuntimeError, r"out is on meta"),
    "not-a-tensor": (lambda: [0.0], TypeError, r"'out' must be Tensor"),
    "internal-overlap": (lambda: torch.zeros(2, 6, 8, 1).expand(2, 6, 8, 10), RuntimeError, r"more than one elem"),
}


@pytest.mark.parametrize("name", list(BAD_OUT))
def test_bad_out_raises_before_launch(name, count_launches):
    make, error, message = BAD_OUT[name]
    out = make()
    before = out.clone() if isinstance(out, torch.Tensor) and out.device.type == "cpu" else None
    with pytest.raises(error, match=message):
        triton_convt.conv_transpose2d(X, W, B, **KWARGS, out=out)
    assert count_launches() == 0
    if before is not None:
        assert torch.equal(out, before)


@pytest.mark.parametrize("operand", ["input", "weight", "bias"])
def test_out_overlapping_an_operand_raises(operand, count_launches):
    storage = torch.randn(2 * 6 * 8 * 10 + 500)
    out = storage[:960].view(2, 6, 8, 10)
    x, w, b = X.clone(), W.clone(), B.clone()
    if operand == "input":
        x = storage[800 : 800 + x.numel()].view_as(x)
    elif operand == "weight":
        w = storage[100 : 100 + w.numel()].view_as(w)
    else:
        b = storage[950:956]
    with pytest.raises(RuntimeError, match=f"{operand} tensor and the written-to tensor"):
        triton_convt.conv_transpose2d(x, w, b, **KWARGS, out=out)
    assert count_launches() == 0


def test_out_next_to_an_operand_in_one_buffer_is_allowed(count_launches):
    """Two channel slices of one buffer interleave in memory without sharing an element: not an overlap."""
    buf = torch.randn(2, 6 + 8, 8, 10)
    x = buf[:, 6:, :4, :5]
    out = buf[:, :6]
    expected = F.conv_transpose2d(x.double(), W.double(), B.double(), **KWARGS)
    triton_convt.conv_transpose2d(x, W, B, **KWARGS, out=out)
    assert count_launches() == forward_launches(W, KWARGS.get("groups", 1))
    assert_close_to_reference(out, expected)


def test_out_refuses_autograd_like_torch():
    w = W.clone().requires_grad_()
    with pytest.raises(RuntimeError, match="don't support automatic differentiation"):
        triton_convt.conv_transpose2d(X, w, B, **KWARGS, out=torch.empty(2, 6, 8, 10))
