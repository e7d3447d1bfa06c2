"""conv_transpose1d and conv_transpose3d: torch's OpInfo samples, an error table per op, edge cases, every activation,
out=, layouts, the int64 index path and bitwise repeatability. Shapes are tiny (3-D volumes of a few voxels a side):
the interpreter's time grows with programs and elements."""

import pytest
import torch
import torch.nn.functional as F
from helpers import SENTINEL, assert_bitwise_repeatable, assert_close_to_reference, forward_launches
from torch._prims_common import suggest_memory_format
from torch.testing._internal.common_methods_invocations import op_db

import triton_convt
from triton_convt.functional.conv_transpose import check_call
from triton_convt.launch import conv_transpose_bwd, conv_transpose_fwd

OURS = {1: triton_convt.conv_transpose1d, 3: triton_convt.conv_transpose3d}
TORCH = {1: F.conv_transpose1d, 3: F.conv_transpose3d}
CHANNELS_LAST = {3: torch.channels_last_3d}


def _double(value):
    return value.double() if isinstance(value, torch.Tensor) else value


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
# Quick tier: 1-D; -m full: 3-D too (40 s of interpreter: torch's samples are not small volumes). The 3-D op's
# edge cases, activations, layouts and errors below run in the quick tier.
@pytest.mark.parametrize("ndim", [1, pytest.param(3, marks=pytest.mark.full)])
def test_opinfo_samples(ndim, dtype, device, count_launches):
    opinfo = next(op for op in op_db if op.name == f"nn.functional.conv_transpose{ndim}d")
    samples = list(opinfo.sample_inputs(device, dtype))
    assert len(samples) >= 8  # torch 2.13 ships 10 per op; an empty list would make this test vacuous
    # bfloat16 every other sample: its samples are float32's shapes and arguments, whose indexing float32 checks.
    launches = 0
    for i in range(0, len(samples), 1 if dtype == torch.float32 else 2):
        sample = samples[i]
        y = OURS[ndim](sample.input, *sample.args, **sample.kwargs)
        launches += forward_launches(sample.args[0], sample.kwargs.get("groups", 1))
        assert count_launches() == launches, f"sample {i} did not run the Triton kernel"
        expected = TORCH[ndim](_double(sample.input), *[_double(a) for a in sample.args], **sample.kwargs)
        assert_close_to_reference(y, expected)


def _invalid(ndim):
    """name: (args, kwargs, regex) of invalid calls of the ``ndim``-D op, the 2-D table's families."""
    sp, k = (5,) * ndim, (3,) * ndim
    x, w = torch.randn(2, 4, *sp), torch.randn(4, 3, *k)
    op = f"conv_transpose{ndim}d"
    # fmt: off
    return {
        "input-rank-low": ((torch.randn(4), w), {}, rf"{ndim + 1}D \(unbatched\) or {ndim + 2}D.*\[4\]"),
        "input-rank-high": ((torch.randn(1, 4, *sp, 1), w), {}, rf"{ndim + 1}D \(unbatched\) or {ndim + 2}D"),
        "weight-rank": ((x, torch.randn(4, 3, *k, 1)), {}, rf"weight.*{ndim + 2}-D"),
        "channel-mismatch": ((x, torch.randn(5, 3, *k)), {}, r"to have 5 channels, but got 4"),
        "groups-do-not-divide": ((x, w), {"groups": 3}, r"groups=3.*divisible by 3"),
        "groups-zero": ((x, w), {"groups": 0}, r"non-positive groups"),
        "bias-wrong-length": ((x, w, torch.randn(4)), {}, r"bias.*3 elements.*\[4\]"),
        "stride-zero": ((x, w), {"stride": 0}, r"non-positive stride"),
        "padding-negative": ((x, w), {"padding": -1}, r"negative padding"),
        "output-padding-too-large": ((x, w), {"stride": 2, "output_padding": 2}, r"smaller than either stride"),
        "output-too-small": ((torch.randn(1, 4, *(1,) * ndim), torch.randn(4, 3, *(1,) * ndim)), {"padding": 1},
                             r"Output size is too small"),
        "input-empty-spatial": ((torch.randn(1, 4, 0, *sp[1:]), w), {}, r"zero batch or zero channel"),
        "dtype-input-weight": ((x.double(), w), {}, r"float64.*float32"),
        "bool-tensors": ((x.bool(), w.bool()), {}, r"not implemented for.*torch.bool"),
        "stride-too-many": ((x, w), {"stride": (1,) * (ndim + 1)}, rf"list of {ndim} values"),
        "dilation-too-many": ((x, w), {"dilation": (1,) * (ndim + 1)}, rf"dilation to be a single.*{ndim} values"),
        "padding-empty-list": ((x, w), {"padding": []}, rf"list of {ndim} values"),
        "stride-float": ((x, w), {"stride": 1.5}, rf"{op}\(\): argument 'stride' must be tuple of ints, not float"),
        "padding-same-string": ((x, w), {"padding": "same"}, r"'padding' must be tuple of ints, not str"),
        "padding-float-tensor": ((x, w), {"padding": torch.tensor([1.0])}, r"'padding' must be tuple of ints"),
        "groups-float": ((x, w), {"groups": 1.0}, rf"{op}\(\): argument 'groups' must be int, not float"),
        "input-not-tensor": (([1.0], w), {}, r"'input' must be Tensor, not list"),
        "bias-not-tensor": ((x, w, 3), {}, r"'bias' must be Tensor, not int"),
    }
    # fmt: on


