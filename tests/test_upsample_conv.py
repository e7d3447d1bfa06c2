"""upsample_conv2d (nearest-upsample + conv folded into one transposed convolution) against torch's fp64 composition
``act(conv2d(interpolate(x, nearest), w, b, 1, padding, dilation, groups))``: forward table, activations, out=,
launches, repeatability, errors, autograd, module, checkpoints, convert (with a stand-in of diffusers' Upsample2D,
and the real one when diffusers is installed). Tiny shapes: the kernels run under the interpreter."""

import copy

import pytest
import torch
import torch.nn.functional as F
from helpers import SENTINEL, assert_bitwise_repeatable, assert_close_to_reference, assert_compiled_matches_eager
from torch import nn

import triton_convt
from triton_convt import activations
from triton_convt.upsample_modules import FusedUpsample2D


def reference(x, w, b, scale, padding=0, dilation=1, groups=1, activation=None, slope=0.01):
    """torch's composition in fp64 (unbatched input: as a batch of one)."""
    unbatched = x.dim() == 3
    x64 = (x.unsqueeze(0) if unbatched else x).double()
    u = F.interpolate(x64, scale_factor=scale, mode="nearest")
    y = F.conv2d(u, w.double(), None if b is None else b.double(), 1, padding, dilation, groups)
    y = activations.apply_torch(y, activation, slope)
    return y.squeeze(0) if unbatched else y


def _view(t, kind):
    """``t``'s values in a strided view of another buffer (a slice with a gap in every dimension)."""
    if kind != "view":
        return t
    big = torch.zeros([2 * n + 1 for n in t.shape], dtype=t.dtype)
    v = big[tuple(slice(1, None, 2) for _ in t.shape)]
    v.copy_(t)
    return v


