"""conv2d_pixel_shuffle (Conv2d + PixelShuffle in one launch) against torch's fp64 composition
``act(pixel_shuffle(conv2d(x, w, b, stride, padding, dilation, groups), r))``: a case table and torch's conv2d OpInfo
samples (every dtype, both layouts, r = 1..4), activations, out=, launches, non-finite weights, repeatability, the
errors table, autograd (gradcheck, gradients, opcheck, compile), the module (parameters, weight layout, checkpoints)
and convert on a small ESPCN and an EDSR-style upsampler. Tiny shapes: the kernels run under the interpreter."""

import copy

import pytest
import torch
import torch.nn.functional as F
from helpers import (
    SENTINEL,
    assert_bitwise_repeatable,
    assert_close_to_reference,
    assert_matches_nonfinite,
    forward_launches,
)
from torch import nn
from torch.testing._internal.common_methods_invocations import op_db

import triton_convt
from triton_convt import activations


def reference(x, w, b, r, stride=1, padding=0, dilation=1, groups=1, activation=None, slope=0.01):
    """torch's composition in fp64."""
    y = F.pixel_shuffle(F.conv2d(x.double(), w.double(), None if b is None else b.double(), stride, padding, dilation,
                                 groups), r)  # fmt: skip
    return activations.apply_torch(y, activation, slope)


def _view(t, kind):
    """``t``'s values in a strided view of another buffer (a slice with a gap in every dimension)."""
    if kind != "view":
        return t
    big = torch.zeros([2 * n + 1 for n in t.shape], dtype=t.dtype)
    v = big[tuple(slice(1, None, 2) for _ in t.shape)]
    v.copy_(t)
    return v


def _operands(x_shape, w_shape, bias, layout, dtype, view="", w_layout=None):
    fmt = torch.channels_last if layout == "channels_last" and len(x_shape) == 4 else torch.contiguous_format
    x = torch.randn(x_shape).to(dtype).contiguous(memory_format=fmt)
    w = torch.randn(w_shape).to(dtype)
    if w_layout == "channels_last":
        w = w.contiguous(memory_format=torch.channels_last)
    b = torch.randn(w_shape[0]).to(dtype) if bias else None
    return _view(x, view), _view(w, view), None if b is None else _view(b, view)


