"""The public functional API of nearest-upsample + conv: argument normalisation and validation, then the op.

:func:`upsample_conv2d` computes ``act(F.conv2d(F.interpolate(input, scale_factor, mode="nearest"), weight, bias, 1,
padding, dilation, groups))`` as one transposed convolution of the *original* input with folded weights
(:mod:`triton_convt.launch.upsample_shapes`), so the upsampled tensor is never made. Every call the composition
rejects is rejected with the exception type it raises, before anything runs (:func:`check_call`).
"""

from __future__ import annotations

import operator

import torch

from .. import activations
from ..launch import upsample_shapes
from ..launch.upsample_shapes import UpsampleConvParams
from ..ops import upsample_conv as _ops  # noqa: F401  (registers torch.ops.triton_convt.upsample_conv2d*)
from .arguments import as_tuple, check_dtypes_devices, check_out, index

#: The op's name in messages about its own arguments; torch's own messages name conv2d or interpolate.
OP = "upsample_conv2d"


def upsample_conv2d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    scale_factor=2,
    padding=0,
    dilation=1,
    groups: int = 1,
    *,
    activation: str | None = None,
    negative_slope: float = activations.DEFAULT_NEGATIVE_SLOPE,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Nearest-neighbour upsampling by an integer factor, then a stride-1 convolution, without the upsampled tensor.

    Equal to ``act(F.conv2d(F.interpolate(input, scale_factor=scale_factor, mode="nearest"), weight, bias, 1,
    padding, dilation, groups))``: per axis, output ``o = q*s + r`` reads input ``q + floor((r - p + j*d)/s)`` through
    tap ``j``, so taps of one phase that read the same input pixel are added into one weight (for s=2, k=3, p=1: 4
    taps per output instead of 9). The folded weight is computed on every call (one small launch; no cache that a
    ``.data`` write could leave stale) and the output by one launch of the transposed convolution's kernel.

    Args:
        input: ``(N, C_in, H, W)`` or unbatched ``(C_in, H, W)``; float16, bfloat16, float32 or float64; any strides.
        weight: ``(C_out, C_in / groups, kH, kW)``, ``nn.Conv2d``'s layout; same dtype and device as ``input``.
        bias: optional ``(C_out,)``.
        scale_factor: a positive int or an (H, W) pair of them; an integral float (2.0) is accepted, a non-integral
            one raises ValueError (nearest upsampling by a fraction is not a fold).
        padding: an int, an (H, W) pair, ``"valid"`` (0) or ``"same"`` (output size = upsampled size; an odd total
            ``d*(k - 1)`` puts the extra row/column at the bottom/right, as torch does).
        dilation: an int or an (H, W) pair.
        groups: as ``nn.Conv2d`` (depthwise included).
        activation, negative_slope, out: as :func:`triton_convt.conv_transpose2d` (``out=``: any view of the
            output's shape, dtype and device, nothing outside it written, no autograd).

    Returns:
        ``(N, C_out, s_h*H + 2*p_h - d_h*(kH - 1), ...)`` (unbatched input gives 3-D), channels_last when the input
        or the weight is, as torch's composition gives it.
    """
    x, params = _batched_call(input, weight, bias, scale_factor, padding, dilation, groups)
    unbatched = x is not input
    kernel_activation = activations.check_activation(activation)
    if out is not None:
        shape = (weight.shape[0], *params.output_hw(tuple(x.shape[2:])))
        check_out(out, input, weight, bias, shape if unbatched else (x.shape[0], *shape), OP)
    (ph, pw) = params.padding
    args = (x, weight, bias, list(params.scale), [*ph, *pw], list(params.dilation), params.groups, kernel_activation,
            float(negative_slope))  # fmt: skip
    if out is not None:
        torch.ops.triton_convt.upsample_conv2d_out(*args, out.unsqueeze(0) if unbatched else out)
        return out
    y = torch.ops.triton_convt.upsample_conv2d(*args)
    return y.squeeze(0) if unbatched else y


def upsample_conv2d_prefolded(
    input: torch.Tensor,
    weight: torch.Tensor,
    folded: torch.Tensor,
    bias: torch.Tensor | None = None,
    scale_factor=2,
    padding=0,
    dilation=1,
    groups: int = 1,
    *,
    activation: str | None = None,
    negative_slope: float = activations.DEFAULT_NEGATIVE_SLOPE,
) -> torch.Tensor:
    """:func:`upsample_conv2d` with ``weight``'s folded weight ``folded`` made beforehand, in one launch: what a
    module frozen by :func:`triton_convt.freeze` calls (no ``out=``, and no autograd: RuntimeError when grad is
    enabled and an operand requires it).

    ``folded`` must be the fold of ``weight`` for these arguments (:func:`triton_convt.ops.upsample_conv.fold`):
    its shape, dtype and device are checked (RuntimeError), its values are not, which is the frozen module's
    contract (:mod:`triton_convt.freezing`). ``weight`` is validated as :func:`upsample_conv2d` validates it and
    decides the output's layout.
    """
    x, params = _batched_call(input, weight, bias, scale_factor, padding, dilation, groups)
    kernel_activation = activations.check_activation(activation)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (input, weight, folded, bias)):
        raise RuntimeError(f"{OP} with a folded weight has no autograd: call upsample_conv2d, which folds per call")
    fh, fw = params.folds()
    expected = (weight.shape[1] * params.groups, weight.shape[0] // params.groups, fh.folded, fw.folded)
    if not isinstance(folded, torch.Tensor) or tuple(folded.shape) != expected:
        got = list(folded.shape) if isinstance(folded, torch.Tensor) else type(folded).__name__
        raise RuntimeError(f"{OP}: the folded weight has shape {got}, but these arguments fold to {list(expected)}")
    if folded.dtype != weight.dtype or folded.device != weight.device:
        raise RuntimeError(
            f"{OP}: the folded weight is {folded.dtype} on {folded.device}, the weight {weight.dtype} on "
            f"{weight.device}"
        )
    (ph, pw) = params.padding
    y = torch.ops.triton_convt.upsample_conv2d_prefolded(
        x, weight, folded, bias, list(params.scale), [*ph, *pw], list(params.dilation), params.groups,
        kernel_activation, float(negative_slope),
    )  # fmt: skip
    return y if x is input else y.squeeze(0)


def fold_params(weight: torch.Tensor, scale_factor, padding, dilation, groups: int) -> UpsampleConvParams:
    """The normalised arguments a fold of ``weight`` (``[C_out, C_in/groups, kH, kW]``) depends on, without an input
    (what :func:`triton_convt.freeze` folds with); the same exception types as :func:`check_call` for the arguments
    it checks."""
    scale = scale_pair(scale_factor)
    dilation = as_tuple(dilation, "dilation", "conv2d", 2)
    groups = index(groups, "groups", "conv2d")
    kernel = (weight.shape[2], weight.shape[3])
    return UpsampleConvParams(scale=scale, padding=padding_pairs(padding, kernel, dilation), dilation=dilation,
                              groups=groups, kernel=kernel)  # fmt: skip


def _batched_call(input, weight, bias, scale_factor, padding, dilation, groups):
    """The checks of a call before its output: ``input`` as 4-D (an unbatched one unsqueezed, so a new object) and
    the normalised arguments (:func:`check_call`)."""
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"{OP}(): argument 'input' must be Tensor, not {type(input).__name__}")
    if input.dim() < 3:  # F.interpolate refuses it first, with NotImplementedError (a RuntimeError)
        raise NotImplementedError(
            f"Input Error: Only 3D, 4D and 5D input Tensors supported (got {input.dim()}D) for nearest upsampling"
        )
    if input.dim() != 3 and input.dim() != 4:
        raise RuntimeError(
            f"Expected 3D (unbatched) or 4D (batched) input to conv2d, but got input of size: {list(input.shape)}"
        )
    x = input.unsqueeze(0) if input.dim() == 3 else input
    return x, check_call(x, weight, bias, scale_factor, padding, dilation, groups)


def scale_pair(value) -> tuple[int, int]:
    """``scale_factor`` as an (H, W) pair of positive ints: an int, an integral float, or a pair of them.

    Like ``F.interpolate``: None is a ValueError (neither a size nor a scale), a sequence of another length is a
    ValueError, a string or tensor a TypeError, and a factor below 1 a RuntimeError (torch's "output sizes should be
    greater than 0"); a non-integral float is a ValueError here (torch would upsample by it, which no fold computes).
    """
    if value is None:
        raise ValueError("either size or scale_factor should be defined")
    items = list(value) if isinstance(value, (list, tuple)) else [value, value]
    if len(items) != 2:
        raise ValueError(
            f"Input and scale_factor must have the same number of spatial dimensions, but got input with spatial "
            f"dimensions of 2 and scale_factor of shape {tuple(items)}."
        )
    pair = []
    for item in items:
        if isinstance(item, float):
            if not item.is_integer():
                raise ValueError(
                    f"{OP}(): scale_factor must be integral (nearest upsampling by a whole factor), got {item}"
                )
            item = int(item)
        if isinstance(item, (str, torch.Tensor)):
            raise TypeError(f"{OP}(): argument 'scale_factor' must be int or tuple of ints, not {type(item).__name__}")
        try:
            item = operator.index(item)
        except TypeError:
            raise TypeError(
                f"{OP}(): argument 'scale_factor' must be int or tuple of ints, not {type(item).__name__}"
            ) from None
        pair.append(item)
    if min(pair) <= 0:
        raise RuntimeError(f"Input and output sizes should be greater than 0, but got scale_factor={tuple(pair)}")
    return pair[0], pair[1]


def padding_pairs(padding, kernel: tuple[int, int], dilation: tuple[int, int]) -> tuple[tuple[int, int], ...]:
    """Per axis ``(before, after)`` padding: ``"same"`` as torch pads it (:func:`upsample_shapes.same_padding`),
    ``"valid"`` none, an int or pair symmetric. torch's exception types for anything else."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding == "same":
            return tuple(upsample_shapes.same_padding(k, d) for k, d in zip(kernel, dilation))
        raise RuntimeError(f"Invalid padding string: '{padding}'")
    ph, pw = as_tuple(padding, "padding", "conv2d", 2)
    if min(ph, pw) < 0:
        raise RuntimeError("negative padding is not supported")
    return (ph, ph), (pw, pw)


def check_call(x, weight, bias, scale_factor, padding, dilation, groups) -> UpsampleConvParams:
    """Validate an ``upsample_conv2d`` call on 4-D input (unbatched input is unsqueezed first) in the order torch's
    composition checks it, and return its normalised arguments."""
    for name, t in (("weight", weight),):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{OP}(): argument '{name}' must be Tensor, not {type(t).__name__}")
    if bias is not None and not isinstance(bias, torch.Tensor):
        raise TypeError(f"{OP}(): argument 'bias' must be Tensor, not {type(bias).__name__}")
    scale = scale_pair(scale_factor)
    if x.shape[1] == 0 or min(x.shape[2:]) <= 0:
        raise RuntimeError(f"Non-empty 4D data tensor expected but got a tensor with sizes {list(x.shape)}")
    if weight.dim() != 4:
        raise RuntimeError(
            f"expected weight to be 4-D [out_channels, in_channels/groups, kH, kW], but got weight of size "
            f"{list(weight.shape)}"
        )
    dilation = as_tuple(dilation, "dilation", "conv2d", 2)
    groups = index(groups, "groups", "conv2d")
    kernel = (weight.shape[2], weight.shape[3])
    pads = padding_pairs(padding, kernel, dilation)
    if min(dilation) <= 0:
        raise RuntimeError(f"dilation should be greater than zero, but got {list(dilation)}")
    if groups <= 0:
        raise RuntimeError("non-positive groups is not supported")
    check_conv2d_shapes(x, weight, bias, groups)
    check_dtypes_devices(x, weight, bias, OP)
    params = UpsampleConvParams(scale=scale, padding=pads, dilation=dilation, groups=groups, kernel=kernel)
    out_hw = params.output_hw(tuple(x.shape[2:]))
    if min(out_hw) <= 0:
        padded = [s * i + lo + hi for s, i, (lo, hi) in zip(scale, x.shape[2:], pads)]
        span = [d * (k - 1) + 1 for d, k in zip(dilation, kernel)]
        raise RuntimeError(
            f"Calculated padded input size per channel: ({padded[0]} x {padded[1]}). Kernel size: ({span[0]} x "
            f"{span[1]}). Kernel size can't be greater than actual input size"
        )
    return params


def check_conv2d_shapes(x, weight, bias, groups: int) -> None:
    """The shape checks of ``F.conv2d`` on 4-D ``x`` and its weight and bias, with torch's messages (RuntimeError)."""
    c_out, c_in_g, kh, kw = weight.shape
    if min(kh, kw) <= 0:
        raise RuntimeError(f"kernel size should be greater than zero, but got kernel_height: {kh} kernel_width: {kw}")
    if c_out < groups or c_out % groups:
        raise RuntimeError(
            f"Given groups={groups}, expected weight to be divisible by {groups} at dimension 0, but got weight of "
            f"size {list(weight.shape)} instead"
        )
    if x.shape[1] != c_in_g * groups:
        raise RuntimeError(
            f"Given groups={groups}, weight of size {list(weight.shape)}, expected input{list(x.shape)} to have "
            f"{c_in_g * groups} channels, but got {x.shape[1]} channels instead"
        )
    if bias is not None and (bias.dim() != 1 or bias.shape[0] != c_out):
        raise RuntimeError(
            f"Given weight of size {list(weight.shape)}, expected bias to be 1-dimensional with {c_out} elements, "
            f"but got bias of size {list(bias.shape)} instead"
        )
