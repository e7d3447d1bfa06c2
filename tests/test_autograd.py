"""Autograd through the Triton backward kernels, the torch.library op, and torch.compile."""

import copy

import pytest
import torch
import torch.nn.functional as F
from helpers import assert_bitwise_repeatable, assert_close_to_reference, assert_compiled_matches_eager
from torch import nn

import triton_convt
from triton_convt.activations import ACTIVATIONS
from triton_convt.functional.conv_transpose import check_call
from triton_convt.launch import configs
from triton_convt.launch import conv_transpose_bwd as backward

# name: (input shape, weight shape, keyword arguments); small, because gradcheck evaluates the op many times.
# fmt: off
GRAD_CASES = {
    "k3-s2-p1-op1": ((2, 4, 3, 3), (4, 3, 3, 3), dict(stride=2, padding=1, output_padding=1)),
    "groups2-dilation2": ((1, 4, 3, 4), (4, 2, 3, 2), dict(stride=2, groups=2, dilation=2)),
    "depthwise": ((1, 3, 3, 3), (3, 1, 3, 3), dict(stride=2, padding=1, groups=3)),
    "stride-over-kernel": ((1, 3, 3, 2), (3, 2, 1, 2), dict(stride=3, output_padding=(2, 1))),
    "asymmetric-d-over-s-op": ((1, 2, 3, 4), (2, 3, 2, 3), dict(stride=(1, 2), dilation=(3, 1), output_padding=(2, 1))),
    "stride3-padding2": ((1, 2, 3, 3), (2, 2, 4, 4), dict(stride=3, padding=2, output_padding=1)),
    "k1-s1": ((2, 3, 2, 3), (3, 4, 1, 1), dict()),
    "opinfo-d4-s3x2-g2": ((1, 2, 3, 3), (2, 2, 4, 5), dict(stride=(3, 2), padding=(1, 2), output_padding=(2, 3),
                                                            groups=2, dilation=(4, 4))),
}
# fmt: on
ACTIVATION_NAMES = [None, *ACTIVATIONS]
assert len(ACTIVATION_NAMES) == len(GRAD_CASES)


# Each configuration with a different activation: every configuration and every activation is checked, at a
# fraction of the interpreter time of the full product. The quick tier runs half of them (no activation, one whose
# derivative is read from the output, two that recompute the pre-activation; depthwise, empty phases, dilation over
# stride), -m full the other half; groups with dilation, low precision and silu/tanh gradients stay in the quick
# tier below (test_low_precision_gradients_match_torch).
QUICK_GRADCHECK = {"k3-s2-p1-op1", "depthwise", "stride-over-kernel", "asymmetric-d-over-s-op"}


@pytest.mark.parametrize(
    "name, activation",
    [
        pytest.param(name, activation, marks=() if name in QUICK_GRADCHECK else (pytest.mark.full,))
        for name, activation in zip(GRAD_CASES, ACTIVATION_NAMES)
    ],
)
def test_gradcheck(name, activation, count_launches):
    shape_x, shape_w, kwargs = GRAD_CASES[name]
    groups = kwargs.get("groups", 1)
    x = torch.randn(shape_x, dtype=torch.float64, requires_grad=True)
    w = (torch.randn(shape_w, dtype=torch.float64) / 2).requires_grad_()
    b = torch.randn(shape_w[1] * groups, dtype=torch.float64, requires_grad=True)

    def f(x, w, b):
        return triton_convt.conv_transpose2d(x, w, b, **kwargs, activation=activation, negative_slope=0.2)

    assert torch.autograd.gradcheck(f, (x, w, b), fast_mode=True)
    assert count_launches() > 0


def reference_grads(x, w, b, grad, activation, **kwargs):
    """torch's gradients in fp64 from the same (rounded) inputs."""
    xd, wd = x.detach().double().requires_grad_(), w.detach().double().requires_grad_()
    bd = None if b is None else b.detach().double().requires_grad_()
    y = F.conv_transpose2d(xd, wd, bd, **kwargs)
    if activation:
        y = ACTIVATIONS[activation](y, 0.2)
    inputs = [t for t in (xd, wd, bd) if t is not None]
    return y, torch.autograd.grad(y, inputs, grad.double())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("activation", [None, "silu", "tanh"], ids=str)