ERRORS = [(ndim, name) for ndim in (1, 3) for name in _invalid(ndim)]


@pytest.mark.parametrize("ndim, name", ERRORS, ids=[f"{n}d-{name}" for n, name in ERRORS])
def test_invalid_call_raises_torch_exception_type(ndim, name, count_launches):
    args, kwargs, message = _invalid(ndim)[name]
    with pytest.raises(Exception) as torch_error:
        TORCH[ndim](*args, **kwargs)
    with pytest.raises(Exception, match=message) as ours:
        OURS[ndim](*args, **kwargs)
    assert type(ours.value) is type(torch_error.value), (ours.value, torch_error.value)
    assert count_launches() == 0


@pytest.mark.parametrize("ndim", [1, 3])
def test_one_element_integer_tensor_is_an_int_as_in_torch(ndim, count_launches):
    x, w = torch.randn(1, 2, *(3,) * ndim), torch.randn(2, 2, *(2,) * ndim)
    y = OURS[ndim](x, w, stride=torch.tensor([2]))
    assert_close_to_reference(y, TORCH[ndim](x.double(), w.double(), stride=2))


@pytest.mark.parametrize("ndim", [1, 3])
def test_output_size_like_the_module(ndim, count_launches):
    module = getattr(torch.nn, f"ConvTranspose{ndim}d")(3, 2, 3, stride=2, padding=1)
    x = torch.randn(1, 3, *(3,) * ndim)
    for size in ((6,) * ndim, (1, 2, *(6,) * ndim)):
        with torch.no_grad():
            y = OURS[ndim](x, module.weight, module.bias, 2, 1, output_size=size)
            assert_close_to_reference(y, module.double()(x.double(), output_size=size))
            module.float()
    for bad in ((9,) * ndim, (6,) * (ndim + 1)):
        with pytest.raises(ValueError) as theirs:
            module(x, output_size=bad)
        with pytest.raises(ValueError, match=str(theirs.value).split(":")[0][:20]):
            OURS[ndim](x, module.weight, module.bias, 2, 1, output_size=bad)


