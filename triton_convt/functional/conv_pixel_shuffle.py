"""The public functional API of conv2d + pixel_shuffle (the sub-pixel convolution): argument normalisation and
validation, then the op.

:func:`conv2d_pixel_shuffle` computes ``act(F.pixel_shuffle(F.conv2d(input, weight, bias, stride, padding, dilation,
groups), upscale_factor))`` in one launch that writes each conv channel straight to its shuffled pixels
(:mod:`triton_convt.launch.pixel_shuffle_shapes`), so the ``r*r``-times-wider conv output is never made. Every call
the composition rejects is rejected with the exception type it raises, ``F.conv2d``'s checks first, then
``F.pixel_shuffle``'s, before anything runs (:func:`check_call`).
"""

from __future__ import annotations

import operator

import torch

from .. import activations
from ..launch.pixel_shuffle_shapes import ConvShuffleParams
from ..ops import conv_pixel_shuffle as _ops  # noqa: F401  (registers torch.ops.triton_convt.conv2d_pixel_shuffle*)
from .arguments import as_tuple, check_dtypes_devices, check_out, index
from .upsample_conv import check_conv2d_shapes, padding_pairs

#: The op's name in messages about its own arguments; torch's own messages name conv2d or pixel_shuffle.
OP = "conv2d_pixel_shuffle"


def conv2d_pixel_shuffle(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    upscale_factor: int = 2,
    stride=1,
    padding=0,
    dilation=1,
    groups: int = 1,
    *,
    activation: str | None = None,
    negative_slope: float = activations.DEFAULT_NEGATIVE_SLOPE,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """A convolution followed by a pixel shuffle (ESPCN's, EDSR's, SwinIR's upsampler), in one launch.

    Equal to ``act(F.pixel_shuffle(F.conv2d(input, weight, bias, stride, padding, dilation, groups),
    upscale_factor))``: conv output channel ``c*r*r + i*r + j`` at ``(h, w)`` is written straight to pixel
    ``(h*r + i, w*r + j)`` of output channel ``c``, with the bias and the activation applied on the way, so the
    ``r*r``-wide conv output is never allocated or read back.

    Args:
        input: ``(N, C_in, H, W)`` or unbatched ``(C_in, H, W)``; float16, bfloat16, float32 or float64; any strides.
        weight: ``(C*r*r, C_in / groups, kH, kW)``, ``nn.Conv2d``'s layout; same dtype and device as ``input``. With
            input channels innermost (``nn.Conv2d``'s channels_last, what ``model.to(memory_format=
            torch.channels_last)`` makes) or output channels innermost it is read in place and the call is one
            launch; any other layout is copied into the first on every call (a second launch; nothing is cached).
        bias: optional ``(C*r*r,)``, the conv's.
        upscale_factor: the pixel shuffle's ``r``, a positive int.
        stride: an int or an (H, W) pair (the conv's, before the shuffle; computed exactly, not left to torch).
        padding: an int, an (H, W) pair, ``"valid"`` (0) or ``"same"`` (stride 1 only; an odd total ``d*(k - 1)``
            puts the extra row/column at the bottom/right, as torch does). Zero padding.
        dilation: an int or an (H, W) pair.
        groups: as ``nn.Conv2d``; a group's ``C*r*r / groups`` channels need not be a multiple of ``r*r``.
        activation, negative_slope, out: as :func:`triton_convt.conv_transpose2d` (``out=``: any view of the
            output's shape, dtype and device, nothing outside it written, no autograd).

    Returns:
        ``(N, C, r*H_conv, r*W_conv)`` (unbatched input gives 3-D), ``H_conv`` the conv's output height, in
        channels_last when the input or the weight is, as torch's composition gives it.
    """
    return call(input, weight, bias, upscale_factor, stride, padding, dilation, groups, activation, negative_slope,
                out, layout_from_weight=True)  # fmt: skip


def call(input, weight, bias, upscale_factor, stride, padding, dilation, groups, activation, negative_slope, out, *,
         layout_from_weight: bool) -> torch.Tensor:  # fmt: skip
    """:func:`conv2d_pixel_shuffle`, with ``layout_from_weight`` False for a module that keeps its weight in the
    kernel's layout (:class:`triton_convt.PixelShuffleConv2d`): the output's memory format then follows the input
    alone, as torch's does with the default-layout weight the user sees."""
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"{OP}(): argument 'input' must be Tensor, not {type(input).__name__}")
    if input.dim() not in (3, 4):
        raise RuntimeError(
            f"Expected 3D (unbatched) or 4D (batched) input to conv2d, but got input of size: {list(input.shape)}"
        )
    unbatched = input.dim() == 3
    x = input.unsqueeze(0) if unbatched else input
    params = check_call(x, weight, bias, upscale_factor, stride, padding, dilation, groups)
    kernel_activation = activations.check_activation(activation)
    if out is not None:
        shape = (params.output_channels(x.shape[1], weight.shape[0]), *params.output_hw(tuple(x.shape[2:])))
        check_out(out, input, weight, bias, shape if unbatched else (x.shape[0], *shape), OP)
    (ph, pw) = params.padding
    args = (x, weight, bias, params.upscale, list(params.stride), [*ph, *pw], list(params.dilation), params.groups,
            kernel_activation, float(negative_slope))  # fmt: skip
    if out is not None:
        torch.ops.triton_convt.conv2d_pixel_shuffle_out(*args, out.unsqueeze(0) if unbatched else out)
        return out
    y = torch.ops.triton_convt.conv2d_pixel_shuffle(*args, layout_from_weight)
    return y.squeeze(0) if unbatched else y