def test_low_precision_gradients_match_torch(dtype, activation, count_launches):
    shape_x, shape_w, kwargs = GRAD_CASES["groups2-dilation2"]
    x = torch.randn(shape_x, dtype=dtype, requires_grad=True)
    w = (torch.randn(shape_w) / 2).to(dtype).requires_grad_()
    b = torch.randn(4, dtype=dtype, requires_grad=True)
    y = triton_convt.conv_transpose2d(x, w, b, **kwargs, activation=activation, negative_slope=0.2)
    grad = torch.randn_like(y)
    grads = torch.autograd.grad(y, (x, w, b), grad)
    ref_y, ref_grads = reference_grads(x, w, b, grad, activation, **kwargs)
    assert_close_to_reference(y, ref_y.detach())
    for ours, theirs in zip(grads, ref_grads):
        assert ours.dtype == dtype
        # Gradients of low-precision activations are computed from the rounded output, as torch's are.
        scale = 4 if dtype == torch.bfloat16 else 2
        torch.testing.assert_close(
            ours.double(),
            theirs,
            atol=scale * 1.6e-2 * max(1, theirs.abs().max().item()) if dtype != torch.float32 else 1e-4,
            rtol=scale * 1.6e-2,
        )


def test_repeated_backward_is_bitwise_identical():
    shape_x, shape_w, kwargs = GRAD_CASES["opinfo-d4-s3x2-g2"]
    x, w = torch.randn(shape_x, requires_grad=True), torch.randn(shape_w, requires_grad=True)
    b = torch.randn(4, requires_grad=True)
    assert_bitwise_repeatable(lambda *t: triton_convt.conv_transpose2d(*t, **kwargs, activation="gelu"), x, w, b)


@pytest.mark.parametrize("splits", [1, 2, 5])
def test_split_reductions_give_the_same_gradients(splits):
    """The weight and bias gradients reduce over pixels in fixed splits; any split count gives torch's result."""
    x, w = torch.randn(2, 4, 5, 3, dtype=torch.float64), torch.randn(4, 3, 3, 3, dtype=torch.float64)
    params = check_call(x, w, None, 2, 1, 1, 1, 1)
    dz = torch.randn(2, 3, 10, 6, dtype=torch.float64)
    plan, partial = backward.weight_grad_plan(x, dz, w, params, splits=splits)
    plan.launch()
    assert partial.shape[0] == splits
    _, (expected_dw,) = _weight_grad_reference(x, w, dz)
    torch.testing.assert_close(partial.sum(0), expected_dw)
    plan, partial = backward.bias_grad_plan(dz, splits=splits)
    plan.launch()
    torch.testing.assert_close(partial.sum(0), dz.sum((0, 2, 3)))


def test_every_backward_launcher_tunes_its_own_kernel_through_config_for(monkeypatch):
    """On a GPU each backward kernel is tuned like the forward one: config_for gets the kernel's key and a
    plan_for that builds a launch with each candidate's tiles. Stood in for here: the stand-in builds every fitting
    candidate's plan, as a tuning run would, and hands back the smallest, which must then give torch's gradients."""
    asked = {}

    def tuning(kernel, dtype, device, sizes, plan_for, **_):
        candidates = configs.fitting(configs.load("default")[kernel][configs.dtype_class(dtype)], sizes)
        for config in candidates:
            args = plan_for(config).args
            assert all(args[k] == v for k, v in config.items() if k.startswith("BLOCK")), (kernel, config)
        asked[kernel] = sizes
        return dict(candidates[-1])

    monkeypatch.setattr(configs, "config_for", tuning)
    shape_x, shape_w, kwargs = GRAD_CASES["k3-s2-p1-op1"]
    x, w = torch.randn(shape_x, requires_grad=True), torch.randn(shape_w, requires_grad=True)
    b = torch.randn(3, requires_grad=True)
    y = triton_convt.conv_transpose2d(x, w, b, **kwargs, activation="silu")
    grads = torch.autograd.grad(y.square().sum(), (x, w, b))
    assert set(asked) == {"weight_repack", "conv_transpose2d_fwd_nchw", "activation_bwd",
                          "conv_transpose2d_bwd_input_nchw", "conv_transpose2d_bwd_weight", "channel_sum"}  # fmt: skip
    leaves = [t.detach().double().requires_grad_() for t in (x, w, b)]
    ref = F.silu(F.conv_transpose2d(*leaves, **kwargs))
    for got, expected in zip(grads, torch.autograd.grad(ref.square().sum(), leaves)):
        assert_close_to_reference(got, expected)