# name: (ndim, input shape, weight shape, keyword arguments)
# fmt: off
CASES = {
    "1d-groups2-s3-d2-op1": (1, (2, 4, 5), (4, 3, 3),
                             dict(stride=3, padding=1, output_padding=1, groups=2, dilation=2)),
    "1d-depthwise-k4-s2": (1, (2, 6, 7), (6, 1, 4), dict(stride=2, padding=1, groups=6)),
    "1d-hifigan-k16-s8": (1, (1, 4, 3), (4, 2, 16), dict(stride=8, padding=4)),
    "1d-empty-phases-d2-s2": (1, (1, 3, 4), (3, 2, 3), dict(stride=2, dilation=2)),
    "3d-k2-s2-nnunet": (3, (1, 4, 2, 3, 2), (4, 3, 2, 2, 2), dict(stride=2)),
    "3d-asymmetric": (3, (1, 2, 2, 3, 2), (2, 3, 3, 2, 1), dict(stride=(2, 1, 3), padding=(1, 0, 0),
                                                                output_padding=(1, 0, 2), dilation=(1, 2, 1))),
    "3d-groups2-k3-s2": (3, (1, 4, 2, 2, 2), (4, 1, 3, 3, 3), dict(stride=2, padding=1, groups=2)),
    "3d-depthwise-mult2": (3, (1, 3, 2, 3, 2), (3, 2, 3, 2, 2), dict(stride=(1, 2, 2), groups=3)),
    "3d-empty-phases-d2": (3, (1, 2, 2, 2, 2), (2, 2, 3, 1, 1), dict(stride=2, dilation=2)),
}
# fmt: on


@pytest.mark.parametrize("layout", ["dense", "channels_last", "view"])
@pytest.mark.parametrize("name", list(CASES))
def test_edge_cases_match_torch_values_and_strides(name, layout, count_launches):
    ndim, shape_x, shape_w, kwargs = CASES[name]
    x, w = torch.randn(shape_x), torch.randn(shape_w)
    b = torch.randn(shape_w[1] * kwargs.get("groups", 1) * 2)[::2]  # a strided bias, read in place
    if layout == "channels_last":
        if ndim == 1:
            pytest.skip("1-D tensors have no channels_last format")  # (N, C, L) views are covered by "view"
        x = x.to(memory_format=CHANNELS_LAST[ndim])
        w = w.to(memory_format=CHANNELS_LAST[ndim])
    elif layout == "view":  # a non-contiguous slice along the last axis, and channels moved innermost
        x = torch.randn(*shape_x[:-1], 2 * shape_x[-1]).movedim(1, -1).contiguous().movedim(-1, 1)[..., ::2]
    y = OURS[ndim](x, w, b, **kwargs)
    assert count_launches() == forward_launches(w, kwargs.get("groups", 1))
    expected = TORCH[ndim](x, w, b, **kwargs)
    if layout == "dense":
        assert y.stride() == expected.stride()
    else:
        # torch's CPU backends disagree on the output's format here (oneDNN follows the operands' format, the slow
        # path is contiguous); ours is cuDNN's rule: channels_last(_3d) when the input or the weight suggests it, 1-D
        # decided on the views with a unit height that torch computes it through.
        views = (x, w) if ndim == 3 else (x.unsqueeze(2), w.unsqueeze(2))
        last = torch.channels_last_3d if ndim == 3 else torch.channels_last
        fmt = last if last in [suggest_memory_format(v) for v in views] else torch.contiguous_format
        assert (y if ndim == 3 else y.unsqueeze(2)).is_contiguous(memory_format=fmt)
    assert_close_to_reference(y, TORCH[ndim](x.double(), w.double(), b.double(), **kwargs))


ACTIVATIONS = list(triton_convt.ACTIVATIONS)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("ndim", [1, 3])
def test_every_activation(ndim, activation, count_launches):
    x = torch.randn(1, 3, *(3, 2, 2)[:ndim] if ndim == 3 else (5,))
    w, b = torch.randn(3, 2, *(2,) * ndim), torch.randn(2)
    y = OURS[ndim](x, w, b, stride=2, activation=activation, negative_slope=0.3)
    z = TORCH[ndim](x.double(), w.double(), b.double(), stride=2)
    assert_close_to_reference(y, triton_convt.activations.apply_torch(z, activation, 0.3))
    assert count_launches() == forward_launches(w)


