"""Invalid calls: torch's exception type, a message naming the problem, and no launch."""

import pytest
import torch
import torch.nn.functional as F

import triton_convt

X = torch.randn(2, 4, 5, 5)
W = torch.randn(4, 3, 3, 3)
B = torch.randn(3)

# name: (args, kwargs, regex the message must match). Each call is also made to torch, which must raise the same
# exception type.
INVALID = {
    "input-rank-2": ((torch.randn(4, 5), W), {}, r"3D \(unbatched\) or 4D.*\[4, 5\]"),
    "input-rank-5": ((torch.randn(1, 4, 5, 5, 1), W), {}, r"3D \(unbatched\) or 4D"),
    "weight-rank-3": ((X, torch.randn(4, 3, 3)), {}, r"weight.*4-D.*\[4, 3, 3\]"),
    "channel-mismatch": ((X, torch.randn(5, 3, 3, 3)), {}, r"to have 5 channels, but got 4"),
    "groups-do-not-divide": ((X, W), {"groups": 3}, r"groups=3.*divisible by 3"),
    "groups-zero": ((X, W), {"groups": 0}, r"non-positive groups"),
    "groups-negative": ((X, W), {"groups": -2}, r"non-positive groups"),
    "bias-wrong-length": ((X, W, torch.randn(4)), {}, r"bias.*3 elements.*\[4\]"),
    "bias-2d": ((X, W, torch.randn(3, 1)), {}, r"bias.*1-dimensional"),
    "stride-zero": ((X, W), {"stride": 0}, r"non-positive stride"),
    "stride-negative": ((X, W), {"stride": (1, -1)}, r"non-positive stride.*\[1, -1\]"),
    "dilation-zero": ((X, W), {"dilation": 0}, r"non-positive dilation"),
    "padding-negative": ((X, W), {"padding": -1}, r"negative padding"),
    "output-padding-negative": ((X, W), {"stride": 2, "output_padding": -1}, r"negative output_padding"),
    "output-padding-too-large": ((X, W), {"stride": 2, "output_padding": 2}, r"smaller than either stride or dil"),
    "output-too-small": ((torch.randn(1, 4, 1, 1), torch.randn(4, 3, 1, 1)), {"padding": (0, 1)}, r"too small"),
    "input-empty-spatial": ((torch.randn(1, 4, 0, 5), W), {}, r"zero batch or zero channel"),
    "weight-empty-out-channels": ((X, torch.randn(4, 0, 3, 3)), {}, r"non-empty"),
    "kernel-size-zero": ((X, torch.randn(4, 3, 0, 3)), {}, r"kernel size"),
    "dtype-input-weight": ((X.double(), W), {}, r"float64.*float32|Double.*Float"),
    "dtype-bias": ((X, W, B.double()), {}, r"bias type \(torch.float64\)"),
    "bool-tensors": ((X.bool(), W.bool()), {}, r"not implemented for.*torch.bool"),
    "stride-three-values": ((X, W), {"stride": (1, 1, 1)}, r"list of 2 values.*stride=\[1, 1, 1\]"),
    "padding-empty-list": ((X, W), {"padding": []}, r"list of 2 values"),
    "stride-float": ((X, W), {"stride": 1.5}, r"'stride' must be tuple of ints, not float"),
    "stride-str": ((X, W), {"stride": "a"}, r"'stride' must be tuple of ints, not str"),
    "stride-bool": ((X, W), {"stride": True}, r"'stride' must be tuple of ints, not bool"),
    "stride-tuple-with-float": ((X, W), {"stride": (1, 2.0)}, r"'stride' must be int, not float"),
    "padding-same-string": ((X, W), {"padding": "same"}, r"'padding' must be tuple of ints, not str"),
    "groups-float": ((X, W), {"groups": 1.0}, r"'groups' must be int, not float"),
    "input-not-tensor": (([1.0], W), {}, r"'input' must be Tensor, not list"),
    "bias-not-tensor": ((X, W, 3), {}, r"'bias' must be Tensor, not int"),
    # Hardening (issue 7): the rest of each family above.
    "input-rank-0": ((torch.tensor(1.0), W), {}, r"3D \(unbatched\) or 4D.*\[\]"),
    "weight-rank-2": ((X, torch.randn(4, 3)), {}, r"weight.*4-D.*\[4, 3\]"),
    "weight-rank-5": ((X, torch.randn(4, 3, 3, 3, 1)), {}, r"weight.*4-D.*\[4, 3, 3, 3, 1\]"),
    "unbatched-channel-mismatch": ((torch.randn(5, 5, 5), W), {}, r"to have 4 channels, but got 5"),
    "groups2-input-channel-mismatch": ((torch.randn(2, 2, 5, 5), W), {"groups": 2}, r"to have 4 channels, but got 2"),
    "bias-length-with-groups": ((X, W, B), {"groups": 2}, r"bias.*6 elements.*\[3\]"),
    "bias-0d": ((X, W, torch.tensor(1.0)), {}, r"bias to be 1-dimensional.*\[\]"),
    "dtype-weight-half": ((X, W.half()), {}, r"weight type \(torch.float16\)"),
    "dtype-int-input-float-weight": ((X.long(), W), {}, r"Input type \(torch.int64\) and weight type \(torch.float32"),
    "dtype-float-input-int-weight": ((X, W.int()), {}, r"weight type \(torch.int32\)"),
    "dtype-int-bias": ((X, W, B.long()), {}, r"bias type \(torch.int64\)"),
    "dilation-negative": ((X, W), {"dilation": (1, -2)}, r"non-positive dilation.*\[1, -2\]"),
    "padding-negative-width": ((X, W), {"padding": (0, -1)}, r"negative padding.*\[0, -1\]"),
    "output-padding-too-large-for-dilation": ((X, W), {"dilation": 2, "output_padding": 2}, r"smaller than either"),
    "dilation-three-values": ((X, W), {"dilation": (1, 1, 1)}, r"dilation to be a single integer.*2 values"),
    "output-padding-three-values": ((X, W), {"output_padding": (0, 0, 0)}, r"output_padding to be a single"),
    "stride-none": ((X, W), {"stride": None}, r"'stride' must be tuple of ints, not NoneType"),
    "groups-str": ((X, W), {"groups": "2"}, r"'groups' must be int, not str"),
    "dilation-float": ((X, W), {"dilation": 2.0}, r"'dilation' must be tuple of ints, not float"),
    "output-padding-tuple-with-float": ((X, W), {"stride": 2, "output_padding": (0.5, 0)}, r"'output_padding'.*float"),
    "padding-1d-tensor": ((X, W), {"padding": torch.tensor([1, 1])}, r"'padding' must be tuple of ints.*Tensor"),
    "stride-0d-float-tensor": ((X, W), {"stride": torch.tensor(1.5)}, r"'stride' must be tuple of ints, not Tensor"),
    "weight-not-tensor": ((X, [[1.0]]), {}, r"'weight' must be Tensor, not list"),
}


