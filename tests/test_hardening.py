"""Hardening of the forward op (issue 7): a refused call leaves ``out=`` untouched, devices must agree, NaN and ±inf
propagate as in torch's CPU result (non-finite weights included), repeated calls are bitwise identical, and the
int64 index path is chosen exactly when an offset leaves int32."""

import math

import pytest
import torch
import torch.nn.functional as F
from helpers import SENTINEL, assert_close_to_reference, assert_matches_nonfinite, bits, forward_launches
from test_errors import INVALID

import triton_convt
from triton_convt.activations import ACTIVATIONS
from triton_convt.functional.conv_transpose import check_call
from triton_convt.launch import conv_transpose_fwd, kernel_plan

# The interpreter runs tiles on numpy, which warns at every 0 * inf or inf - inf these tests produce on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")

# name: (input shape, weight shape, keyword arguments). Small, but each one puts some output rows' taps outside the
# input (where a masked load feeds x = 0 to the weights), and between them they cover stride 1 and 2-3, padding,
# output_padding, dilation, groups, and phases without a tap.
CONFIGS = {
    "k3-s1": ((2, 4, 4, 5), (4, 3, 3, 3), {}),
    "k3-s2-p1-op1": ((2, 4, 4, 5), (4, 3, 3, 3), dict(stride=2, padding=1, output_padding=1)),
    "k3-s2-p1-groups2": ((1, 4, 3, 3), (4, 2, 3, 3), dict(stride=2, padding=1, groups=2)),
    "k3-s2-d2-empty-phases": ((1, 3, 4, 4), (3, 3, 3, 3), dict(stride=2, dilation=2)),
    "k2x3-s3x1-p0x1-d1x2": ((1, 3, 3, 5), (3, 3, 2, 3), dict(stride=(3, 1), padding=(0, 1), dilation=(1, 2))),
    "k3-s2-depthwise-x2": ((1, 3, 4, 4), (3, 2, 3, 3), dict(stride=2, padding=1, groups=3)),  # the FMA kernel
}


def make(config, dtype=torch.float32):
    x_shape, w_shape, kwargs = CONFIGS[config]
    c_out = w_shape[1] * kwargs.get("groups", 1)
    return torch.randn(x_shape).to(dtype), torch.randn(w_shape).to(dtype), torch.randn(c_out).to(dtype), kwargs


def torch_cpu(x, w, b, activation=None, **kwargs):
    """torch's CPU result in fp64 from the same (rounded) operands; fp64 because torch's fp32 and bf16 CPU GELU
    turn +inf into NaN, which its fp64 GELU (and ours) does not."""
    y = F.conv_transpose2d(x.double(), w.double(), None if b is None else b.double(), **kwargs)
    return y if activation is None else ACTIVATIONS[activation](y, 0.01)


# --- refused calls -------------------------------------------------------------------------------------------------


def _out_untouched_cases():
    """Every invalid call of test_errors.INVALID, plus the refusals that exist only with out= or activation=."""
    cases = {name: (args, kwargs, message) for name, (args, kwargs, message) in INVALID.items()}
    x, w, b, _ = make("k3-s1")
    cases["unknown-activation"] = ((x, w, b), {"activation": "swish"}, r"unknown activation 'swish'")
    return cases


OUT_UNTOUCHED = _out_untouched_cases()


@pytest.mark.parametrize("name", list(OUT_UNTOUCHED))
def test_refused_call_leaves_out_untouched(name, count_launches):
    args, kwargs, message = OUT_UNTOUCHED[name]
    out = torch.full((2, 3, 7, 7), SENTINEL)
    with pytest.raises(Exception, match=message):
        triton_convt.conv_transpose2d(*args, **kwargs, out=out)
    assert (out == SENTINEL).all()
    assert count_launches() == 0


