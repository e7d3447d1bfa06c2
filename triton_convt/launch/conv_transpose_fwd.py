"""Launch planning of the transposed convolution's forward: output allocation, kernel choice, config, grid,
kernel arguments, one launch.

:func:`plan` picks the kernel (:func:`forward_plan`, the implicit-GEMM gather, or :func:`depthwise_plan` for one
input channel per group) and turns a validated call into a :class:`~.kernel_plan.KernelPlan` (the kernel, its grid,
its arguments by name, warps and stages). :func:`conv_transpose_forward` launches it;
:mod:`triton_convt.tools.aot` compiles the same plan for a GPU target without a GPU, so the arguments a test
compiles are the ones a launch passes.
"""

from __future__ import annotations

from typing import Any

import torch
import triton
from torch._prims_common import suggest_memory_format

from ..activations import DEFAULT_NEGATIVE_SLOPE
from ..kernels.conv_transpose_fwd_depthwise import conv_transpose_fwd_depthwise_kernel
from . import configs, phase_table, shapes
from .kernel_plan import KernelPlan, numeric_constexprs, spatial_3d, strides
from .phase_gemm import gemm_plan, gemm_weight
from .shapes import ConvParams


def axis_constexprs(params: ConvParams) -> dict[str, int]:
    """Kernel size, stride, dilation and tap schedule (:func:`.shapes.tap_schedule`) of each spatial axis of
    ``params``, named by axis: ``KD, KH, KW, SD, ..., GCD_W, STEP_W, INV_W, TAPS_W`` for three axes (the kernels
    written for D, H, W take a 1-D or 2-D call's :meth:`~.shapes.ConvParams.as_3d`)."""
    out: dict[str, int] = {}
    axes = "DHW"[3 - params.ndim :]
    for name, k, s, d in zip(axes, params.kernel, params.stride, params.dilation):
        out.update({f"K{name}": k, f"S{name}": s, f"D{name}": d})
    for name, k, s, d in zip(axes, params.kernel, params.stride, params.dilation):
        sched = shapes.tap_schedule(k, s, d)
        out.update({f"GCD_{name}": sched.gcd, f"STEP_{name}": sched.step, f"INV_{name}": sched.inverse,
                    f"TAPS_{name}": sched.max_taps})  # fmt: skip
    return out


def bias_stride(bias: torch.Tensor | None) -> int:
    """The bias's element stride, which the epilogue reads it through: a view (``b[::2]``, or one value expanded
    to every channel, stride 0) is read in place, not copied. Without a bias it is unused, and 1: the value of a
    contiguous bias, which the JIT specialises into a constant, so the usual cases compile as before."""
    return 1 if bias is None else bias.stride(0)


def _index_operands(x, weight, bias, y) -> tuple[torch.Tensor, ...]:
    """The tensors whose element offsets the forward kernels compute (the first sets dtype and device): a bias
    view's offsets grow with its stride, so it decides the index width too."""
    return (x, weight, y) if bias is None else (x, weight, y, bias)


def allocate_output(x: torch.Tensor, weight: torch.Tensor, params: ConvParams,
                    layout_from_weight: bool = True) -> torch.Tensor:  # fmt: skip
    """The output ``(N, C_out, *spatial)`` of 1 to 3 spatial axes, in the memory format torch gives: channels_last
    (channels_last_3d) when the input or the weight is. torch computes 1-D as 2-D with a unit height inserted at
    dimension 2 and takes that one's format, so 1-D is decided, and allocated, the same way.

    Without ``layout_from_weight`` the input alone decides: the format torch's module gives with its default
    (contiguous) weight, which the modules ask for because they keep their weight channels_last for the kernel
    (:mod:`triton_convt.owned_layout`) and that choice must not show in their outputs."""
    one_d = x.dim() == 3
    views = (x.unsqueeze(2), weight.unsqueeze(2)) if one_d else (x, weight)
    last = torch.channels_last if views[0].dim() == 4 else torch.channels_last_3d
    deciding = views if layout_from_weight else views[:1]
    fmt = last if last in [suggest_memory_format(v) for v in deciding] else torch.contiguous_format
    sizes = params.output_hw(tuple(x.shape[2:]))
    y = torch.empty((x.shape[0], weight.shape[1] * params.groups, *((1,) if one_d else ()), *sizes), dtype=x.dtype,
                    device=x.device, memory_format=fmt)  # fmt: skip
    return y.squeeze(2) if one_d else y


def forward_plan(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    y: torch.Tensor,
    params: ConvParams,
    *,
    activation: str = "none",
    negative_slope: float = DEFAULT_NEGATIVE_SLOPE,
    config: dict | None = None,
    index64: bool | None = None,
) -> KernelPlan:
    """The launch of the phase GEMM (:mod:`triton_convt.kernels.phase_gemm`) that computes ``y`` (already
    allocated, any strides) from ``x`` and ``weight`` as given (1 to 3 spatial axes), with ``activation`` (a name
    checked by :func:`triton_convt.activations.check_activation`) fused after the bias. ``weight`` is read in
    place: a caller brings it into a fast layout first (:func:`.phase_gemm.gemm_weight`).

    ``config`` overrides the choice from ``autotune_configs/`` and ``index64`` forces the int64 index path; both
    exist for tests and the static profile.
    """
    x5, w5, y5 = spatial_3d(x), spatial_3d(weight), spatial_3d(y)
    launch = params.as_3d().for_launch(tuple(x5.shape[2:]))
    table = phase_table.forward_table(tuple(x5.shape[2:]), tuple(y5.shape[2:]), launch)
    return gemm_plan(
        "conv_transpose2d_fwd", x5, w5, bias, y5, table, groups=params.groups, reduce_over_output_channels=False,
        split_layouts=True, activation=activation, negative_slope=negative_slope, config=config, index64=index64,
        rebuild=lambda c: forward_plan(x, weight, bias, y, params, activation=activation,
                                       negative_slope=negative_slope, config=c, index64=index64),
    )  # fmt: skip