def _weight_grad_reference(x, w, dz):
    wd = w.clone().requires_grad_()
    y = F.conv_transpose2d(x, wd, stride=2, padding=1, output_padding=1)
    return y, torch.autograd.grad(y, (wd,), dz)


def test_layouts_and_expanded_grad(count_launches):
    """channels_last input, a non-contiguous weight, unbatched input and the stride-0 gradient of .sum()."""
    x = torch.randn(2, 4, 3, 3).to(memory_format=torch.channels_last).requires_grad_()
    w = torch.randn(3, 4, 3, 3).transpose(0, 1).requires_grad_()  # [4, 3, 3, 3] view, not contiguous
    y = triton_convt.conv_transpose2d(x, w, stride=2, activation="relu")
    gx, gw = torch.autograd.grad(y.sum(), (x, w))
    ref_y, (rx, rw) = reference_grads(x, w, None, torch.ones(y.shape), "relu", stride=2)
    assert_close_to_reference(gx, rx)
    assert_close_to_reference(gw, rw)
    xu = torch.randn(4, 3, 3, requires_grad=True)
    (gxu,) = torch.autograd.grad(triton_convt.conv_transpose2d(xu, w.detach(), stride=2).sum(), (xu,))
    assert gxu.shape == xu.shape
    _, (rxu, _) = reference_grads(xu[None], w, None, torch.ones(1, 3, 7, 7), None, stride=2)
    assert_close_to_reference(gxu, rxu[0])


def test_only_requested_gradients_are_computed(count_launches):
    x = torch.randn(1, 4, 3, 3)
    w = torch.randn(4, 3, 3, 3, requires_grad=True)
    y = triton_convt.conv_transpose2d(x, w, stride=2)
    before = count_launches()
    y.sum().backward()
    assert count_launches() - before == 1  # only the weight-gradient kernel
    assert x.grad is None and w.grad is not None


def test_empty_batch_backward():
    x = torch.randn(0, 4, 3, 3, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, requires_grad=True)
    b = torch.randn(3, requires_grad=True)
    triton_convt.conv_transpose2d(x, w, b, stride=2).sum().backward()
    assert x.grad.shape == x.shape
    assert torch.equal(w.grad, torch.zeros_like(w)) and torch.equal(b.grad, torch.zeros_like(b))


def test_opcheck():
    x = torch.randn(1, 4, 3, 3, requires_grad=True)
    w = torch.randn(4, 2, 3, 3, requires_grad=True)
    b = torch.randn(4, requires_grad=True)
    args = (x, w, b, [2, 2], [1, 1], [1, 1], 2, [1, 1], "silu", 0.01)
    torch.library.opcheck(torch.ops.triton_convt.conv_transpose2d.default, args)
    out = torch.empty(1, 4, 6, 6)
    torch.library.opcheck(
        torch.ops.triton_convt.conv_transpose2d_out.default, (x.detach(), w.detach(), b.detach(), *args[3:], out)
    )


def test_meta_tensors_get_the_output_shape():
    x = torch.empty(2, 16, 7, 5, device="meta")
    w = torch.empty(16, 33, 3, 5, device="meta")
    y = triton_convt.conv_transpose2d(x, w, stride=(2, 1), padding=(4, 2))
    assert y.device.type == "meta" and y.shape == F.conv_transpose2d(x, w, stride=(2, 1), padding=(4, 2)).shape


