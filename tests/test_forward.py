"""The forward op against torch (fp64 reference), through the Triton interpreter."""

from dataclasses import dataclass, field

import pytest
import torch
import torch.nn.functional as F
from helpers import assert_close_to_reference, forward_launches

import triton_convt
from triton_convt.launch import conv_transpose_fwd

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


@dataclass(frozen=True)
class Case:
    """One ConvTranspose2d problem: input (n, c_in, h, w), c_out, kernel and the keyword arguments."""

    n: int
    c_in: int
    hw: tuple
    c_out: int
    kernel: tuple
    kwargs: dict = field(default_factory=dict)
    bias: bool = True

    def tensors(self, dtype=torch.float32):
        groups = self.kwargs.get("groups", 1)
        x = torch.randn(self.n, self.c_in, *self.hw, dtype=dtype)
        w = torch.randn(self.c_in, self.c_out // groups, *self.kernel, dtype=dtype)
        b = torch.randn(self.c_out, dtype=dtype) if self.bias else None
        return x, w, b


# fmt: off
CASES = {
    # The two examples of torch's ConvTranspose2d documentation.
    "doc-16to33-k3-s2": Case(2, 16, (5, 6), 33, (3, 3), dict(stride=2)),
    "doc-16to33-k3x5-s2x1-p4x2": Case(2, 16, (7, 5), 33, (3, 5), dict(stride=(2, 1), padding=(4, 2))),
    "dcgan-k4-s2-p1": Case(2, 8, (4, 4), 8, (4, 4), dict(stride=2, padding=1)),
    "sam-k2-s2": Case(1, 8, (5, 5), 4, (2, 2), dict(stride=2)),
    "vae-k3-s2-p1-op1": Case(2, 6, (4, 5), 5, (3, 3), dict(stride=2, padding=1, output_padding=1)),
    "stride1-k3": Case(1, 4, (5, 5), 3, (3, 3)),
    "stride-over-kernel-k1-s3": Case(2, 4, (3, 4), 5, (1, 1), dict(stride=3)),
    "k2-s3-op2": Case(1, 3, (3, 3), 2, (2, 2), dict(stride=3, output_padding=2)),
    "k5-s3-p2-op2": Case(1, 4, (4, 3), 3, (5, 5), dict(stride=3, padding=2, output_padding=2)),
    "k7-s2-p3-op1": Case(1, 3, (4, 4), 2, (7, 7), dict(stride=2, padding=3, output_padding=1)),
    "padding-past-taps-k3-s2-p3": Case(1, 3, (5, 5), 2, (3, 3), dict(stride=2, padding=3)),
    "dilation2-s2-empty-phases": Case(1, 3, (4, 4), 4, (3, 3), dict(stride=2, dilation=2)),
    "dilation3-s2": Case(1, 3, (4, 4), 4, (3, 3), dict(stride=2, dilation=3, padding=1)),
    # (d/gcd)^-1 mod (s/gcd) is 2 along H and 2 along W: taps do not start at the residue itself.
    "dilation2-s3-and-dilation3-s5": Case(1, 3, (3, 3), 2, (5, 4),
                                          dict(stride=(3, 5), dilation=(2, 3), padding=(1, 2))),
    "dilation-exceeds-stride-op2": Case(1, 3, (4, 4), 2, (3, 3), dict(stride=1, dilation=3, output_padding=2)),
    "opinfo-groups2-d4-s3x2": Case(2, 2, (4, 4), 4, (4, 5), dict(
        stride=(3, 2), padding=(1, 2), output_padding=(2, 3), groups=2, dilation=(4, 4))),
    "asym-s3x1-k2x5-p0x3-d1x2": Case(1, 4, (3, 6), 3, (2, 5), dict(stride=(3, 1), padding=(0, 3), dilation=(1, 2))),
    "groups2": Case(2, 6, (4, 4), 4, (3, 3), dict(stride=2, padding=1, groups=2)),
    "depthwise": Case(1, 4, (4, 4), 4, (3, 3), dict(stride=2, groups=4)),
    "depthwise-multiplier2-k4-s2": Case(1, 3, (4, 4), 6, (4, 4), dict(stride=2, padding=1, groups=3)),
    "fcn-depthwise-k16-s8": Case(1, 2, (2, 2), 2, (16, 16), dict(stride=8, padding=4, groups=2), bias=False),
    "no-bias": Case(2, 4, (3, 3), 3, (3, 3), dict(stride=2), bias=False),
    "1x1-input-k4-s1": Case(2, 8, (1, 1), 8, (4, 4)),
    "phases-without-outputs-h1-s3": Case(2, 3, (1, 1), 2, (1, 1), dict(stride=3)),
    # A one-pixel axis runs with the kernel's span as its stride (shapes.launch_stride): same result.
    "1x1-input-k3-s2-p1-op1-d2": Case(2, 5, (1, 1), 4, (3, 3), dict(stride=2, padding=1, output_padding=1,
                                                                     dilation=2)),
    "one-row-input-k3-p1x0": Case(1, 4, (1, 5), 3, (3, 3), dict(padding=(1, 0))),
    "1x1-input-depthwise-k4": Case(2, 3, (1, 1), 3, (4, 4), dict(groups=3)),
    "many-channel-chunks-cin70": Case(1, 70, (3, 3), 5, (3, 3), dict(stride=2, padding=1)),
    "many-column-tiles-cout150": Case(1, 4, (3, 3), 150, (2, 2), dict(stride=2)),
    "many-row-tiles": Case(3, 4, (9, 11), 3, (2, 2), dict(stride=2)),
}
# fmt: on
# Cases that also run in fp64, fp16 and bf16 (fp32 runs all of them).
DTYPE_CASES = ["doc-16to33-k3-s2", "dcgan-k4-s2-p1", "opinfo-groups2-d4-s3x2", "depthwise", "k7-s2-p3-op1"]


def reference(x, w, b, **kwargs):
    """torch's result in fp64 from the same (already rounded) inputs."""
    return F.conv_transpose2d(x.double(), w.double(), None if b is None else b.double(), **kwargs)


def check(x, w, b, count_launches, **kwargs):
    y = triton_convt.conv_transpose2d(x, w, b, **kwargs)
    assert count_launches() == forward_launches(w, kwargs.get("groups", 1)), (
        "the Triton kernel did not run (or ran more than once)"
    )
    assert y.dtype == x.dtype
    assert_close_to_reference(y, reference(x, w, b, **kwargs))
    return y


@pytest.mark.parametrize("name", list(CASES))
def test_fp32_table(name, count_launches):
    case = CASES[name]
    check(*case.tensors(), count_launches, **case.kwargs)


@pytest.mark.parametrize("dtype", DTYPES[1:], ids=str)
@pytest.mark.parametrize("name", DTYPE_CASES)
def test_dtypes(name, dtype, count_launches):
    case = CASES[name]
    check(*case.tensors(dtype), count_launches, **case.kwargs)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_channels_last_read_in_place_and_kept(dtype, count_launches):
    """channels_last input is read as it is (no copy) and gives channels_last output, as torch does."""
    case = CASES["dcgan-k4-s2-p1"]
    x, w, b = case.tensors(dtype)
    x = x.to(memory_format=torch.channels_last)
    y = check(x, w, b, count_launches, **case.kwargs)
    expected = F.conv_transpose2d(x, w, b, **case.kwargs)
    assert y.stride() == expected.stride()


@pytest.mark.parametrize(
    "layout",
    [
        "weight-channels-last",
        "input-sliced-channels",
        "input-transposed-hw",
        "input-every-other-column",
        "weight-permuted",
    ],
)
def test_strided_views(layout, count_launches):
    """Views are read through their strides; the output layout follows torch's rule."""
    case = CASES["vae-k3-s2-p1-op1"]
    x, w, b = case.tensors()
    if layout == "weight-channels-last":
        w = w.to(memory_format=torch.channels_last)
    elif layout == "input-sliced-channels":
        x = torch.cat([x, torch.randn_like(x)], dim=1)[:, : case.c_in]
    elif layout == "input-transposed-hw":
        x = x.transpose(2, 3).contiguous().transpose(2, 3)
    elif layout == "input-every-other-column":
        x = torch.repeat_interleave(x, 2, dim=3)[..., ::2]
    elif layout == "weight-permuted":
        w = w.permute(1, 0, 2, 3).contiguous().permute(1, 0, 2, 3)
    assert not (x.is_contiguous() and w.is_contiguous())
    y = check(x, w, b, count_launches, **case.kwargs)
    assert y.stride() == F.conv_transpose2d(x, w, b, **case.kwargs).stride()


def test_unbatched_input(count_launches):
    case = CASES["doc-16to33-k3-s2"]
    x, w, b = case.tensors()
    y = triton_convt.conv_transpose2d(x[0], w, b, stride=2)
    assert count_launches() == forward_launches(w)
    assert y.shape == (33, 11, 13)
    assert_close_to_reference(y, reference(x[:1], w, b, stride=2)[0])


def test_empty_batch_launches_nothing(count_launches):
    x = torch.randn(0, 4, 5, 5)
    w = torch.randn(4, 3, 3, 3)
    y = triton_convt.conv_transpose2d(x, w, stride=2)
    assert y.shape == F.conv_transpose2d(x, w, stride=2).shape == (0, 3, 11, 11)
    assert count_launches() == 0


def module_reference(x, w, b, output_size, **kwargs):
    """nn.ConvTranspose2d's result in fp64, which resolves output_size itself."""
    m = torch.nn.ConvTranspose2d(w.shape[0], w.shape[1], tuple(w.shape[2:]), **kwargs).double()
    with torch.no_grad():
        m.weight.copy_(w)
        m.bias.copy_(b)
        return m(x.double(), output_size=output_size)


@pytest.mark.parametrize("output_size", [(23, 24), [24, 23], torch.Size([1, 4, 24, 24])], ids=str)
def test_output_size_picks_output_padding(output_size, count_launches):
    x, w, b = torch.randn(1, 3, 12, 12), torch.randn(3, 4, 3, 3), torch.randn(4)
    y = triton_convt.conv_transpose2d(x, w, b, stride=2, padding=1, output_size=output_size)
    assert count_launches() == forward_launches(w)
    assert tuple(y.shape[-2:]) == tuple(output_size)[-2:]
    assert_close_to_reference(y, module_reference(x, w, b, output_size, stride=2, padding=1))


def test_output_size_restores_downsampled_size(count_launches):
    """torch's documented example: a stride-2 Conv2d and its ConvTranspose2d with output_size=input.size()."""
    x = torch.randn(1, 16, 12, 12)
    down = torch.nn.Conv2d(16, 16, 3, stride=2, padding=1)
    up = torch.nn.ConvTranspose2d(16, 16, 3, stride=2, padding=1)
    with torch.no_grad():
        h = down(x)
        assert h.shape == (1, 16, 6, 6)
        y = triton_convt.conv_transpose2d(h, up.weight, up.bias, stride=2, padding=1, output_size=x.size())
    assert count_launches() == forward_launches(up.weight)
    assert y.shape == x.shape
    assert_close_to_reference(y, module_reference(h, up.weight, up.bias, x.size(), stride=2, padding=1))


def test_int64_index_path_gives_the_same_result():
    """The int64 path (taken for tensors spanning 2^31 elements) forced on a small problem."""
    from triton_convt.functional.conv_transpose import check_call

    case = CASES["opinfo-groups2-d4-s3x2"]
    x, w, b = case.tensors()
    params = check_call(
        x, w, b, **{k: case.kwargs[k] for k in ("stride", "padding", "output_padding", "groups", "dilation")}
    )
    y32 = conv_transpose_fwd.allocate_output(x, w, params)
    y64 = conv_transpose_fwd.allocate_output(x, w, params)
    plan32 = conv_transpose_fwd.forward_plan(x, w, b, y32, params)
    plan64 = conv_transpose_fwd.forward_plan(x, w, b, y64, params, index64=True)
    assert str(plan32.args["INDEX_DTYPE"]) == "int32" and str(plan64.args["INDEX_DTYPE"]) == "int64"
    plan32.launch()
    plan64.launch()
    assert torch.equal(y32, y64)
    assert_close_to_reference(y64, reference(x, w, b, **case.kwargs))


def test_deterministic(count_launches):
    case = CASES["opinfo-groups2-d4-s3x2"]
    x, w, b = case.tensors()
    first = triton_convt.conv_transpose2d(x, w, b, **case.kwargs)
    second = triton_convt.conv_transpose2d(x, w, b, **case.kwargs)
    assert torch.equal(first, second)
    assert count_launches() == 2 * forward_launches(w, case.kwargs.get("groups", 1))