#: (x shape, w shape, scale, padding, dilation, groups, bias, layout, dtype, view)
F32, F64, F16, BF16 = torch.float32, torch.float64, torch.float16, torch.bfloat16
CASES = [
    ((1, 3, 3, 3), (4, 3, 3, 3), 2, 1, 1, 1, True, "nchw", F32, ""),  # the VAE upsampler, shrunk
    ((2, 3, 3, 4), (4, 3, 3, 3), 2, 1, 1, 1, True, "channels_last", F32, ""),
    ((1, 2, 3, 3), (3, 2, 3, 3), 1, 1, 1, 1, True, "nchw", F32, ""),  # scale 1: a plain conv
    ((1, 2, 3, 3), (3, 2, 3, 3), 3, 1, 1, 1, True, "nchw", F32, ""),
    ((1, 2, 3, 3), (3, 2, 3, 3), 4, 1, 1, 1, False, "nchw", F32, ""),
    ((1, 2, 3, 4), (3, 2, 3, 3), (2, 3), 1, 1, 1, True, "nchw", F32, ""),  # asymmetric scale
    ((1, 2, 4, 3), (3, 2, 3, 3), (3, 1), (1, 0), 1, 1, True, "channels_last", F32, ""),
    ((1, 2, 3, 3), (3, 2, 1, 1), 2, 0, 1, 1, True, "nchw", F32, ""),  # 1x1
    ((1, 2, 3, 3), (3, 2, 2, 2), 2, 0, 1, 1, True, "nchw", F32, ""),
    ((1, 2, 3, 3), (3, 2, 4, 4), 2, 1, 1, 1, True, "nchw", F32, ""),
    ((1, 2, 3, 3), (3, 2, 5, 5), 2, 2, 1, 1, True, "nchw", F32, ""),
    ((1, 2, 3, 4), (3, 2, 5, 5), 3, 0, 1, 1, True, "nchw", F32, ""),
    ((1, 2, 3, 3), (3, 2, 1, 3), 2, (0, 1), 1, 1, True, "nchw", F32, ""),  # non-square
    ((1, 2, 3, 3), (3, 2, 5, 2), (2, 3), (2, 0), 1, 1, True, "channels_last", F32, ""),
    ((1, 2, 4, 3), (3, 2, 3, 4), 2, (1, 3), 1, 1, False, "nchw", F32, ""),
    ((1, 2, 3, 3), (3, 2, 3, 3), 2, "same", 1, 1, True, "nchw", F32, ""),
    ((1, 2, 3, 3), (3, 2, 2, 2), 2, "same", 1, 1, True, "nchw", F32, ""),  # odd total: extra on the right
    ((1, 2, 3, 3), (3, 2, 4, 3), 3, "same", 1, 1, True, "channels_last", F32, ""),
    ((1, 2, 3, 3), (3, 2, 2, 4), 1, "same", 1, 1, True, "nchw", F32, ""),  # scale 1 with an odd pad
    ((1, 2, 3, 3), (3, 2, 3, 3), 2, "valid", 1, 1, True, "nchw", F32, ""),
    ((1, 2, 3, 3), (3, 2, 3, 3), 2, 0, 2, 1, True, "nchw", F32, ""),  # dilation
    ((1, 2, 3, 3), (3, 2, 3, 3), 2, 2, 2, 1, True, "nchw", F32, ""),
    ((1, 2, 3, 4), (3, 2, 3, 2), 3, 1, (3, 2), 1, True, "nchw", F32, ""),
    ((1, 2, 3, 3), (3, 2, 2, 3), 2, "same", (3, 2), 1, True, "nchw", F32, ""),
    ((1, 2, 3, 3), (3, 2, 3, 3), 2, 4, 1, 1, True, "nchw", F32, ""),  # padding past the kernel: bias-only border
    ((1, 4, 3, 3), (4, 2, 3, 3), 2, 1, 1, 2, True, "nchw", F32, ""),  # groups
    ((1, 6, 3, 3), (3, 2, 3, 3), 2, 1, 1, 3, True, "channels_last", F32, ""),
    ((1, 3, 3, 3), (3, 1, 3, 3), 2, 1, 1, 3, True, "nchw", F32, ""),  # depthwise
    ((1, 3, 3, 4), (6, 1, 3, 3), (2, 3), 1, 1, 3, False, "channels_last", F32, ""),  # depthwise, multiplier 2
    ((1, 2, 3, 3), (2, 1, 4, 2), 2, "same", 2, 2, True, "nchw", F32, ""),
    ((1, 2, 1, 3), (3, 2, 3, 3), 2, 1, 1, 1, True, "nchw", F32, ""),  # one input row
    ((1, 2, 1, 1), (3, 2, 3, 3), 4, 1, 1, 1, True, "nchw", F32, ""),  # one input pixel
    ((2, 2, 3, 3), (3, 2, 3, 3), 2, 1, 1, 1, True, "nchw", F32, "view"),  # strided views of everything
    ((2, 2, 3, 3), (3, 2, 3, 3), 2, 1, 1, 1, True, "channels_last", F32, "view"),
    ((1, 4, 3, 3), (4, 2, 3, 3), (2, 3), "same", 1, 2, True, "nchw", F32, "view"),
    ((1, 2, 3, 3), (3, 2, 3, 3), 2, 1, 1, 1, True, "nchw", F64, ""),
    ((1, 2, 3, 3), (3, 2, 3, 3), 3, "same", 2, 1, True, "channels_last", F64, ""),
    ((1, 2, 3, 3), (3, 2, 3, 3), 2, 1, 1, 1, True, "nchw", F16, ""),
    ((1, 2, 3, 3), (3, 2, 3, 3), 2, 1, 1, 1, True, "channels_last", F16, ""),
    ((1, 4, 3, 3), (4, 2, 3, 3), 2, "same", 1, 2, True, "nchw", F16, ""),
    ((1, 2, 3, 3), (3, 2, 3, 3), 2, 1, 1, 1, True, "nchw", BF16, ""),
    ((1, 2, 3, 3), (3, 2, 3, 3), 2, 1, 1, 1, True, "channels_last", BF16, ""),
    ((1, 2, 3, 3), (3, 2, 2, 2), 3, 0, 1, 1, False, "nchw", BF16, ""),
    ((3, 3, 3), (4, 3, 3, 3), 2, 1, 1, 1, True, "nchw", F32, ""),  # unbatched
    ((0, 2, 3, 3), (3, 2, 3, 3), 2, 1, 1, 1, True, "nchw", F32, ""),  # empty batch
]


