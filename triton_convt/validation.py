"""Argument normalisation and validation, before any launch.

Every call torch rejects is rejected here with torch's exception type (TypeError for arguments of the wrong Python
type, ValueError for an unreachable ``output_size``, RuntimeError for the rest, NotImplementedError (a RuntimeError)
for a dtype the kernels do not implement), and a message that names the argument and the values.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, replace

import torch

from . import shapes

#: dtypes the Triton kernels implement. torch's CPU kernel also takes integer and complex tensors; cuDNN does not,
#: and neither do we.
SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


@dataclass(frozen=True)
class ConvParams:
    """Normalised arguments of one call; every pair is (H, W)."""

    stride: tuple[int, int]
    padding: tuple[int, int]
    output_padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int
    kernel: tuple[int, int]

    def output_hw(self, input_hw: tuple[int, int]) -> tuple[int, int]:
        return tuple(
            shapes.output_length(i, k, s, p, op, d)
            for i, k, s, p, op, d in zip(
                input_hw, self.kernel, self.stride, self.padding, self.output_padding, self.dilation
            )
        )

    def for_launch(self, input_hw: tuple[int, int]) -> "ConvParams":
        """The same convolution as the forward kernels run it on an input of ``input_hw``: the stride of each axis
        is :func:`triton_convt.shapes.launch_stride` (it differs only along an axis of one input pixel, where the
        stride does not change the result)."""
        stride = tuple(map(shapes.launch_stride, input_hw, self.kernel, self.stride, self.dilation))
        return replace(self, stride=stride)


def _index(value, name: str) -> int:
    """An integer argument as torch's argument parser accepts it: int-like, but not bool, float or str."""
    if isinstance(value, bool) or isinstance(value, (float, str)):
        raise TypeError(f"conv_transpose2d(): argument '{name}' must be int, not {type(value).__name__}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(
            f"conv_transpose2d(): argument '{name}' must be int, not {type(value).__name__}"
        ) from None


def as_pair(value, name: str) -> tuple[int, int]:
    """An int, or a sequence of 1 or 2 ints, as an (H, W) pair, the way torch's ``IntArrayRef[2]`` parses it."""
    if isinstance(value, (list, tuple, torch.Size)):
        items = [_index(v, name) for v in value]
        if len(items) == 1:
            return items[0], items[0]
        if len(items) != 2:
            raise RuntimeError(
                f"expected {name} to be a single integer value or a list of 2 values to match the convolution "
                f"dimensions, but got {name}={items}"
            )
        return items[0], items[1]
    if isinstance(value, torch.Tensor) and value.dim() != 0:
        raise TypeError(f"conv_transpose2d(): argument '{name}' must be tuple of ints, not a {value.dim()}-D Tensor")
    try:
        v = _index(value, name)
    except TypeError:
        raise TypeError(
            f"conv_transpose2d(): argument '{name}' must be tuple of ints, not {type(value).__name__}"
        ) from None
    return v, v


def check_call(input, weight, bias, stride, padding, output_padding, groups, dilation) -> ConvParams:
    """Validate a ``conv_transpose2d`` call on 4-D input (batched; the op unsqueezes unbatched input first)."""
    for name, t in (("input", input), ("weight", weight)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"conv_transpose2d(): argument '{name}' must be Tensor, not {type(t).__name__}")
    if bias is not None and not isinstance(bias, torch.Tensor):
        raise TypeError(f"conv_transpose2d(): argument 'bias' must be Tensor, not {type(bias).__name__}")
    if weight.dim() != 4:
        raise RuntimeError(
            f"expected weight to be 4-D [in_channels, out_channels/groups, kH, kW], but got weight of size "
            f"{list(weight.shape)}"
        )
    params = ConvParams(
        stride=as_pair(stride, "stride"),
        padding=as_pair(padding, "padding"),
        output_padding=as_pair(output_padding, "output_padding"),
        dilation=as_pair(dilation, "dilation"),
        groups=_index(groups, "groups"),
        kernel=(weight.shape[2], weight.shape[3]),
    )
    _check_values(params)
    _check_shapes(input, weight, bias, params)
    _check_dtypes_devices(input, weight, bias)
    out_hw = params.output_hw((input.shape[2], input.shape[3]))
    if min(out_hw) <= 0:
        raise RuntimeError(
            f"Given input size per channel: ({input.shape[2]} x {input.shape[3]}). Calculated output size per "
            f"channel: ({out_hw[0]} x {out_hw[1]}). Output size is too small"
        )
    return params


