"""Checking results against torch, shared by the demo, the report and the tuner: the reference (torch in fp64 on
the same rounded inputs), the error measure, and its tolerance per dtype and device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..activations import DEFAULT_NEGATIVE_SLOPE, apply_torch

#: Largest error allowed, relative to the largest magnitude of the reference (at least 1).
TOLERANCE = {torch.float32: 2e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2, torch.float64: 1e-12}

#: fp32 on a GPU with TF32 on (torch's default for convolutions) rounds the operands to a 10-bit mantissa, as fp16
#: does; the fp32 tolerance is then fp16's.
TF32_TOLERANCE = TOLERANCE[torch.float16]


def tolerance(dtype: torch.dtype, device: torch.device | str) -> float:
    """The tolerance of :func:`relative_error` for a result of ``dtype`` computed on ``device``."""
    tf32 = dtype == torch.float32 and torch.device(device).type == "cuda" and torch.backends.cudnn.allow_tf32
    return TF32_TOLERANCE if tf32 else TOLERANCE[dtype]


#: torch's transposed convolution per number of spatial axes.
TORCH_CONV_TRANSPOSE = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def torch_conv_transpose(x: torch.Tensor):
    """torch's ``F.conv_transpose{1,2,3}d`` for a batched input ``x`` (its spatial axes decide)."""
    return TORCH_CONV_TRANSPOSE[x.dim() - 2]


def reference(
    x, weight, bias, conv_args: tuple, activation: str | None, negative_slope: float = DEFAULT_NEGATIVE_SLOPE
):
    """torch's result in fp64 of the conv (``conv_args`` = stride, padding, output_padding, groups, dilation; 1 to 3
    spatial axes), then the activation, on the operands as given (already rounded to their dtype)."""
    conv = torch_conv_transpose(x)
    y = conv(x.double(), weight.double(), None if bias is None else bias.double(), *conv_args)
    return apply_torch(y, activation, negative_slope)


def relative_error(y: torch.Tensor, ref: torch.Tensor) -> float:
    """``max|y - ref| / max(max|ref|, 1)``; infinite when the shapes differ or ``y`` has a NaN that ``ref`` lacks."""
    if y.shape != ref.shape:
        return float("inf")
    diff = (y.double() - ref).abs()
    diff = torch.where(torch.isnan(y.double()) & ~torch.isnan(ref), torch.inf, diff.nan_to_num(0.0))
    if not diff.numel():
        return 0.0
    return (diff.max() / ref.abs().max().clamp(min=1)).item()