F32, F64, F16, BF16 = torch.float32, torch.float64, torch.float16, torch.bfloat16
#: (x shape, w shape, r, stride, padding, dilation, groups, bias, layout, w layout, dtype, view)
CASES = [
    ((1, 3, 3, 3), (12, 3, 3, 3), 2, 1, 1, 1, 1, True, "nchw", "", F32, ""),  # EDSR's upsampler, shrunk
    ((2, 3, 3, 4), (12, 3, 3, 3), 2, 1, 1, 1, 1, True, "channels_last", "channels_last", F32, ""),
    ((1, 4, 3, 5), (9, 4, 3, 3), 3, 1, 1, 1, 1, True, "nchw", "channels_last", F32, ""),  # ESPCN x3: one channel
    ((1, 2, 3, 3), (32, 2, 3, 3), 4, 1, 1, 1, 1, False, "channels_last", "", F32, ""),
    ((1, 2, 3, 3), (3, 2, 3, 3), 1, 1, 1, 1, 1, True, "nchw", "", F32, ""),  # r = 1: a plain conv
    ((1, 2, 4, 3), (8, 2, 1, 1), 2, 1, 0, 1, 1, True, "nchw", "", F32, ""),  # 1x1: the weight is read in place
    ((1, 2, 5, 5), (8, 2, 2, 3), 2, 1, (0, 1), 1, 1, True, "nchw", "", F32, ""),  # non-square
    ((1, 2, 5, 5), (8, 2, 3, 3), 2, 2, 1, 1, 1, True, "nchw", "", F32, ""),  # strided: rows left unread
    ((1, 2, 6, 7), (18, 2, 3, 2), 3, (2, 3), (1, 0), 1, 1, True, "channels_last", "", F32, ""),
    ((1, 2, 5, 5), (8, 2, 3, 3), 2, 1, "same", 1, 1, True, "nchw", "", F32, ""),
    ((1, 2, 5, 5), (8, 2, 2, 4), 2, 1, "same", 1, 1, True, "nchw", "channels_last", F32, ""),  # odd total: extra end
    ((1, 2, 5, 5), (8, 2, 3, 3), 2, 3, "valid", 1, 1, True, "nchw", "", F32, ""),
    ((1, 2, 6, 6), (8, 2, 3, 3), 2, 1, 2, 2, 1, True, "nchw", "", F32, ""),  # dilation
    ((1, 2, 6, 5), (9, 2, 2, 3), 3, 1, "same", (3, 1), 1, True, "channels_last", "", F32, ""),
    ((1, 2, 3, 3), (4, 2, 3, 3), 2, 1, 4, 1, 1, True, "nchw", "", F32, ""),  # padding past the kernel: bias border
    ((1, 4, 3, 3), (8, 2, 3, 3), 2, 1, 1, 1, 2, True, "nchw", "", F32, ""),  # groups, whole phase sets per group
    ((1, 4, 3, 3), (12, 2, 3, 3), 2, 1, 1, 1, 2, True, "channels_last", "", F32, ""),  # 6 per group: phases mixed
    ((1, 3, 4, 3), (9, 1, 3, 3), 3, 1, 1, 1, 3, True, "nchw", "", F32, ""),  # depthwise: a group's 3 mix phases
    ((1, 4, 5, 4), (16, 1, 3, 2), 2, (2, 1), (1, 0), (2, 1), 4, False, "channels_last", "", F32, ""),
    ((1, 4, 3, 3), (4, 4, 3, 3), 2, 1, 1, 1, 1, True, "nchw", "", F32, ""),  # one output channel
    ((1, 2, 1, 1), (8, 2, 3, 3), 2, 1, 1, 1, 1, True, "nchw", "", F32, ""),  # one input pixel
    ((2, 2, 3, 3), (8, 2, 3, 3), 2, 1, 1, 1, 1, True, "nchw", "", F32, "view"),  # strided views of everything
    ((2, 2, 3, 3), (8, 2, 3, 3), 2, 1, 1, 1, 1, True, "channels_last", "", F32, "view"),
    ((1, 2, 3, 3), (8, 2, 3, 3), 2, 1, 1, 1, 1, True, "nchw", "", F64, ""),
    ((1, 2, 4, 3), (18, 2, 3, 3), 3, 2, "valid", 1, 1, True, "channels_last", "channels_last", F64, ""),
    ((1, 2, 3, 3), (8, 2, 3, 3), 2, 1, 1, 1, 1, True, "nchw", "", F16, ""),
    ((1, 2, 3, 3), (8, 2, 3, 3), 2, 1, 1, 1, 1, True, "channels_last", "channels_last", F16, ""),
    ((1, 4, 3, 3), (12, 2, 3, 3), 2, 1, "same", 1, 2, True, "nchw", "", F16, ""),
    ((1, 2, 3, 3), (8, 2, 3, 3), 2, 1, 1, 1, 1, True, "nchw", "", BF16, ""),
    ((1, 2, 3, 3), (18, 2, 2, 2), 3, 1, 0, 1, 1, False, "channels_last", "", BF16, ""),
    ((3, 3, 3), (12, 3, 3, 3), 2, 1, 1, 1, 1, True, "nchw", "", F32, ""),  # unbatched
    ((0, 2, 3, 3), (8, 2, 3, 3), 2, 1, 1, 1, 1, True, "nchw", "", F32, ""),  # empty batch
]


def _case_id(case):
    x, w, r, stride, padding, dilation, groups, bias, layout, w_layout, dtype, view = case
    return (f"x{'x'.join(map(str, x))}-w{'x'.join(map(str, w))}-r{r}-s{stride}-p{padding}-d{dilation}-g{groups}"
            f"{'-b' if bias else ''}-{layout}{'-wcl' if w_layout else ''}-{str(dtype)[6:]}"
            f"{'-' + view if view else ''}").replace(" ", "")  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_matches_torch_composition(case, count_launches):
    x_shape, w_shape, r, stride, padding, dilation, groups, bias, layout, w_layout, dtype, view = case
    x, w, b = _operands(x_shape, w_shape, bias, layout, dtype, view, w_layout)
    y = triton_convt.conv2d_pixel_shuffle(x, w, b, r, stride, padding, dilation, groups)
    ref = reference(x, w, b, r, stride, padding, dilation, groups)
    assert_close_to_reference(y, ref)
    assert y.dtype == dtype
    assert count_launches() == (forward_launches(w) if y.numel() else 0)
    if y.dim() == 4 and y.numel() and y.shape[1] > 1:  # torch's layout: channels_last when the input or weight is
        assert y.is_contiguous(memory_format=torch.channels_last) == (
            torch.channels_last
            in (torch._prims_common.suggest_memory_format(x), torch._prims_common.suggest_memory_format(w))
        )