@pytest.mark.parametrize("name", list(INVALID))
def test_invalid_call_raises_torch_exception_type(name, count_launches):
    args, kwargs, message = INVALID[name]
    with pytest.raises(Exception) as torch_error:
        F.conv_transpose2d(*args, **kwargs)
    with pytest.raises(Exception, match=message) as ours:
        triton_convt.conv_transpose2d(*args, **kwargs)
    assert type(ours.value) is type(torch_error.value), (ours.value, torch_error.value)
    assert count_launches() == 0


@pytest.mark.parametrize("dtype", [torch.int64, torch.complex64, torch.int32], ids=str)
def test_dtypes_without_a_kernel_raise_not_implemented(dtype, count_launches):
    """torch's CPU kernel takes these; cuDNN does not, and neither do the Triton kernels. NotImplementedError is what
    torch raises for a dtype a kernel does not dispatch (and it is a RuntimeError)."""
    with pytest.raises(NotImplementedError, match=str(dtype)):
        triton_convt.conv_transpose2d(X.to(dtype), W.to(dtype))
    assert count_launches() == 0


@pytest.mark.parametrize(
    "output_size, message",
    [
        ((22, 23), r"valid sizes range from \[23, 23\] to \[24, 24\]"),
        ((25, 23), r"valid sizes range"),
        ((1, 3, 23), r"must have 2 or 4 elements \(got 3\)"),
    ],
    ids=["too-small", "too-large", "three-entries"],
)
def test_unreachable_output_size_is_value_error_like_the_module(output_size, message, count_launches):
    x = torch.randn(1, 3, 12, 12)
    m = torch.nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1)
    with pytest.raises(ValueError):
        m(x, output_size=output_size)
    with pytest.raises(ValueError, match=message):
        triton_convt.conv_transpose2d(x, m.weight, m.bias, stride=2, padding=1, output_size=output_size)
    assert count_launches() == 0


def test_device_mismatch_is_runtime_error(count_launches):
    with pytest.raises(RuntimeError, match=r"same device.*weight on meta"):
        triton_convt.conv_transpose2d(X, W.to("meta"))
    assert count_launches() == 0