def _check_values(p: ConvParams) -> None:
    if p.groups <= 0:
        raise RuntimeError(f"non-positive groups is not supported (got groups={p.groups})")
    for name in ("stride", "dilation"):
        if min(getattr(p, name)) <= 0:
            raise RuntimeError(f"non-positive {name} is not supported (got {name}={list(getattr(p, name))})")
    for name in ("padding", "output_padding"):
        if min(getattr(p, name)) < 0:
            raise RuntimeError(f"negative {name} is not supported (got {name}={list(getattr(p, name))})")
    for op, s, d in zip(p.output_padding, p.stride, p.dilation):
        if op >= max(s, d):
            raise RuntimeError(
                f"output padding must be smaller than either stride or dilation, but got "
                f"output_padding={list(p.output_padding)}, stride={list(p.stride)}, dilation={list(p.dilation)}"
            )


def _check_shapes(input, weight, bias, p: ConvParams) -> None:
    c_in, c_out_g, kh, kw = weight.shape
    if min(kh, kw) <= 0:
        raise RuntimeError(f"kernel size should be greater than zero, but got weight of size {list(weight.shape)}")
    if c_out_g <= 0 or c_in <= 0:
        raise RuntimeError(f"non-empty 4D weight tensor expected, but got weight of size {list(weight.shape)}")
    if c_in % p.groups:
        raise RuntimeError(
            f"Given groups={p.groups}, expected weight to be divisible by {p.groups} at dimension 0, but got "
            f"weight of size {list(weight.shape)} instead"
        )
    if input.shape[1] != c_in:
        raise RuntimeError(
            f"Given transposed=1, weight of size {list(weight.shape)}, expected input{list(input.shape)} to have "
            f"{c_in} channels, but got {input.shape[1]} channels instead"
        )
    if input.shape[2] <= 0 or input.shape[3] <= 0:
        raise RuntimeError(
            f"Only zero batch or zero channel inputs are supported, but got input shape: {list(input.shape)}"
        )
    if bias is not None and (bias.dim() != 1 or bias.shape[0] != c_out_g * p.groups):
        raise RuntimeError(
            f"Given transposed=1, weight of size {list(weight.shape)}, expected bias to be 1-dimensional with "
            f"{c_out_g * p.groups} elements, but got bias of size {list(bias.shape)} instead"
        )


def _check_dtypes_devices(input, weight, bias) -> None:
    tensors = {"input": input, "weight": weight}
    if bias is not None:
        tensors["bias"] = bias
    # A mismatch is reported first, as torch does (RuntimeError): an int64 input with a float32 weight is a
    # mismatch in torch too; only operands that agree on a dtype without a kernel are NotImplementedError.
    for name, t in tensors.items():
        if t.dtype != input.dtype:
            raise RuntimeError(f"Input type ({input.dtype}) and {name} type ({t.dtype}) should be the same")
    if input.dtype not in SUPPORTED_DTYPES:
        raise NotImplementedError(
            f"triton_convt conv_transpose2d is not implemented for tensors of dtype {input.dtype}; supported: "
            + ", ".join(str(d) for d in SUPPORTED_DTYPES)
        )
    for name, t in tensors.items():
        if t.device != input.device:
            raise RuntimeError(
                f"Expected all tensors to be on the same device, but got {name} on {t.device} and input on "
                f"{input.device}"
            )


