"""Launch planning of conv2d + pixel_shuffle's forward: output allocation, then one launch of the phase GEMM that
computes the conv and writes each conv channel straight to its shuffled pixels, with the bias and the activation
(:mod:`.pixel_shuffle_shapes`).

The conv is the phase GEMM's input-gradient form (one phase, input step = the conv's stride, every tap, reduction
over the weight's dimension 1): ``nn.Conv2d``'s weight ``[C*r*r, C_in/g, kH, kW]`` read as a transposed
convolution's ``[C_in, C_out/g, ...]`` lines up the groups. The kernel reads in place a weight with output channels
innermost (memory order ``[C_in/g, kH, kW, C*r*r]``: what :class:`triton_convt.PixelShuffleConv2d` owns; its
``[BLOCK_K, BLOCK_N]`` tiles are then dense along N, as the transposed convolution's forward reads its
channels_last weight) or with input channels innermost (``nn.Conv2d``'s channels_last, tiles dense along K); any
other weight is copied into the first order (:func:`kernel_weight`, one more launch, never cached). No
``r*r``-wide tensor is allocated.
"""

from __future__ import annotations

import torch
from torch._prims_common import suggest_memory_format

from ..activations import DEFAULT_NEGATIVE_SLOPE
from . import phase_table
from .kernel_plan import KernelPlan, spatial_3d
from .phase_gemm import gemm_plan, reads_in_place, repack_plan
from .pixel_shuffle_shapes import ConvShuffleParams
from .shapes import ConvParams
from .weights import has_kernel_layout
from .weights import to_kernel_layout as _to_kernel_layout

#: The config key of the launch (``_nchw`` for inputs without channels innermost, as the forward's). Its candidates
#: are the transposed convolution's forward tiles less those whose hot loop compiles more than 15% over the matmul
#: tutorial's for this op (its loop's tap arithmetic compiles differently: sm_90's 128x64 tiles), held to the
#: same hot-loop gate (``triton-convt-profile``).
CONFIG_KEY = "conv2d_pixel_shuffle"


def allocate_output(x: torch.Tensor, weight: torch.Tensor, params: ConvShuffleParams, *,
                    layout_from_weight: bool = True) -> torch.Tensor:  # fmt: skip
    """The output ``(N, C_out/r^2, r*H_conv, r*W_conv)`` in the memory format torch's ``pixel_shuffle(conv2d(...))``
    gives: channels_last when the conv's output is, i.e. when the input or the weight is (``pixel_shuffle`` keeps
    its input's suggested format). ``layout_from_weight`` False leaves the weight out of that rule: a module that
    owns its weight in the kernel's layout (channels_last) gives the output torch gives with a default-layout
    weight."""
    weights = (weight,) if layout_from_weight else ()
    channels_last = torch.channels_last in {suggest_memory_format(t) for t in (x, *weights)}
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    channels = params.output_channels(x.shape[1], weight.shape[0])
    return torch.empty((x.shape[0], channels, *params.output_hw(tuple(x.shape[2:]))), dtype=x.dtype,
                       device=x.device, memory_format=fmt)  # fmt: skip


def conv_params(params: ConvShuffleParams) -> ConvParams:
    """The conv's stride, leading padding, dilation, groups and kernel as the phase table takes them."""
    return ConvParams(stride=params.stride, padding=tuple(lo for lo, _ in params.padding), output_padding=(0, 0),
                      dilation=params.dilation, groups=params.groups, kernel=params.kernel)  # fmt: skip


def forward_plan(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    y: torch.Tensor,
    params: ConvShuffleParams,
    *,
    activation: str = "none",
    negative_slope: float = DEFAULT_NEGATIVE_SLOPE,
    config: dict | None = None,
    index64: bool | None = None,
) -> KernelPlan:
    """The launch of the phase GEMM (:mod:`triton_convt.kernels.phase_gemm`, ``SHUFFLE = r``) that writes ``y``
    (already allocated, any strides) from ``x`` (4-D, any strides) and ``weight`` as given (read in place: a
    caller brings it into a fast layout first, :func:`.phase_gemm.gemm_weight`). ``config`` and ``index64`` as
    :func:`.conv_transpose_fwd.forward_plan` (tests and the static profile)."""
    x5, w5, y5 = spatial_3d(x), spatial_3d(weight), spatial_3d(y)
    conv_size = (1, *params.conv_hw(tuple(x.shape[2:])))
    table = phase_table.conv_shuffle_table(conv_size, conv_params(params).as_3d(), params.upscale)
    return gemm_plan(
        CONFIG_KEY, x5, w5, bias, y5, table, groups=params.groups, reduce_over_output_channels=True,
        split_layouts=True, activation=activation, negative_slope=negative_slope, shuffle=params.upscale,
        # torch's conv multiplies its zero padding by the weight (an inf weight gives NaN there): so does this.
        mask_out_of_range=False, config=config, index64=index64,
        rebuild=lambda c: forward_plan(x, weight, bias, y, params, activation=activation,
                                       negative_slope=negative_slope, config=c, index64=index64),
    )  # fmt: skip


#: The weight dimension the kernel's layout of a conv2d + pixel_shuffle weight ``[C_out, C_in/g, kH, kW]`` keeps
#: innermost: the output channels (memory order ``[C_in/g, kH, kW, C_out]``), the GEMM's columns, so that its weight
#: tiles are dense along them as the transposed convolution's are (:mod:`.weights`).
INNERMOST = 0


def is_kernel_layout(weight: torch.Tensor) -> bool:
    """Whether ``weight`` (``[C_out, C_in/g, kH, kW]``) is in the kernel's own layout, output channels innermost."""
    return has_kernel_layout(weight, INNERMOST)


def to_kernel_layout(weight: torch.Tensor) -> torch.Tensor:
    """``weight`` in the kernel's layout (:func:`is_kernel_layout`), a torch copy when it is not (for a module's own
    weight, once, not per call)."""
    return _to_kernel_layout(weight, INNERMOST)


def kernel_weight(weight: torch.Tensor) -> torch.Tensor:
    """``weight`` as the kernel reads it: itself when the GEMM reads it in place (output or input channels
    innermost; empty), else a copy in the kernel's layout (output channels innermost) made by one launch of the
    weight copy (:func:`.phase_gemm.repack_plan` of the transposed view, whose dimension 1 is then the conv's
    output channels)."""
    w5 = spatial_3d(weight)
    if weight.numel() == 0 or reads_in_place(w5):
        return weight
    plan, packed = repack_plan(w5.transpose(0, 1))
    plan.launch()
    return packed.transpose(0, 1).squeeze(2)


def conv2d_pixel_shuffle_forward(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    params: ConvShuffleParams,
    activation: str = "none",
    negative_slope: float = DEFAULT_NEGATIVE_SLOPE,
    out: torch.Tensor | None = None,
    *,
    layout_from_weight: bool = True,
) -> torch.Tensor:
    """``act(pixel_shuffle(conv2d(x, weight, bias), r))`` on 4-D ``x`` (into ``out`` if given, already validated):
    one launch when the weight is read in place, two when it must be copied into that layout first, none when the
    output is empty."""
    y = allocate_output(x, weight, params, layout_from_weight=layout_from_weight) if out is None else out
    if y.numel():
        forward_plan(x, kernel_weight(weight), bias, y, params, activation=activation,
                     negative_slope=negative_slope).launch()  # fmt: skip
    return y