def test_meta_tensors_take_out_like_torch():
    """Meta tensors have no memory: torch's out= takes a slice of another meta tensor, and so does ours (every meta
    storage reports data pointer 0, which must not read as shared memory); the overlap check still holds on real
    tensors."""
    x, w = torch.empty(2, 16, 7, 5, device="meta"), torch.empty(16, 8, 4, 4, device="meta")
    buf = torch.empty(2, 16, 14, 10, device="meta")
    assert torch.add(buf[:, 8:], 1, out=buf[:, :8]).shape == (2, 8, 14, 10)
    out = buf[:, :8]
    assert triton_convt.conv_transpose2d(x, w, stride=2, padding=1, activation="relu", out=out) is out
    x = torch.zeros(1, 1, 3, 3)
    with pytest.raises(RuntimeError, match="input tensor and the written-to tensor"):
        triton_convt.conv_transpose2d(x, torch.zeros(1, 1, 1, 1), out=x)


def small_decoder():
    return nn.Sequential(
        nn.ConvTranspose2d(8, 6, 4, 2, 1), nn.BatchNorm2d(6), nn.ReLU(),
        nn.ConvTranspose2d(6, 3, 3, 2, 1, output_padding=1), nn.Tanh(),
    )  # fmt: skip


def test_torch_compile_fullgraph_matches_eager(count_launches):
    torch.manual_seed(3)
    eager = triton_convt.convert(small_decoder())
    assert_compiled_matches_eager(eager, torch.randn(2, 8, 3, 3))
    assert count_launches() > 0


@pytest.mark.full  # quick tier: gradcheck and the compiled decoder's gradients above; upsample_conv's training run
def test_training_tracks_torch():
    """A few SGD steps of a converted decoder follow torch's own training losses."""
    torch.manual_seed(4)
    theirs = small_decoder()
    ours = triton_convt.convert(copy.deepcopy(theirs))
    assert [m.activation for m in ours.modules() if isinstance(m, triton_convt.ConvTranspose2d)] == [None, "tanh"]
    x, target = torch.randn(4, 8, 3, 3), torch.rand(4, 3, 12, 12) * 2 - 1
    losses = []
    for model in (theirs, ours):
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        run = []
        for _ in range(4):
            opt.zero_grad()
            loss = F.mse_loss(model(x), target)
            loss.backward()
            opt.step()
            run.append(loss.item())
        losses.append(run)
    assert losses[0][-1] < losses[0][0]  # the run is a real training run
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-4, atol=1e-5)
    for p_theirs, p_ours in zip(theirs.parameters(), ours.parameters()):
        torch.testing.assert_close(p_ours, p_theirs, rtol=1e-4, atol=1e-5)


def test_cpu_fallback_runs_torch_and_backpropagates(tmp_path):
    """Without the interpreter, CPU tensors take torch's implementation, forward and backward (no launch)."""
    import os
    import subprocess
    import sys

    script = tmp_path / "fallback.py"
    script.write_text(
        "import torch, torch.nn.functional as F, triton_convt\n"
        "from triton_convt import launch\n"
        "assert not launch.interpreter_active()\n"
        "x = torch.randn(2, 4, 3, 3, dtype=torch.float64, requires_grad=True)\n"
        "w = torch.randn(4, 3, 3, 3, dtype=torch.float64, requires_grad=True)\n"
        "y = triton_convt.conv_transpose2d(x, w, stride=2, activation='gelu')\n"
        "ref = F.gelu(F.conv_transpose2d(x, w, stride=2))\n"
        "torch.testing.assert_close(y, ref)\n"
        "g = torch.autograd.grad(y.sum(), (x, w))\n"
        "r = torch.autograd.grad(ref.sum(), (x, w))\n"
        "torch.testing.assert_close(g, r)\n"
        "assert launch.launch_count() == 0\n"
        "print('fallback ok')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "fallback ok" in done.stdout