@pytest.mark.parametrize("w_shape, r, groups, blocks", [
    ((8, 2, 3, 3), 2, 1, True),  # the tile is stored as r*r runs of channels
    ((32, 2, 3, 3), 4, 1, True),
    ((9, 2, 3, 3), 3, 1, False),  # r*r = 9 is no power of two: column by column
    ((12, 1, 3, 3), 2, 2, False),  # 6 conv channels per group: a group's columns mix sub-pixels
])  # fmt: skip
def test_both_shuffled_stores_are_taken(w_shape, r, groups, blocks):
    """Which store the kernel takes (:func:`triton_convt.launch.phase_gemm.shuffle_blocks`); the case table checks
    both against torch."""
    from triton_convt.functional.conv_pixel_shuffle import check_call
    from triton_convt.launch.conv_pixel_shuffle_fwd import allocate_output, forward_plan

    x, w, b = _operands((1, 2, 3, 3), w_shape, True, "nchw", F32)
    params = check_call(x, w, b, r, 1, 1, 1, groups)
    plan = forward_plan(x, w, b, allocate_output(x, w, params), params)
    assert plan.args["SHUFFLE"] == r and plan.args["SHUFFLE_BLOCKS"] == blocks
    y = triton_convt.conv2d_pixel_shuffle(x, w, b, r, 1, 1, 1, groups)
    assert_close_to_reference(y, reference(x, w, b, r, 1, 1, 1, groups))


OPINFO = next(op for op in op_db if op.name == "nn.functional.conv2d")


#: Every how many OpInfo samples each dtype runs (the interpreter's time): all of them in float32, every other one
#: in float64, every third in the 16-bit dtypes; each dtype's samples still cover r = 1..4 and both layouts.
OPINFO_STEP = {F32: 1, F64: 2, F16: 3, BF16: 3}


@pytest.mark.parametrize("dtype", [F32, F64, F16, BF16], ids=str)
def test_opinfo_samples_with_every_upscale_factor(dtype, device, count_launches):
    """torch's conv2d OpInfo samples (strided, dilated, grouped, depthwise, "same"/"valid", unbatched), with r = 1..4
    in turn (the weight redrawn with ``r*r`` times the sample's output channels, likewise the bias) and every other
    input made channels_last."""
    samples = list(OPINFO.sample_inputs(device, dtype))
    assert len(samples) >= 20  # torch 2.13 ships 30; an empty list would make this test vacuous
    launches = 0
    for j, sample in enumerate(samples[:: OPINFO_STEP[dtype]]):
        r = 1 + j % 4
        w, *rest = sample.args
        w = torch.randn(w.shape[0] * r * r, *w.shape[1:], device=device).to(dtype)
        b = torch.randn(w.shape[0], device=device).to(dtype) if rest and rest[0] is not None else None
        kwargs = sample.kwargs
        x = sample.input
        if x.dim() == 4 and j % 2:
            x = x.contiguous(memory_format=torch.channels_last)
        y = triton_convt.conv2d_pixel_shuffle(x, w, b, r, **kwargs)
        launches += forward_launches(w)
        assert count_launches() == launches, f"sample {j} did not run the Triton kernel"
        x64 = sample.input.double()
        expected = F.pixel_shuffle(F.conv2d(x64, w.double(), None if b is None else b.double(), **kwargs), r)
        assert_close_to_reference(y, expected)


@pytest.mark.parametrize("activation", [*activations.ACTIVATIONS, "leaky_relu_0.2"])
def test_activations(activation):
    slope = 0.01
    if activation == "leaky_relu_0.2":
        activation, slope = "leaky_relu", 0.2
    x, w, b = _operands((1, 2, 3, 3), (8, 2, 3, 3), True, "nchw", F32)
    y = triton_convt.conv2d_pixel_shuffle(x, w, b, 2, 1, 1, activation=activation, negative_slope=slope)
    assert_close_to_reference(y, reference(x, w, b, 2, 1, 1, activation=activation, slope=slope))


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_out_into_a_channel_slice_writes_nothing_outside(layout, count_launches):
    x, w, b = _operands((2, 2, 3, 3), (12, 2, 3, 3), True, layout, F32, w_layout="channels_last")
    buf = torch.full((2, 7, 6, 6), SENTINEL)
    if layout == "channels_last":
        buf = buf.contiguous(memory_format=torch.channels_last)
    out = buf[:, 2:5]
    got = triton_convt.conv2d_pixel_shuffle(x, w, b, 2, 1, 1, activation="relu", out=out)
    assert got is out and count_launches() == 1
    assert_close_to_reference(out, reference(x, w, b, 2, 1, 1, activation="relu"))
    assert (buf[:, :2] == SENTINEL).all() and (buf[:, 5:] == SENTINEL).all()


