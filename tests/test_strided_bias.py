"""A bias that is a strided view (every other element of a buffer, or one value expanded to every channel) is read
through its stride, in both forward kernels and in the bias gradient, without a copy."""

import pytest
import torch
import torch.nn.functional as F
from helpers import assert_close_to_reference, forward_launches

import triton_convt
from triton_convt.launch import conv_transpose_fwd

# name: (input shape, weight shape, groups); the depthwise case has one input channel per group.
KERNELS = {
    "gemm": ((2, 8, 3, 4), (8, 12, 3, 3), 1),
    "depthwise": ((2, 6, 3, 4), (6, 2, 3, 3), 6),
}
KWARGS = dict(stride=2, padding=1, output_padding=1)


def strided_biases(c_out):
    """Biases of ``c_out`` elements whose stride is not 1: every other element of a buffer (starting off its
    first element), and one value expanded to every channel (stride 0)."""
    return {
        "every-other": torch.randn(2 * c_out + 1)[1::2],
        "expanded": torch.randn(1).expand(c_out),
    }


@pytest.mark.parametrize("bias_kind", ["every-other", "expanded"])
@pytest.mark.parametrize("kernel", list(KERNELS))
def test_strided_bias_forward_matches_torch(kernel, bias_kind, count_launches, monkeypatch):
    x_shape, w_shape, groups = KERNELS[kernel]
    x, w = torch.randn(x_shape), torch.randn(w_shape)
    b = strided_biases(w_shape[1] * groups)[bias_kind]
    assert b.stride() != (1,)
    plans = []
    original = conv_transpose_fwd.plan
    monkeypatch.setattr(conv_transpose_fwd, "plan", lambda *a, **k: plans.append(original(*a, **k)) or plans[-1])
    y = triton_convt.conv_transpose2d(x, w, b, groups=groups, **KWARGS, activation="leaky_relu", negative_slope=0.2)
    assert count_launches() == forward_launches(w, groups)
    assert plans[0].kernel.__name__.endswith("depthwise_kernel") == (kernel == "depthwise")
    assert plans[0].args["bias_ptr"] is b  # read in place, not copied
    ref = F.leaky_relu(F.conv_transpose2d(x.double(), w.double(), b.double(), groups=groups, **KWARGS), 0.2)
    assert_close_to_reference(y, ref)


@pytest.mark.parametrize("kernel", list(KERNELS))
def test_strided_bias_gradient_matches_torch(kernel):
    """Through autograd, the gradient of a bias that is a view of a buffer lands in the view's own elements of the
    buffer, and a strided leaf gets a gradient of its own shape: both equal torch's."""
    x_shape, w_shape, groups = KERNELS[kernel]
    c_out = w_shape[1] * groups
    x, w = torch.randn(x_shape, dtype=torch.float64), torch.randn(w_shape, dtype=torch.float64)
    values = torch.randn(2 * c_out + 1, dtype=torch.float64)
    dy = None
    convs = {
        "ours": lambda b: triton_convt.conv_transpose2d(x, w, b, groups=groups, **KWARGS, activation="silu"),
        "torch": lambda b: F.silu(F.conv_transpose2d(x, w, b, groups=groups, **KWARGS)),
    }
    grads = {}
    for name, conv in convs.items():
        buffer = values.clone().requires_grad_()
        leaf = values.clone()[1::2].requires_grad_()  # a leaf whose stride is 2
        assert leaf.is_leaf and leaf.stride() == (2,)
        outs = [conv(buffer[1::2]), conv(leaf)]
        if dy is None:
            dy = torch.randn(outs[0].shape, dtype=torch.float64)
        torch.autograd.backward(outs, [dy, dy])
        grads[name] = (buffer.grad, leaf.grad)
    for ours, theirs in zip(grads["ours"], grads["torch"]):
        assert ours.shape == theirs.shape
        assert_close_to_reference(ours, theirs)
    assert grads["ours"][1].shape == (c_out,)
    assert grads["ours"][0][0::2].eq(0).all()  # elements outside the view get no gradient