def output_padding_from_size(input, weight, output_size, stride, padding, dilation):
    """The output_padding that ``output_size`` asks for, the way ``nn.ConvTranspose2d.forward`` resolves it.

    ``output_size`` is (H, W), or the whole output shape (4 entries for batched input, 3 for unbatched). Runs
    before :func:`check_call`, which then validates the call with the resolved output_padding.
    """
    if isinstance(output_size, torch.Tensor) or not isinstance(output_size, (list, tuple, torch.Size)):
        raise TypeError(
            f"output_size must be a sequence of ints (H, W) or the full output shape, not "
            f"{type(output_size).__name__}"
        )
    sizes = [_index(s, "output_size") for s in output_size]
    non_spatial = input.dim() - 2
    if len(sizes) == non_spatial + 2:
        sizes = sizes[non_spatial:]
    if len(sizes) != 2:
        raise ValueError(
            f"ConvTranspose2D: for {input.dim()}D input, output_size must have 2 or {non_spatial + 2} elements "
            f"(got {len(output_size)})"
        )
    if not isinstance(weight, torch.Tensor) or weight.dim() != 4:
        raise RuntimeError("output_size needs a 4-D weight [in_channels, out_channels/groups, kH, kW]")
    return shapes.output_padding_for_size(
        tuple(input.shape[-2:]),
        sizes,
        tuple(weight.shape[2:]),
        as_pair(stride, "stride"),
        as_pair(padding, "padding"),
        as_pair(dilation, "dilation"),
    )


def _shares_memory(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether some element of ``a`` and some element of ``b`` are the same memory (exact, not a range test, so
    two channel slices of one concat buffer do not count as overlapping)."""
    if a.numel() == 0 or b.numel() == 0 or a.device != b.device:
        return False
    if a.untyped_storage().data_ptr() != b.untyped_storage().data_ptr():
        return False
    size = a.element_size()
    spans = []
    for t in (a, b):
        first = t.storage_offset() * t.element_size()
        last = first + (sum((n - 1) * s for n, s in zip(t.shape, t.stride())) + 1) * t.element_size()
        spans.append((first, last))
    (a0, a1), (b0, b1) = spans
    if a1 <= b0 or b1 <= a0:
        return False
    if a.element_size() != b.element_size() or any(s % size for s in (a0, b0)):
        return True  # different element grids overlapping in range: assume the worst
    # Mark a's elements on a scratch grid over the common range, then look under b's. Only reached when the two
    # ranges intersect, which the usual calls (separate tensors, disjoint slices) never do.
    lo, hi = min(a0, b0) // size, max(a1, b1) // size
    marks = torch.zeros(hi - lo, dtype=torch.bool, device=a.device)
    marks.as_strided(a.shape, a.stride(), a0 // size - lo).fill_(True)
    return bool(marks.as_strided(b.shape, b.stride(), b0 // size - lo).any())


def check_out(out, input, weight, bias, expected_shape) -> None:
    """``out=`` must be a tensor of the output's shape, dtype and device that shares no memory with an operand
    and has no two elements in one place. Like torch, ``out=`` does not take part in autograd."""
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"conv_transpose2d(): argument 'out' must be Tensor, not {type(out).__name__}")
    if tuple(out.shape) != tuple(expected_shape):
        raise RuntimeError(f"out has shape {list(out.shape)}, but the output has shape {list(expected_shape)}")
    if out.dtype != input.dtype:
        raise RuntimeError(f"out has dtype {out.dtype}, but the output has dtype {input.dtype}")
    if out.device != input.device:
        raise RuntimeError(f"out is on {out.device}, but the output is on {input.device}")
    if torch._debug_has_internal_overlap(out) == 1:
        raise RuntimeError(
            "unsupported operation: more than one element of the written-to tensor (out) refers to a single memory "
            "location. Please clone() the tensor before performing the operation."
        )
    for name, t in (("input", input), ("weight", weight), ("bias", bias)):
        if t is not None and _shares_memory(out, t):
            raise RuntimeError(
                f"unsupported operation: some elements of the {name} tensor and the written-to tensor (out) refer "
                f"to a single memory location"
            )
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (input, weight, bias, out)):
        raise RuntimeError(
            "conv_transpose2d(): functions with out=... arguments don't support automatic differentiation, but one "
            "of the arguments requires grad."
        )