def _case_id(case):
    x, w, scale, padding, dilation, groups, bias, layout, dtype, view = case
    return (
        f"x{'x'.join(map(str, x))}-w{'x'.join(map(str, w))}-s{scale}-p{padding}-d{dilation}-g{groups}"
        f"{'-b' if bias else ''}-{layout}-{str(dtype)[6:]}{'-' + view if view else ''}"
    ).replace(" ", "")


def _operands(x_shape, w_shape, bias, layout, dtype, view="", w_layout=None):
    fmt = torch.channels_last if layout == "channels_last" and len(x_shape) == 4 else torch.contiguous_format
    x = torch.randn(x_shape).to(dtype).contiguous(memory_format=fmt)
    w = torch.randn(w_shape).to(dtype)
    if w_layout == "channels_last":
        w = w.contiguous(memory_format=torch.channels_last)
    b = torch.randn(w_shape[0]).to(dtype) if bias else None
    return _view(x, view), _view(w, view), None if b is None else _view(b, view)


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_matches_torch_composition(case):
    x_shape, w_shape, scale, padding, dilation, groups, bias, layout, dtype, view = case
    x, w, b = _operands(x_shape, w_shape, bias, layout, dtype, view)
    y = triton_convt.upsample_conv2d(x, w, b, scale, padding, dilation, groups)
    ref = reference(x, w, b, scale, padding, dilation, groups)
    assert_close_to_reference(y, ref)
    assert y.dtype == dtype
    if y.dim() == 4 and y.numel() and not view:  # torch's layout: channels_last when the input is
        assert y.is_contiguous(memory_format=torch.channels_last) == (layout == "channels_last")


def test_channels_last_weight_gives_channels_last_output():
    x, w, b = _operands((1, 2, 3, 3), (3, 2, 3, 3), True, "nchw", F32, w_layout="channels_last")
    y = triton_convt.upsample_conv2d(x, w, b)
    assert y.is_contiguous(memory_format=torch.channels_last) and not y.is_contiguous()
    assert_close_to_reference(y, reference(x, w, b, 2))


@pytest.mark.parametrize("activation", [*activations.ACTIVATIONS, "leaky_relu_0.2"])
def test_activations(activation):
    slope = 0.01
    if activation == "leaky_relu_0.2":
        activation, slope = "leaky_relu", 0.2
    x, w, b = _operands((1, 2, 3, 3), (3, 2, 3, 3), True, "nchw", F32)
    y = triton_convt.upsample_conv2d(x, w, b, 2, 1, activation=activation, negative_slope=slope)
    assert_close_to_reference(y, reference(x, w, b, 2, 1, activation=activation, slope=slope))


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_out_into_a_channel_slice_writes_nothing_outside(layout, count_launches):
    x, w, b = _operands((2, 2, 3, 3), (3, 2, 3, 3), True, layout, F32)
    buf = torch.full((2, 7, 6, 6), SENTINEL)
    if layout == "channels_last":
        buf = buf.contiguous(memory_format=torch.channels_last)
    out = buf[:, 2:5]
    got = triton_convt.upsample_conv2d(x, w, b, 2, 1, activation="relu", out=out)
    assert got is out and count_launches() == 2
    assert_close_to_reference(out, reference(x, w, b, 2, 1, activation="relu"))
    assert (buf[:, :2] == SENTINEL).all() and (buf[:, 5:] == SENTINEL).all()


def test_launches_no_upsampled_tensor_and_empty_batch(count_launches):
    x, w, b = _operands((1, 2, 3, 3), (3, 2, 3, 3), True, "nchw", F32)
    triton_convt.upsample_conv2d(x, w, b, 2, 1)
    assert count_launches() == 2  # the fold, then the transposed convolution
    y = triton_convt.upsample_conv2d(x[:0], w, b, 2, 1)
    assert y.shape == (0, 3, 6, 6) and count_launches() == 2
    x.requires_grad_(), w.requires_grad_(), b.requires_grad_()
    triton_convt.upsample_conv2d(x, w, b, 2, 1).sum().backward()
    # forward 2; backward: fold, input gradient, weight gradient's partial sums, unfold, bias gradient
    assert count_launches() == 2 + 2 + 5