def pixel_shuffle_factor(value) -> int:
    """``upscale_factor`` as ``F.pixel_shuffle`` takes it: an int or int-like (a 0-dim integer tensor too), not a
    bool, float or other tensor (TypeError); positive (RuntimeError)."""
    if (
        isinstance(value, torch.Tensor)
        and value.dim() == 0
        and not value.is_floating_point()
        and not value.is_complex()
        and value.dtype != torch.bool
    ):
        value = int(value)
    if isinstance(value, (bool, float, str, torch.Tensor)):
        raise TypeError(
            f"pixel_shuffle(): argument 'upscale_factor' (position 2) must be int, not {type(value).__name__}"
        )
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(
            f"pixel_shuffle(): argument 'upscale_factor' (position 2) must be int, not {type(value).__name__}"
        ) from None
    if value <= 0:
        raise RuntimeError(f"pixel_shuffle expects a positive upscale_factor, but got {value}")
    return value


def check_call(x, weight, bias, upscale_factor, stride, padding, dilation, groups) -> ConvShuffleParams:
    """Validate a ``conv2d_pixel_shuffle`` call on 4-D input (unbatched input is unsqueezed first): ``F.conv2d``'s
    checks, then ``F.pixel_shuffle``'s, each with torch's exception type; return the normalised arguments."""
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"{OP}(): argument 'weight' must be Tensor, not {type(weight).__name__}")
    if bias is not None and not isinstance(bias, torch.Tensor):
        raise TypeError(f"{OP}(): argument 'bias' must be Tensor, not {type(bias).__name__}")
    if weight.dim() != 4:
        raise RuntimeError(
            f"expected weight to be 4-D [out_channels, in_channels/groups, kH, kW], but got weight of size "
            f"{list(weight.shape)}"
        )
    stride = as_tuple(stride, "stride", "conv2d", 2)
    dilation = as_tuple(dilation, "dilation", "conv2d", 2)
    groups = index(groups, "groups", "conv2d")
    kernel = (weight.shape[2], weight.shape[3])
    pads = padding_pairs(padding, kernel, dilation)
    if isinstance(padding, str) and padding == "same" and stride != (1, 1):
        raise RuntimeError("padding='same' is not supported for strided convolutions")
    if min(stride) <= 0:
        raise RuntimeError("non-positive stride is not supported")
    if min(dilation) <= 0:
        raise RuntimeError(f"dilation should be greater than zero, but got {list(dilation)}")
    if groups <= 0:
        raise RuntimeError("non-positive groups is not supported")
    check_conv2d_shapes(x, weight, bias, groups)
    if min(x.shape[2:]) <= 0:
        raise RuntimeError(
            f"Only zero batch or zero channel inputs are supported, but got input shape: {list(x.shape)}"
        )
    check_dtypes_devices(x, weight, bias, OP)
    params = ConvShuffleParams(upscale=1, stride=stride, padding=pads, dilation=dilation, groups=groups, kernel=kernel)
    if min(params.conv_hw(tuple(x.shape[2:]))) <= 0:
        padded = [i + lo + hi for i, (lo, hi) in zip(x.shape[2:], pads)]
        span = [d * (k - 1) + 1 for d, k in zip(dilation, kernel)]
        raise RuntimeError(
            f"Calculated padded input size per channel: ({padded[0]} x {padded[1]}). Kernel size: ({span[0]} x "
            f"{span[1]}). Kernel size can't be greater than actual input size"
        )
    # F.pixel_shuffle's checks, on the conv's output.
    r = pixel_shuffle_factor(upscale_factor)
    if weight.shape[0] % (r * r):
        raise RuntimeError(
            f"pixel_shuffle expects its input's 'channel' dimension to be divisible by the square of upscale_factor, "
            f"but input.size(-3)={weight.shape[0]} is not divisible by {r * r}"
        )
    return ConvShuffleParams(upscale=r, stride=stride, padding=pads, dilation=dilation, groups=groups, kernel=kernel)