def test_launches_forward_and_backward(count_launches):
    x, w, b = _operands((1, 2, 3, 3), (8, 2, 3, 3), True, "channels_last", F32, w_layout="channels_last")
    triton_convt.conv2d_pixel_shuffle(x, w, b, 2, 1, 1)
    assert count_launches() == 1  # no r*r-wide tensor: the conv's channels go straight to their pixels
    triton_convt.conv2d_pixel_shuffle(x, w.contiguous(), b, 2, 1, 1)
    assert count_launches() == 3  # a default-layout weight is copied into the kernel's layout first
    assert triton_convt.conv2d_pixel_shuffle(x[:0], w, b, 2, 1, 1).shape == (0, 2, 6, 6) and count_launches() == 3
    x.requires_grad_(), w.requires_grad_(), b.requires_grad_()
    triton_convt.conv2d_pixel_shuffle(x, w, b, 2, 1, 1, activation="silu").sum().backward()
    # forward 1; backward: recomputed pre-activation, unshuffle with silu's derivative, input gradient, weight
    # gradient's partial sums, bias gradient's partial sums
    assert count_launches() == 3 + 1 + 5


def test_nonfinite_weights_land_where_torch_puts_them():
    """A conv multiplies its zero padding by the weight: an inf weight gives NaN at the border in torch's result, and
    in this one (unlike the transposed convolution's gather, which masks the products torch never forms)."""
    x, w, b = _operands((1, 2, 4, 4), (8, 2, 3, 3), True, "nchw", F32)
    w[1, 0, 0, 0] = float("inf")
    w[6, 1, 2, 1] = float("-inf")
    x[0, 1, 2, 2] = float("nan")
    y = triton_convt.conv2d_pixel_shuffle(x, w, b, 2, 1, 1)
    assert_matches_nonfinite(y, reference(x, w, b, 2, 1, 1))


def test_bitwise_repeatable_forward_and_backward():
    x, w, b = _operands((2, 4, 3, 3), (24, 2, 3, 3), True, "channels_last", F32)
    assert_bitwise_repeatable(lambda *t: triton_convt.conv2d_pixel_shuffle(*t, 2, 1, "same", 1, 2, activation="gelu"),
                              *(t.detach().requires_grad_() for t in (x, w, b)))  # fmt: skip


X, W = (1, 2, 3, 3), (8, 2, 3, 3)
ERRORS = [  # (name, x shape, w shape, kwargs, bias shape); the composition's exception type is the expected one
    ("input-2d", (2, 3), W, {}, None),
    ("input-5d", (1, 2, 3, 3, 3), W, {}, None),
    ("weight-3d", X, (8, 2, 3), {}, None),
    ("weight-channels", X, (8, 1, 3, 3), {}, None),
    ("weight-empty", X, (0, 2, 3, 3), {}, None),
    ("groups-divide", (1, 4, 3, 3), (6, 2, 3, 3), {"groups": 4}, None),
    ("groups-zero", X, W, {"groups": 0}, None),
    ("groups-float", X, W, {"groups": 1.0}, None),
    ("bias-shape", X, W, {}, (4,)),
    ("stride-zero", X, W, {"stride": 0}, None),
    ("stride-three", X, W, {"stride": (1, 1, 1)}, None),
    ("stride-float", X, W, {"stride": 1.5}, None),
    ("same-strided", X, W, {"stride": (1, 2), "padding": "same"}, None),
    ("padding-negative", X, W, {"padding": -1}, None),
    ("padding-string", X, W, {"padding": "full"}, None),
    ("padding-float", X, W, {"padding": 1.0}, None),
    ("padding-three", X, W, {"padding": (1, 1, 1)}, None),
    ("dilation-zero", X, W, {"dilation": 0}, None),
    ("kernel-too-large", X, (8, 2, 4, 4), {}, None),
    ("kernel-zero", X, (8, 2, 0, 3), {}, None),
    ("input-empty-rows", (1, 2, 0, 3), W, {"padding": 1}, None),
    ("dtypes-differ", X, W, {"w_dtype": torch.float64}, None),
    ("upscale-zero", X, W, {"upscale_factor": 0}, None),
    ("upscale-negative", X, W, {"upscale_factor": -2}, None),
    ("upscale-float", X, W, {"upscale_factor": 2.0}, None),
    ("upscale-bool", X, W, {"upscale_factor": True}, None),
    ("upscale-tensor-1d", X, W, {"upscale_factor": torch.tensor([2])}, None),
    ("channels-not-divisible", X, (6, 2, 3, 3), {}, None),
    ("conv-error-first", X, (6, 2, 4, 4), {"upscale_factor": 2.0}, None),  # both wrong: conv2d's error wins
]


def _composition(x, w, b, upscale_factor=2, **conv):
    return F.pixel_shuffle(F.conv2d(x, w, b, **conv), upscale_factor)