def test_weight_written_through_data_is_seen_next_call():
    """No cache of the folded weight: a write through ``.data`` changes the next result."""
    conv = triton_convt.UpsampleConv2d(2, 3, 3, padding=1)
    x = torch.randn(1, 2, 3, 3)
    with torch.no_grad():
        before = conv(x)
        conv.weight.data.mul_(2)
        after = conv(x)
        assert_close_to_reference(after, reference(x, conv.weight, conv.bias, 2, 1))
        assert not torch.allclose(before, after)


def test_bitwise_repeatable_forward_and_backward():
    x, w, b = _operands((2, 4, 3, 3), (4, 2, 3, 3), True, "channels_last", F32)
    assert_bitwise_repeatable(lambda *t: triton_convt.upsample_conv2d(*t, (2, 3), "same", 1, 2, activation="gelu"),
                              *(t.detach().requires_grad_() for t in (x, w, b)))  # fmt: skip


X, W = (1, 2, 3, 3), (3, 2, 3, 3)
ERRORS = [  # (name, x shape, w shape, kwargs, bias shape); the composition's exception type is the expected one
    ("input-2d", (2, 3), W, {}, None),
    ("input-5d", (1, 2, 3, 3, 3), W, {}, None),
    ("weight-3d", X, (3, 2, 3), {}, None),
    ("weight-channels", X, (3, 1, 3, 3), {}, None),
    ("groups-divide", (1, 4, 3, 3), (3, 2, 3, 3), {"groups": 2}, None),
    ("groups-zero", X, W, {"groups": 0}, None),
    ("groups-float", X, W, {"groups": 1.0}, None),
    ("bias-shape", X, W, {}, (4,)),
    ("padding-negative", X, W, {"padding": -1}, None),
    ("padding-string", X, W, {"padding": "full"}, None),
    ("padding-float", X, W, {"padding": 1.0}, None),
    ("padding-three", X, W, {"padding": (1, 1, 1)}, None),
    ("dilation-zero", X, W, {"dilation": 0}, None),
    ("kernel-too-large", (1, 2, 1, 1), (3, 2, 4, 4), {"scale_factor": 1}, None),
    ("kernel-zero", X, (3, 2, 0, 3), {}, None),
    ("scale-zero", X, W, {"scale_factor": 0}, None),
    ("scale-negative", X, W, {"scale_factor": (2, -1)}, None),
    ("scale-three", X, W, {"scale_factor": (2, 2, 2)}, None),
    ("scale-string", X, W, {"scale_factor": "2"}, None),
    ("scale-none", X, W, {"scale_factor": None}, None),  # F.interpolate: ValueError (neither size nor scale)
    ("input-no-channels", (1, 0, 3, 3), (3, 0, 3, 3), {}, None),
    ("input-empty-rows", (1, 2, 0, 3), W, {}, None),
]


def _composition(x, w, b, scale_factor=2, padding=0, dilation=1, groups=1):
    return F.conv2d(F.interpolate(x, scale_factor=scale_factor, mode="nearest"), w, b, 1, padding, dilation, groups)


@pytest.mark.parametrize("name, x_shape, w_shape, kwargs, bias_shape", ERRORS, ids=[e[0] for e in ERRORS])
def test_errors_have_torch_types_and_come_before_any_launch(name, x_shape, w_shape, kwargs, bias_shape,
                                                            count_launches):  # fmt: skip
    x, w = torch.randn(x_shape), torch.randn(w_shape)
    b = None if bias_shape is None else torch.randn(bias_shape)
    with pytest.raises(Exception) as torch_error:
        _composition(x, w, b, **kwargs)
    with pytest.raises(type(torch_error.value)):
        triton_convt.upsample_conv2d(x, w, b, **kwargs)
    assert count_launches() == 0