@pytest.mark.parametrize("operand", ["input", "weight", "bias"])
def test_out_overlapping_an_operand_is_left_untouched(operand, count_launches):
    """The operand lives inside out's memory: refusing must happen before anything is written to either."""
    x, w, b, kwargs = make("k3-s1")
    storage = torch.randn(2 * 3 * 6 * 7 + 200)
    out = storage[: 2 * 3 * 6 * 7].view(2, 3, 6, 7)
    operands = {"input": x, "weight": w, "bias": b}
    operands[operand] = storage[100 : 100 + operands[operand].numel()].view_as(operands[operand])
    before = storage.clone()
    with pytest.raises(RuntimeError, match=f"{operand} tensor and the written-to tensor"):
        triton_convt.conv_transpose2d(*operands.values(), **kwargs, out=out)
    assert torch.equal(bits(storage), bits(before))
    assert count_launches() == 0


@pytest.mark.parametrize(
    "operand, message", [("input", r"weight on cpu and input on meta"), ("bias", r"bias on meta and input on cpu")]
)
def test_operand_on_another_device_is_runtime_error(operand, message, count_launches):
    """torch refuses tensors on two devices (cuda and cpu) with RuntimeError. Here "meta" plays the second device,
    which torch's CPU kernel itself lets through; test_errors covers the weight, test_epilogue out=."""
    x, w, b, _ = make("k3-s1")
    operands = {"input": x, "weight": w, "bias": b}
    operands[operand] = operands[operand].to("meta")
    with pytest.raises(RuntimeError, match=rf"same device, but got {message}"):
        triton_convt.conv_transpose2d(*operands.values())
    assert count_launches() == 0


# --- NaN and ±inf ---------------------------------------------------------------------------------------------------