@pytest.mark.parametrize("name, x_shape, w_shape, kwargs, bias_shape", ERRORS, ids=[e[0] for e in ERRORS])
def test_errors_have_torch_types_and_come_before_any_launch(name, x_shape, w_shape, kwargs, bias_shape,
                                                            count_launches):  # fmt: skip
    kwargs = dict(kwargs)
    x = torch.randn(x_shape)
    w = torch.randn(w_shape).to(kwargs.pop("w_dtype", torch.float32))
    b = None if bias_shape is None else torch.randn(bias_shape)
    with pytest.raises(Exception) as torch_error:
        _composition(x, w, b, **kwargs)
    with pytest.raises(type(torch_error.value)):
        triton_convt.conv2d_pixel_shuffle(x, w, b, **kwargs)
    assert count_launches() == 0


def test_torch_accepts_what_we_accept():
    """The calls torch's composition takes at the border of the checks run here too (a 0-dim integer tensor as
    the factor, "valid" padding with a stride, no input channels)."""
    x, w = torch.randn(X), torch.randn(W)
    for kwargs in ({"upscale_factor": torch.tensor(2)}, {"stride": 2, "padding": "valid"}):
        assert_close_to_reference(triton_convt.conv2d_pixel_shuffle(x, w, None, **kwargs),
                                  _composition(x.double(), w.double(), None, **kwargs))  # fmt: skip
    # An empty batch, and no input channels (torch's conv then gives no output channels, whatever the weight):
    # nothing is launched and the gradients are zeros of the operands' shapes (torch's own autograd of its pair fails
    # on both, in PixelShuffleBackward's shape check).
    for x_shape, w_shape in (((0, 2, 3, 3), W), ((1, 0, 3, 3), (8, 0, 3, 3))):
        x0, w0, b0 = (t.requires_grad_() for t in (torch.randn(x_shape), torch.randn(w_shape), torch.randn(8)))
        y = triton_convt.conv2d_pixel_shuffle(x0, w0, b0, 2, padding=1)
        leaves = [t.detach().double().requires_grad_() for t in (x0, w0, b0)]
        y64 = _composition(*leaves, padding=1)
        assert_close_to_reference(y, y64)
        grads = torch.autograd.grad(y.sum(), (x0, w0, b0))
        assert all(g.shape == t.shape and not g.any() for g, t in zip(grads, (x0, w0, b0)))


@pytest.mark.parametrize("bad, error", [
    ({"activation": "swish"}, ValueError),
    ({"x_dtype": torch.int32}, NotImplementedError),
    ({"out": torch.empty(1, 2, 5, 5)}, RuntimeError),
])  # fmt: skip
def test_errors_of_our_own(bad, error, count_launches):
    bad = dict(bad)
    x = torch.randn(X).to(bad.pop("x_dtype", torch.float32))
    w = torch.randn(W).to(x.dtype)
    with pytest.raises(error):
        triton_convt.conv2d_pixel_shuffle(x, w, None, 2, **bad)
    assert count_launches() == 0


def test_gradcheck_fp64():
    x = torch.randn(1, 2, 3, 2, dtype=F64, requires_grad=True)
    w = torch.randn(12, 1, 2, 2, dtype=F64, requires_grad=True)  # 6 conv channels per group: phases mixed
    b = torch.randn(12, dtype=F64, requires_grad=True)
    fn = lambda x, w, b: triton_convt.conv2d_pixel_shuffle(x, w, b, 2, (2, 1), (1, 0), (2, 1), 2,  # noqa: E731
                                                           activation="silu")  # fmt: skip
    # fast_mode: one backward call against random projections, not one per output element (the interpreter)
    assert torch.autograd.gradcheck(fn, (x, w, b), fast_mode=True)


@pytest.mark.parametrize("activation, stride, layout", [
    (None, 1, "channels_last"), ("relu", 2, "nchw"), ("gelu", (1, 2), "channels_last"),
    ("leaky_relu", 1, "nchw"),
])  # fmt: skip
def test_gradients_match_torch(activation, stride, layout):
    x, w, b = (t.requires_grad_() for t in _operands((2, 4, 5, 4), (12, 2, 3, 3), True, layout, F32))
    y = triton_convt.conv2d_pixel_shuffle(x, w, b, 2, stride, 1, 1, 2, activation=activation)
    gy = torch.randn_like(y)
    got = torch.autograd.grad(y, (x, w, b), gy)
    x64, w64, b64 = (t.detach().double().requires_grad_() for t in (x, w, b))
    want = torch.autograd.grad(reference(x64, w64, b64, 2, stride, 1, 1, 2, activation=activation),
                               (x64, w64, b64), gy.double())  # fmt: skip
    for g, r in zip(got, want):
        assert_close_to_reference(g, r)