@pytest.mark.parametrize("bad, error", [
    ({"scale_factor": 1.5}, ValueError),  # torch would upsample by 1.5: not a fold
    ({"scale_factor": (2.0, 2.5)}, ValueError),
    ({"activation": "swish"}, ValueError),
    ({"w_dtype": torch.float64}, RuntimeError),
    ({"x_dtype": torch.int32}, NotImplementedError),
    ({"out": torch.empty(1, 3, 5, 5)}, RuntimeError),
])  # fmt: skip
def test_errors_of_our_own(bad, error, count_launches):
    bad = dict(bad)
    x = torch.randn(X).to(bad.pop("x_dtype", torch.float32))
    w = torch.randn(W).to(bad.pop("w_dtype", x.dtype))
    with pytest.raises(error):
        triton_convt.upsample_conv2d(x, w, None, **{"scale_factor": 2, **bad})
    assert count_launches() == 0


def test_integral_float_scale_is_accepted():
    x, w, b = _operands(X, W, True, "nchw", F32)
    assert_close_to_reference(triton_convt.upsample_conv2d(x, w, b, (2.0, 3.0), 1), reference(x, w, b, (2, 3), 1))


def test_gradcheck_fp64():
    x = torch.randn(1, 2, 2, 2, dtype=F64, requires_grad=True)
    w = torch.randn(2, 1, 2, 3, dtype=F64, requires_grad=True)
    b = torch.randn(2, dtype=F64, requires_grad=True)
    fn = lambda x, w, b: triton_convt.upsample_conv2d(x, w, b, (2, 3), "same", (2, 1), 2, activation="silu")  # noqa: E731
    # fast_mode: one backward call against random projections, not one per output element (the interpreter)
    assert torch.autograd.gradcheck(fn, (x, w, b), fast_mode=True)


@pytest.mark.parametrize("activation", [None, "relu", "gelu"])
def test_gradients_match_torch(activation):
    x, w, b = (t.requires_grad_() for t in _operands((2, 2, 3, 3), (3, 2, 3, 3), True, "channels_last", F32))
    y = triton_convt.upsample_conv2d(x, w, b, 2, 1, activation=activation)
    gy = torch.randn_like(y)
    got = torch.autograd.grad(y, (x, w, b), gy)
    x64, w64, b64 = (t.detach().double().requires_grad_() for t in (x, w, b))
    want = torch.autograd.grad(reference(x64, w64, b64, 2, 1, activation=activation), (x64, w64, b64), gy.double())
    for g, r in zip(got, want):
        assert_close_to_reference(g, r)


def test_opcheck():
    x = torch.randn(1, 2, 2, 2, requires_grad=True)
    w = torch.randn(2, 1, 2, 3, requires_grad=True)
    b = torch.randn(2, requires_grad=True)
    args = (x, w, b, [2, 3], [0, 1, 1, 1], [1, 1], 2, "silu", 0.01)
    torch.library.opcheck(torch.ops.triton_convt.upsample_conv2d.default, args)
    out = torch.empty(1, 2, 4, 6)
    torch.library.opcheck(torch.ops.triton_convt.upsample_conv2d_out.default,
                          (x.detach(), w.detach(), b.detach(), *args[3:], out))  # fmt: skip


def test_meta_tensors_get_the_output_shape():
    x, w = torch.empty(2, 4, 7, 5, device="meta"), torch.empty(6, 2, 3, 2, device="meta")
    y = triton_convt.upsample_conv2d(x, w, None, (2, 3), "same", 1, 2)
    assert y.device.type == "meta" and y.shape == (2, 6, 14, 15)


def small_decoder():
    return nn.Sequential(
        nn.Conv2d(4, 4, 1), nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(4, 3, 3, padding=1), nn.SiLU(),
        nn.Upsample(scale_factor=2.0, mode="nearest-exact"), nn.Conv2d(3, 2, 3, padding="same"),
    )  # fmt: skip


def test_convert_fuses_small_decoder_and_keeps_outputs(count_launches):
    model = small_decoder()
    x = torch.randn(1, 4, 3, 3)
    with torch.no_grad():
        want = model(x)
        triton_convt.convert(model)
        got = model(x)
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["Conv2d", "Identity", "UpsampleConv2d", "Identity", "Identity", "UpsampleConv2d"]
    assert model[2].activation == "silu" and model[5].activation is None
    assert count_launches() == 4
    torch.testing.assert_close(got, want, atol=2e-5, rtol=2e-5)