def depthwise_plan(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    y: torch.Tensor,
    params: ConvParams,
    *,
    activation: str = "none",
    negative_slope: float = DEFAULT_NEGATIVE_SLOPE,
    config: dict | None = None,
    index64: bool | None = None,
) -> KernelPlan:
    """The launch of the one-input-channel-per-group kernel (no ``tl.dot``) that computes ``y``, for 1 to 3
    spatial axes (run through :func:`.kernel_plan.spatial_3d` views); arguments as :func:`forward_plan`. Its blocks
    are (pixel, channel) elements of a phase, so the one extent a config is fitted to is the element count of the
    largest phase."""
    spatial = params.ndim
    x5, w5, y5 = spatial_3d(x), spatial_3d(weight), spatial_3d(y)
    n, _, *in_sizes = x5.shape
    _, c_out, *out_sizes = y5.shape
    mult = weight.shape[1]
    p3 = params.as_3d().for_launch(in_sizes)
    # Order the elements as the output is laid out, so that a block's stores are contiguous; in NCHW a program
    # takes every W residue of its rows (whole output rows), so the grid has the (D, H) phases only.
    channels_fastest = y.stride(1) == 1 and c_out > 1
    phases_w = p3.stride[2] if channels_fastest else 1
    elements = c_out * n
    for size, stride in zip(out_sizes, p3.stride[:2] + (phases_w,)):
        elements *= shapes.phase_count(size, stride, 0)  # phase 0 is the largest
    if config is None:
        config = configs.config_for(
            "conv_transpose2d_fwd_depthwise", x.dtype, x.device, {"BLOCK": elements},
            lambda c: depthwise_plan(x, weight, bias, y, params, activation=activation,
                                     negative_slope=negative_slope, config=c, index64=index64),
        )  # fmt: skip
    tiles = triton.cdiv(elements, config["BLOCK"])
    numeric = numeric_constexprs(_index_operands(x, weight, bias, y), index64)
    (d, h, w), (od, oh, ow), (pd, ph, pw) = in_sizes, out_sizes, p3.padding
    args = dict(
        x_ptr=x5, w_ptr=w5, bias_ptr=bias, y_ptr=y5,
        N=n, D=d, H=h, W=w, OD=od, OH=oh, OW=ow, C_OUT=c_out, MULT=mult, PAD_D=pd, PAD_H=ph, PAD_W=pw,
        **strides("x", x5), **strides("w", w5, weight=True), **strides("y", y5), stride_b=bias_stride(bias),
        TILES=tiles,
        **axis_constexprs(p3), SPATIAL=spatial,
        HAS_BIAS=bias is not None, ACTIVATION=activation,
        NEGATIVE_SLOPE=float(negative_slope) if activation == "leaky_relu" else 0.0,
        ACC_DTYPE=numeric["ACC_DTYPE"], INDEX_DTYPE=numeric["INDEX_DTYPE"],
        CHANNELS_FASTEST=channels_fastest, ALL_W=not channels_fastest,
        BLOCK=config["BLOCK"],
    )  # fmt: skip
    grid = (p3.stride[0] * p3.stride[1] * phases_w * tiles,)
    return KernelPlan(conv_transpose_fwd_depthwise_kernel, grid, args, config["num_warps"], config["num_stages"])


def plan(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    y: torch.Tensor,
    params: ConvParams,
    **options: Any,
) -> KernelPlan:
    """The forward launch that computes ``y``: :func:`depthwise_plan` for one input channel per group (FCN's
    upsampling: a reduction of one channel per tap, which tl.dot tiles of 16 would pad 16x), else
    :func:`forward_plan`. ``options`` are theirs."""
    chosen = depthwise_plan if weight.shape[0] == params.groups else forward_plan
    return chosen(x, weight, bias, y, params, **options)


def conv_transpose_forward(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    params: ConvParams,
    activation: str = "none",
    negative_slope: float = DEFAULT_NEGATIVE_SLOPE,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Compute the output (into ``out`` if given, already validated) of a call with 1 to 3 spatial axes: one
    launch when the weight is read in place (channels_last), two when it must be brought into that layout first
    (:func:`.phase_gemm.gemm_weight`), none when the output is empty."""
    y = allocate_output(x, weight, params) if out is None else out
    if y.numel():
        if weight.shape[0] != params.groups:
            weight = gemm_weight(spatial_3d(weight))
        plan(x, weight, bias, y, params, activation=activation, negative_slope=negative_slope).launch()
    return y