def test_opcheck():
    x = torch.randn(1, 2, 3, 3, requires_grad=True)
    w = torch.randn(8, 1, 2, 3, requires_grad=True)
    b = torch.randn(8, requires_grad=True)
    args = (x, w, b, 2, [1, 2], [0, 1, 1, 1], [1, 1], 2, "silu", 0.01)
    torch.library.opcheck(torch.ops.triton_convt.conv2d_pixel_shuffle.default, (*args, True))
    no_grad = (x.detach(), w.detach(), None, *args[3:], False)  # the module's call: the output layout from x alone
    torch.library.opcheck(torch.ops.triton_convt.conv2d_pixel_shuffle.default, no_grad,
                          test_utils=("test_schema", "test_faketensor"))  # fmt: skip
    out = torch.empty(1, 2, 6, 4)
    torch.library.opcheck(torch.ops.triton_convt.conv2d_pixel_shuffle_out.default,
                          (x.detach(), w.detach(), b.detach(), *args[3:], out))  # fmt: skip


def test_meta_tensors_get_the_output_shape():
    x, w = torch.empty(2, 4, 7, 5, device="meta"), torch.empty(18, 2, 3, 2, device="meta")
    y = triton_convt.conv2d_pixel_shuffle(x, w, None, 3, (2, 1), 1, 1, 2)
    assert y.device.type == "meta" and y.shape == (2, 2, 12, 18)


# --- the module ----------------------------------------------------------------------------------------------------


def test_module_init_state_dict_and_weight_layout():
    torch.manual_seed(1)
    mine = triton_convt.PixelShuffleConv2d(4, 8, (3, 2), 2, padding="same", groups=2)
    torch.manual_seed(1)
    conv = nn.Conv2d(4, 8, (3, 2), padding="same", groups=2)
    assert list(mine.state_dict()) == list(conv.state_dict())
    for p, q in zip(mine.state_dict().values(), conv.state_dict().values()):
        assert torch.equal(p, q)  # nn.Conv2d's initialisation
    owned = mine.is_kernel_layout
    assert owned(mine.weight) and mine.weight.stride(0) == 1 and not mine.weight.is_contiguous()
    other = nn.Conv2d(4, 8, (3, 2), padding="same", groups=2)
    param = mine.weight
    mine.load_state_dict(other.state_dict())
    assert mine.weight is param and owned(mine.weight)
    assert torch.equal(mine.weight, other.weight)
    mine.load_state_dict(conv.state_dict(), assign=True)  # the checkpoint's tensor, in torch's default layout
    assert owned(mine.weight) and torch.equal(mine.weight, conv.weight)
    conv.load_state_dict(mine.state_dict())
    mine.double()
    assert mine.weight.dtype == F64 and owned(mine.weight)
    for fmt in (torch.contiguous_format, torch.channels_last):
        mine.to(memory_format=fmt)
        assert owned(mine.weight)
    with pytest.raises(ValueError):
        triton_convt.PixelShuffleConv2d(4, 6, 3, 2)  # 6 channels do not shuffle by 2


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_module_is_one_launch_and_keeps_torchs_output_layout(layout, count_launches):
    m = triton_convt.PixelShuffleConv2d(3, 12, 3, 2, padding=1, activation="leaky_relu", negative_slope=0.2)
    x = _operands((2, 3, 4, 3), (12, 3, 3, 3), False, layout, F32)[0]
    with torch.no_grad():
        y = m(x)
    assert count_launches() == 1
    # torch's pair with the default-layout weight the user sees: channels_last exactly when the input is
    assert y.is_contiguous(memory_format=torch.channels_last) == (layout == "channels_last")
    assert y.is_contiguous() == (layout == "nchw")
    assert_close_to_reference(y, reference(x, m.weight, m.bias, 2, 1, 1, activation="leaky_relu", slope=0.2))
    assert "upscale_factor=2" in repr(m) and "negative_slope=0.2" in repr(m)


def test_module_padding_mode_pads_first_as_conv2d():
    conv = nn.Conv2d(2, 8, 3, padding=1, padding_mode="reflect")
    m = triton_convt.PixelShuffleConv2d.from_modules(conv, nn.PixelShuffle(2))
    x = torch.randn(1, 2, 4, 3)
    with torch.no_grad():
        torch.testing.assert_close(m(x), F.pixel_shuffle(conv(x), 2), atol=2e-5, rtol=2e-5)


def test_from_modules_shares_parameters_and_refuses_what_it_cannot_fuse():
    conv, shuffle = nn.Conv2d(2, 8, 3, padding=1), nn.PixelShuffle(2)
    weight = conv.weight
    fused = triton_convt.PixelShuffleConv2d.from_modules(conv, shuffle, activation="tanh")
    assert fused.weight is weight and fused.bias is conv.bias and fused.is_kernel_layout(weight)
    x = torch.randn(1, 2, 3, 3)
    with torch.no_grad():
        assert_close_to_reference(fused(x), reference(x, conv.weight, conv.bias, 2, 1, 1, activation="tanh"))
    for bad in ((nn.Conv2d(2, 6, 3), shuffle), (conv, nn.PixelUnshuffle(2)), (nn.Conv1d(2, 8, 3), shuffle)):
        with pytest.raises(ValueError):
            triton_convt.PixelShuffleConv2d.from_modules(*bad)