def test_convert_leaves_alone_what_it_cannot_fuse_exactly():
    class Dense(nn.Sequential):  # does not chain its children
        def forward(self, x):
            return torch.cat([x, super().forward(x)], 1)

    model = nn.Sequential(
        nn.Upsample(scale_factor=2, mode="bilinear"), nn.Conv2d(2, 2, 3, padding=1),
        nn.Upsample(size=(8, 8)), nn.Conv2d(2, 2, 3, padding=1),
        nn.Upsample(scale_factor=1.5), nn.Conv2d(2, 2, 3, padding=1),
        nn.Upsample(scale_factor=2), nn.Conv2d(2, 2, 3, stride=2, padding=1),
        nn.Upsample(scale_factor=2), nn.Conv2d(2, 2, 3, padding=1, padding_mode="reflect"),
        Dense(nn.Upsample(scale_factor=2), nn.Conv2d(2, 2, 3, padding=1)),
    )  # fmt: skip
    before = [type(m) for m in model.modules()]
    triton_convt.convert(model)
    assert [type(m) for m in model.modules()] == before


def test_module_init_state_dict_and_from_modules():
    torch.manual_seed(1)
    mine = triton_convt.UpsampleConv2d(4, 6, (3, 2), scale_factor=(2, 3), padding="same", groups=2)
    torch.manual_seed(1)
    conv = nn.Conv2d(4, 6, (3, 2), padding="same", groups=2)
    assert list(mine.state_dict()) == list(conv.state_dict())
    for p, q in zip(mine.state_dict().values(), conv.state_dict().values()):
        assert torch.equal(p, q)  # nn.Conv2d's initialisation
    other = nn.Conv2d(4, 6, (3, 2), padding="same", groups=2)
    mine.load_state_dict(other.state_dict())
    conv.load_state_dict(mine.state_dict())
    assert torch.equal(conv.weight, other.weight)
    fused = triton_convt.UpsampleConv2d.from_modules(nn.Upsample(scale_factor=(2, 3)), conv, activation="tanh")
    assert fused.weight is conv.weight and fused.bias is conv.bias
    x = torch.randn(1, 4, 3, 3)
    with torch.no_grad():
        assert_close_to_reference(fused(x), reference(x, conv.weight, conv.bias, (2, 3), "same", 1, 2, "tanh"))
    with pytest.raises(ValueError):
        triton_convt.UpsampleConv2d.from_modules(nn.Upsample(scale_factor=2, mode="bilinear"), conv)
    assert "scale_factor=(2, 3)" in repr(fused) and "tanh" in repr(fused)


def test_training_tracks_torch():
    torch.manual_seed(2)
    ref = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(3, 2, 3, padding=1), nn.Tanh()).double()
    mine = triton_convt.convert(copy.deepcopy(ref))
    x, target = torch.randn(2, 3, 3, 3, dtype=F64), torch.randn(2, 2, 6, 6, dtype=F64)
    opts = [torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9) for m in (ref, mine)]
    for _ in range(3):
        for model, opt in zip((ref, mine), opts):
            opt.zero_grad()
            F.mse_loss(model(x), target).backward()
            opt.step()
    for p, q in zip(ref.parameters(), mine.parameters()):
        torch.testing.assert_close(q, p, atol=1e-12, rtol=1e-12)


def test_torch_compile_fullgraph_matches_eager():
    torch.manual_seed(3)
    eager = triton_convt.convert(small_decoder())
    assert_compiled_matches_eager(eager, torch.randn(1, 4, 3, 3))