@pytest.mark.parametrize("unbatched", [False, True])
@pytest.mark.parametrize("ndim", [1, 3])
def test_out_writes_only_its_slice(ndim, unbatched, count_launches):
    x, w, b = torch.randn(2, 4, *(2,) * ndim), torch.randn(4, 3, *(2,) * ndim), torch.randn(3)
    if unbatched:
        x = x[0]
    expected = TORCH[ndim](x.double(), w.double(), b.double(), stride=2)
    buffer = torch.full((*expected.shape[: -ndim - 1], 7, *expected.shape[-ndim:]), SENTINEL)
    out = buffer.narrow(-ndim - 1, 2, 3)  # channels 2..4 of a concat buffer
    assert OURS[ndim](x, w, b, stride=2, activation="relu", out=out) is out
    assert_close_to_reference(out, F.relu(expected))
    outside = torch.cat([buffer.narrow(-ndim - 1, 0, 2), buffer.narrow(-ndim - 1, 5, 2)], dim=-ndim - 1)
    assert bool((outside == SENTINEL).all())
    assert count_launches() == forward_launches(w)


@pytest.mark.parametrize("ndim", [1, 3])
def test_empty_batch_launches_nothing(ndim, count_launches):
    x, w = torch.randn(0, 4, *(3,) * ndim), torch.randn(4, 2, *(3,) * ndim)
    y = OURS[ndim](x, w, stride=2)
    assert y.shape == TORCH[ndim](x, w, stride=2).shape and count_launches() == 0


@pytest.mark.parametrize("ndim", [1, 3])
def test_repeated_calls_are_bitwise_identical(ndim, count_launches):
    x = torch.randn(2, 4, *(3,) * ndim, requires_grad=True)
    w = torch.randn(4, 2, *(2,) * ndim, requires_grad=True)
    b = torch.randn(2, requires_grad=True)
    assert_bitwise_repeatable(lambda *t: OURS[ndim](*t, stride=2, activation="silu"), x, w, b)


@pytest.mark.parametrize("ndim", [1, 3])
def test_int64_index_path_forced(ndim, count_launches):
    """The int64 index path is what a 3-D volume of 2^31 elements takes (numeric_constexprs decides from the spans);
    forced here on a small problem, it must give the same result."""
    shape = (2, 3, 4) if ndim == 1 else (1, 3, 2, 3, 2)
    x, w, b = torch.randn(shape), torch.randn(3, 2, *(3,) * ndim), torch.randn(6)
    params = check_call(x, w, b, 2, 1, 1, 3, 1)
    y = conv_transpose_fwd.allocate_output(x, w, params)
    plan = conv_transpose_fwd.depthwise_plan(x, w, b, y, params, index64=True)
    assert plan.args["INDEX_DTYPE"].primitive_bitwidth == 64
    plan.launch()
    expected = TORCH[ndim](x.double(), w.double(), b.double(), stride=2, padding=1, output_padding=1, groups=3)
    assert_close_to_reference(y, expected)
    dense = torch.randn(3, 4, *(3,) * ndim)  # weight gradient of a dense (groups=1) layer, int64 too
    params = check_call(x, dense, None, 2, 1, 1, 1, 1)
    dz = torch.randn(TORCH[ndim](x, dense, stride=2, padding=1, output_padding=1).shape)
    plan, partial = conv_transpose_bwd.weight_grad_plan(x, dz, dense, params, index64=True)
    assert plan.args["INDEX_DTYPE"].primitive_bitwidth == 64
    plan.launch()
    xd, wd = x.double(), dense.double().requires_grad_()
    TORCH[ndim](xd, wd, stride=2, padding=1, output_padding=1).backward(dz.double())
    assert_close_to_reference(partial.sum(0).float(), wd.grad)


def test_a_3d_volume_past_int32_takes_the_int64_path():
    """A 1x32x256x256x256 fp16 activation is 2^29 elements; its 2x upsample, 2^32: numeric_constexprs picks int64
    from the spans (meta tensors: nothing is allocated)."""
    from triton_convt.launch.kernel_plan import numeric_constexprs

    x = torch.empty(1, 32, 256, 256, 256, dtype=torch.float16, device="meta")
    w = torch.empty(32, 1, 2, 2, 2, dtype=torch.float16, device="meta")
    y = conv_transpose_fwd.allocate_output(x, w, check_call(x, w, None, 2, 0, 0, 32, 1))
    assert numeric_constexprs((x, w, y))["INDEX_DTYPE"].primitive_bitwidth == 64
    assert numeric_constexprs((x, w))["INDEX_DTYPE"].primitive_bitwidth == 32