# --- convert: ESPCN and an EDSR-style upsampler, built from torch modules --------------------------------------------


def espcn(r=3):
    """ESPCN (Shi et al. 2016) at toy width: 5x5 conv, tanh, 3x3 conv, tanh, 3x3 conv to r*r channels, pixel shuffle
    (and a sigmoid here, to have an activation after the shuffle)."""
    return nn.Sequential(
        nn.Conv2d(1, 8, 5, padding=2), nn.Tanh(), nn.Conv2d(8, 4, 3, padding=1), nn.Tanh(),
        nn.Conv2d(4, r * r, 3, padding=1), nn.PixelShuffle(r), nn.Sigmoid(),
    )  # fmt: skip


class Upsampler(nn.Sequential):
    """EDSR's ``common.Upsampler`` (x4: two conv + shuffle x2 stages, here with EDSR's optional ReLU between conv and
    shuffle in the first), an ``nn.Sequential`` subclass that keeps its forward, as EDSR's and SwinIR's are."""

    def __init__(self, n_feats=4):
        super().__init__(nn.Conv2d(n_feats, 4 * n_feats, 3, padding=1), nn.ReLU(), nn.PixelShuffle(2),
                         nn.Conv2d(n_feats, 4 * n_feats, 3, padding=1), nn.PixelShuffle(2))  # fmt: skip


@pytest.mark.parametrize("make, x_shape, kinds", [
    (espcn, (2, 1, 3, 4), ["Conv2d", "Tanh", "Conv2d", "Tanh", "PixelShuffleConv2d", "Identity", "Identity"]),
    (Upsampler, (1, 4, 2, 3), ["PixelShuffleConv2d", "Identity", "Identity", "PixelShuffleConv2d", "Identity"]),
])  # fmt: skip
def test_convert_keeps_outputs_and_gradients(make, x_shape, kinds, count_launches):
    torch.manual_seed(5)
    ref = make().double()
    model = triton_convt.convert(copy.deepcopy(ref))
    assert [type(m).__name__ for m in model] == kinds
    x = torch.randn(x_shape, dtype=F64)
    xs = [x.clone().requires_grad_() for _ in range(2)]
    want, got = ref(xs[0]), model(xs[1])
    torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-12)
    gy = torch.randn_like(want)
    want.backward(gy)
    start = count_launches()
    got.backward(gy)
    assert count_launches() > start  # the fused layers' gradients come from the Triton backward
    torch.testing.assert_close(xs[1].grad, xs[0].grad, atol=1e-12, rtol=1e-12)
    for p, q in zip(ref.parameters(), model.parameters()):
        torch.testing.assert_close(q.grad, p.grad, atol=1e-12, rtol=1e-12)


def test_convert_leaves_alone_what_it_cannot_fuse_exactly():
    class Dense(nn.Sequential):  # does not chain its children
        def forward(self, x):
            return torch.cat([x, super().forward(x)], 1)

    class MyConv(nn.Conv2d):
        pass

    model = nn.Sequential(
        Dense(nn.Conv2d(2, 8, 3, padding=1), nn.PixelShuffle(2)),
        nn.Conv2d(2, 6, 3, padding=1), nn.PixelShuffle(2),  # 6 channels: torch's pair raises, and still does
        MyConv(2, 8, 3, padding=1), nn.PixelShuffle(2),
        nn.Conv2d(2, 8, 3, padding=1), nn.BatchNorm2d(8), nn.PixelShuffle(2),
        nn.ModuleList([nn.Conv2d(2, 8, 3), nn.PixelShuffle(2)]),
    )  # fmt: skip
    before = [type(m) for m in model.modules()]
    triton_convt.convert(model)
    assert [type(m) for m in model.modules()] == before


def test_torch_compile_fullgraph_matches_eager():
    torch.manual_seed(3)
    eager = triton_convt.convert(Upsampler())
    compiled_model = copy.deepcopy(eager)
    compiled = torch.compile(compiled_model, fullgraph=True)
    x = torch.randn(1, 4, 2, 2)
    y_eager = eager(x)
    y_eager.square().mean().backward()
    y_compiled = compiled(x)
    y_compiled.square().mean().backward()
    torch.testing.assert_close(y_compiled, y_eager)
    for p_eager, p_compiled in zip(eager.parameters(), compiled_model.parameters()):
        torch.testing.assert_close(p_compiled.grad, p_eager.grad)