class Upsample2D(nn.Module):
    """A stand-in for diffusers' ``Upsample2D`` (0.42.1): the same attributes and forward (the deprecated ``scale``
    argument and the torch<2.1 bf16 cast left out), so that convert's matching runs without diffusers."""

    def __init__(self, channels, use_conv=False, use_conv_transpose=False, out_channels=None, name="conv",
                 kernel_size=None, padding=1, bias=True, interpolate=True):  # fmt: skip
        super().__init__()
        self.channels, self.out_channels = channels, out_channels or channels
        self.use_conv, self.use_conv_transpose = use_conv, use_conv_transpose
        self.name, self.interpolate = name, interpolate
        self.norm = None
        conv = None
        if use_conv_transpose:
            conv = nn.ConvTranspose2d(
                channels, self.out_channels, kernel_size or 4, stride=2, padding=padding, bias=bias
            )
        elif use_conv:
            conv = nn.Conv2d(self.channels, self.out_channels, kernel_size=kernel_size or 3, padding=padding, bias=bias)
        if name == "conv":
            self.conv = conv
        else:
            self.Conv2d_0 = conv

    def forward(self, hidden_states, output_size=None, *args, **kwargs):
        assert hidden_states.shape[1] == self.channels
        if self.norm is not None:
            hidden_states = self.norm(hidden_states.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        if self.use_conv_transpose:
            return self.conv(hidden_states)
        if hidden_states.shape[0] >= 64:
            hidden_states = hidden_states.contiguous()
        if self.interpolate:
            if output_size is None:
                hidden_states = F.interpolate(hidden_states, scale_factor=2.0, mode="nearest")
            else:
                hidden_states = F.interpolate(hidden_states, size=output_size, mode="nearest")
        if self.use_conv:
            hidden_states = self.conv(hidden_states) if self.name == "conv" else self.Conv2d_0(hidden_states)
        return hidden_states


class Decoder(nn.Module):
    """A VAE-decoder-like model: upsamplers in a ModuleList (which does not chain), called with output_size."""

    def __init__(self, cls):
        super().__init__()
        self.up = nn.ModuleList([cls(3, use_conv=True, out_channels=2), cls(2, use_conv=True, name="Conv2d_0"),
                                 cls(2, use_conv_transpose=True), cls(2, use_conv=False)])  # fmt: skip

    def forward(self, x, sizes=(None, None)):
        x = self.up[0](x, output_size=sizes[0])
        x = self.up[1](x, output_size=sizes[1])
        return self.up[3](self.up[2](x))


def _check_upsample2d(cls, count_launches):
    torch.manual_seed(4)
    model = Decoder(cls)
    x = torch.randn(1, 3, 3, 2)
    keys = list(model.state_dict())
    with torch.no_grad():
        want = [model(x, sizes) for sizes in ((None, None), ((6, 4), (18, 8)), ((7, 5), (14, 10)))]
        triton_convt.convert(model)
        # use_conv_transpose (its ConvTranspose2d is converted inside it) and no conv at all are left alone
        assert [type(m).__name__ for m in model.up] == ["FusedUpsample2D"] * 2 + [cls.__name__] * 2
        assert list(model.state_dict()) == keys
        start = count_launches()
        got = [model(x, sizes) for sizes in ((None, None), ((6, 4), (18, 8)), ((7, 5), (14, 10)))]
        assert count_launches() > start
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, atol=2e-5, rtol=2e-5)


def test_convert_replaces_an_upsample2d_stand_in(count_launches):
    _check_upsample2d(Upsample2D, count_launches)
    assert isinstance(triton_convt.convert(Upsample2D(2, use_conv=True)), FusedUpsample2D)


def test_convert_replaces_diffusers_upsample2d(count_launches):
    upsampling = pytest.importorskip("diffusers.models.upsampling")
    _check_upsample2d(upsampling.Upsample2D, count_launches)


def test_report_upsampler_rows_check_each_implementation_with_a_fake_timer():
    """The GPU part's rows for the upsamplers, run on CPU at interpreter size with a stand-in timer (no time is
    measured): every implementation is checked against the fp64 composition before it is 'timed'."""
    from triton_convt.tools import layers
    from triton_convt.tools.report.gpu import upsampler_rows

    spec = layers.load_upsamplers()[0].scaled()
    rows = upsampler_rows([spec], ["float32"], "cpu", timer=lambda fn: (1.0, 0.9, 1.1))
    assert {r["impl"] for r in rows} == {"triton_convt", "cudnn", "cudnn_folded_conv_transpose"}
    assert all(r["ok"] for r in rows) and len(rows) == 6