VALUES = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def poison(t: torch.Tensor, value: float) -> torch.Tensor:
    """``t`` with ``value`` at its first element and at its centre (for a weight: a corner tap, which the border
    rows of the output do not reach, and an inner one)."""
    t = t.clone()
    t[(0,) * t.dim()] = value
    t[tuple(s // 2 for s in t.shape)] = value
    return t


#: Non-finite weights give torch's result only where the weights are read (the CPU); CUDA keeps cuDNN's border NaN
#: (test_non_finite_weights_on_cuda_differ_from_torch_only_by_border_nan).
CPU_WEIGHT_SEMANTICS = pytest.mark.interpreter_only


@pytest.mark.parametrize("value", list(VALUES))
@pytest.mark.parametrize("operand", ["input", pytest.param("weight", marks=CPU_WEIGHT_SEMANTICS), "bias"])
@pytest.mark.parametrize("config", list(CONFIGS))
def test_non_finite_operand_propagates_like_torch_cpu(config, operand, value, count_launches):
    """NaN, +inf and -inf land exactly where torch's CPU result has them; for the weights this needs the kernel's
    masked recomputation, since an out-of-range tap would otherwise put 0 * inf = NaN into a finite or inf output."""
    x, w, b, kwargs = make(config)
    operands = {"input": x, "weight": w, "bias": b}
    operands[operand] = poison(operands[operand], VALUES[value])
    y = triton_convt.conv_transpose2d(*operands.values(), **kwargs)
    assert count_launches() == forward_launches(operands["weight"], kwargs.get("groups", 1))
    expected = torch_cpu(*operands.values(), **kwargs)
    assert expected.isfinite().any() and not expected.isfinite().all()  # the case tests both kinds of output
    assert_matches_nonfinite(y, expected)


@CPU_WEIGHT_SEMANTICS
@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("value", list(VALUES))
@pytest.mark.parametrize("config", ["k3-s2-p1-op1"])
def test_non_finite_weights_in_every_dtype(config, value, dtype):
    x, w, b, kwargs = make(config, dtype)
    w = poison(w, VALUES[value])
    assert_matches_nonfinite(triton_convt.conv_transpose2d(x, w, b, **kwargs), torch_cpu(x, w, b, **kwargs))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_non_finite_bias_through_each_activation(activation, dtype):
    """Channels whose pre-activation is +inf, -inf or NaN everywhere, next to a finite one: each activation maps
    them as torch's (fp64) does, e.g. sigmoid(-inf) = 0, gelu(-inf) = NaN (-inf * 0), tanh(+inf) = 1."""
    x, w, _, kwargs = make("k3-s2-p1-op1", dtype)
    b = torch.tensor([math.inf, -math.inf, math.nan], dtype=dtype)
    y = triton_convt.conv_transpose2d(x, w, b, **kwargs, activation=activation)
    assert_matches_nonfinite(y, torch_cpu(x, w, b, activation, **kwargs))


@CPU_WEIGHT_SEMANTICS
def test_weights_made_non_finite_in_place_between_calls(count_launches):
    """The second call sees the weights as they are now."""
    x, w, b, kwargs = make("k3-s1")
    assert triton_convt.conv_transpose2d(x, w, b, **kwargs).isfinite().all()
    with torch.no_grad():
        w[0, 0, 0, 0] = math.inf
    assert_matches_nonfinite(triton_convt.conv_transpose2d(x, w, b, **kwargs), torch_cpu(x, w, b, **kwargs))
    assert count_launches() == 2 * forward_launches(w, kwargs.get("groups", 1))


@CPU_WEIGHT_SEMANTICS
def test_weights_made_non_finite_through_data_are_seen(count_launches):
    """A write through ``.data`` keeps the weight's version (gradcheck and EMA code write that way): the next call
    still gives torch's result, because the weights are read on every CPU call, not cached by version."""
    x, w, b, kwargs = make("k3-s1")
    assert triton_convt.conv_transpose2d(x, w, b, **kwargs).isfinite().all()
    version = w._version
    w.data[0, 0, 0, 0] = math.inf
    assert w._version == version
    assert_matches_nonfinite(triton_convt.conv_transpose2d(x, w, b, **kwargs), torch_cpu(x, w, b, **kwargs))
    assert count_launches() == 2 * forward_launches(w, kwargs.get("groups", 1))


def test_inference_tensors_as_weights(count_launches):
    """A model built or loaded under ``torch.inference_mode()`` has inference tensors as weights, which have no
    version counter: calls work, and an in-place change made inside inference mode is seen by the next call."""
    x, w, b, kwargs = make("k3-s1")
    with torch.inference_mode():
        w_inf, b_inf = w.clone(), b.clone()
        first = triton_convt.conv_transpose2d(x, w_inf, b_inf, **kwargs)
        w_inf[:, :, 1] *= -3.0
        second = triton_convt.conv_transpose2d(x, w_inf, b_inf, **kwargs)
    assert_close_to_reference(first, torch_cpu(x, w, b, **kwargs))
    assert_close_to_reference(second, torch_cpu(x, w_inf.clone(), b, **kwargs))
    assert count_launches() == 2 * forward_launches(w_inf, kwargs.get("groups", 1))


@pytest.mark.cuda_only
@pytest.mark.parametrize("value", list(VALUES))
@pytest.mark.parametrize("config", ["k3-s2-p1-op1", "k3-s1"])
def test_non_finite_weights_on_cuda_differ_from_torch_only_by_border_nan(config, value):
    """The documented CUDA behaviour: torch's CPU result everywhere, except that some outputs where torch has a
    finite value or an inf (those an out-of-range tap reaches with a non-finite weight) are NaN, as cuDNN's are."""
    x, w, b, kwargs = make(config)
    w = poison(w, VALUES[value])
    y = triton_convt.conv_transpose2d(x, w, b, **kwargs)
    expected = torch_cpu(x.cpu(), w.cpu(), b.cpu(), **kwargs).to(y.device)  # torch's CPU semantics
    assert (y.isnan() | ~expected.isnan()).all()  # every NaN of torch's is ours too
    keep = ~y.isnan()
    assert keep.any()
    assert_matches_nonfinite(y[keep], expected[keep])


def test_off_the_cpu_the_weights_are_never_read(monkeypatch):
    """On a GPU, reading the weights' values would synchronise the host at every call: the variant choice never
    looks at them off the CPU (CUDA keeps cuDNN's NaN at the borders for non-finite weights, as documented)."""
    from triton_convt.launch import weights

    def read(*args, **kwargs):
        raise AssertionError("a weight value was read")

    monkeypatch.setattr(torch, "isfinite", read)
    assert weights.mask_products(torch.empty(4, 2, 3, 3, device="meta")) is False
    with pytest.raises(AssertionError, match="was read"):  # on the CPU it is read (the stand-in is reached)
        weights.mask_products(torch.ones(4, 2, 3, 3, device="cpu"))


# --- determinism ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("config", ["k3-s2-p1-groups2", "k2x3-s3x1-p0x1-d1x2"])
def test_repeated_calls_are_bitwise_identical(config, dtype, count_launches):
    """Phases write disjoint outputs and each tile sums in a fixed order: no atomics, so no run-to-run noise. The
    third call writes through out= into a channels_last tensor; a NaN weight makes the tiles it reaches take the
    masked recomputation, which must be just as repeatable."""
    x, w, b, kwargs = make(config, dtype)
    w = poison(w, math.nan) if dtype == torch.float32 else w
    first = triton_convt.conv_transpose2d(x, w, b, **kwargs, activation="gelu")
    second = triton_convt.conv_transpose2d(x, w, b, **kwargs, activation="gelu")
    third = torch.empty_like(first, memory_format=torch.channels_last)
    triton_convt.conv_transpose2d(x, w, b, **kwargs, activation="gelu", out=third)
    assert count_launches() == 3 * forward_launches(w, kwargs.get("groups", 1))
    assert torch.equal(bits(first), bits(second))
    assert torch.equal(bits(first), bits(third))


# --- int64 indexing -------------------------------------------------------------------------------------------------


def meta(shape, stride=None, offset=0):
    """A tensor with no memory behind it: the int64 decision reads only sizes, strides and the storage offset."""
    base = torch.empty(0, device="meta")
    return base.as_strided(shape, stride or torch.empty(shape, device="meta").stride(), offset)


SPANS = {
    # name: (tensor, whether some element offset reaches 2^31)
    "last-offset-2^31-1": (meta((2, 2**30)), False),
    "last-offset-2^31": (meta((2, 2**30), (2**30 + 1, 1)), True),
    "storage-offset": (meta((4, 4), offset=2**31 - 15), True),
    "storage-offset-just-fits": (meta((4, 4), offset=2**31 - 16), False),
    "transposed-strides": (meta((2**16, 2**15 + 1)).t(), True),
    "expanded-2^40-elements-at-offset-0": (meta((1, 1)).expand(2**20, 2**20), False),
    "nhwc-permuted": (meta((1, 2**15, 2**15, 3)).permute(0, 3, 1, 2), True),
}


@pytest.mark.parametrize("name", list(SPANS))
def test_int64_is_chosen_by_the_largest_offset(name):
    """Offsets, not element counts, decide: a zero-stride expand of 2^40 elements stays int32, a 16-element view
    at storage offset 2^31 - 15 does not."""
    t, expected = SPANS[name]
    assert kernel_plan._spans_int32(t) is expected


@pytest.mark.parametrize(
    "name, c_out, out_offset, expected",
    [
        ("output-of-2^31-elements", 8, 0, "int32"),
        ("same-at-storage-offset-1", 8, 1, "int64"),
        ("output-of-9x2^28-elements", 9, 0, "int64"),
        ("small-out-view-at-offset-2^31", None, 2**31, "int64"),
    ],
)
def test_forward_plan_takes_int64_for_the_output_alone(name, c_out, out_offset, expected):
    """The input and weight fit in int32; only the output (k2 s2 doubles H and W) or the buffer out= is a view of
    decides. No memory is allocated: the plan is built on meta tensors and not launched."""
    if c_out is None:
        x, w = meta((1, 2, 3, 3)), meta((2, 1, 2, 2))
    else:
        x, w = meta((1, c_out, 2**13, 2**13)), meta((c_out, 1, 2, 2))
    params = check_call(x, w, None, 2, 0, 0, c_out or 1, 1)
    n, c, h, wd = 1, w.shape[1] * params.groups, *params.output_hw(tuple(x.shape[2:]))
    y = meta((n, c, h, wd), offset=out_offset)
    plan = conv_transpose_fwd.forward_plan(x, w, None, y, params)
    assert not any(kernel_plan._spans_int32(t) for t in (x, w))
    assert str(plan.args["INDEX_DTYPE"]) == expected