# --- the layer set and the work model ------------------------------------------------------------------------------


def test_every_layer_of_the_set_scaled_matches_torch():
    from triton_convt.tools import layers

    specs = layers.load_pixel_shuffles()
    assert {s.upscale for s in specs} == {2, 3} and len(specs) >= 6
    for spec in specs:
        s = spec.scaled()
        x = torch.randn(s.n, s.c_in, *s.hw)
        w = torch.randn(s.c_out, s.c_in // s.groups, *s.kernel)
        b = torch.randn(s.c_out) if s.bias else None
        y = triton_convt.conv2d_pixel_shuffle(x, w, b, s.upscale, s.stride, s.padding, s.dilation, s.groups,
                                              activation=s.activation)  # fmt: skip
        assert y.shape[2:] == s.output_hw, spec.name
        assert_close_to_reference(y, reference(x, w, b, s.upscale, s.stride, s.padding, s.dilation, s.groups,
                                               s.activation))  # fmt: skip


def test_work_model_counts_the_tensors_torch_makes():
    """The model's bytes are the sizes of the tensors each implementation reads and writes, taken here from the
    tensors torch makes at a layer's full shape on the meta device; its MACs from torch's conv output shape."""
    from triton_convt.tools import layers, workmodel

    for spec in layers.load_pixel_shuffles():
        m = workmodel.pixel_shuffle_work(spec, torch.float16)
        x = torch.empty(spec.n, spec.c_in, *spec.hw, device="meta", dtype=F16)
        w = torch.empty(spec.c_out, spec.c_in // spec.groups, *spec.kernel, device="meta", dtype=F16)
        b = torch.empty(spec.c_out, device="meta", dtype=F16) if spec.bias else None
        z = F.conv2d(x, w, b, spec.stride, spec.padding, spec.dilation, spec.groups)
        y = F.pixel_shuffle(z, spec.upscale)
        size = lambda t: 0 if t is None else t.numel() * t.element_size()  # noqa: E731
        moved = size(x) + size(w) + size(b)
        assert m["fused_bytes"] == moved + size(y)
        assert m["chain_bytes"] == moved + size(z) + size(z) + size(y) + (2 * size(y) if spec.activation else 0)
        assert m["useful_macs"] == z.numel() * w[0].numel()
        assert m["issued_macs"] >= m["useful_macs"]
        assert spec.name in workmodel.pixel_shuffle_report(["default"], torch.float16)


def _shipped_tiles():
    """Every distinct (BLOCK_M, BLOCK_N) of the op's shipped configs, any dtype class: what its epilogue depends on
    (the K loop is the forward's, whose every tile the forward's config test runs). Run in float32: the
    interpreter's float16 matmul is slow, and a tile's logic is the same in every dtype (the case table runs each)."""
    from triton_convt.launch import configs

    seen = {}
    for target in configs.available_targets():
        data = configs.load(target)
        for key in ("conv2d_pixel_shuffle", "conv2d_pixel_shuffle_nchw"):
            for cls in data.get(key, {}):
                for c in configs.usable(target, key, cls):
                    seen.setdefault((c["BLOCK_M"], c["BLOCK_N"]), c)
    return sorted(seen.values(), key=lambda c: (c["BLOCK_M"], c["BLOCK_N"]))


@pytest.mark.parametrize("config", _shipped_tiles(), ids=lambda c: f"{c['BLOCK_M']}x{c['BLOCK_N']}")
def test_every_shipped_tile_is_correct_under_the_interpreter(config, count_launches):
    # Output channels per group of one column tile and r*r more (whole runs of r*r, so the tile is stored as runs
    # where it can be), two groups, 2 x 5 x 7 = 70 rows: rows and columns end partially; r = 2 and 3. A 1x2 kernel
    # with a border tap: the interpreter's time goes into the dots, and the tap loop is the forward's.
    from triton_convt.functional.conv_pixel_shuffle import check_call
    from triton_convt.launch.conv_pixel_shuffle_fwd import allocate_output, forward_plan

    for r in (2, 3):
        c_out_g = config["BLOCK_N"] // (r * r) * (r * r) + r * r
        x = torch.randn(2, 6, 5, 7).to(memory_format=torch.channels_last)
        w = torch.randn(2 * c_out_g, 3, 1, 2)
        b = torch.randn(2 * c_out_g)
        params = check_call(x, w, b, r, 1, (0, 1), 1, 2)
        y = allocate_output(x, w, params)
        forward_plan(x, w, b, y, params, activation="relu", config=config).launch()
        assert_close_to_reference(y, reference(x, w, b, r, 1, (0, 1), 1, 2, activation="relu"))
    assert count_launches() == 2
