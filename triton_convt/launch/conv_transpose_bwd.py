"""Launch planning of the transposed convolution's backward: the activation's derivative, then the input, weight
and bias gradients.

Configs come from ``autotune_configs/`` as the forward kernel's do (:func:`.configs.config_for`: tuned
once per problem bucket on a GPU, the deterministic choice otherwise). Every gradient element is written by exactly
one program; the weight and bias gradients are reduced over the
pixels in fixed splits whose partial sums are added in a fixed order, so repeated backward calls are bitwise
identical (cuDNN's ConvTranspose2d backward is on torch's list of nondeterministic operations; this one is not).
"""

from __future__ import annotations

import torch
import triton

from ..kernels.activation_bwd import activation_bwd_kernel
from ..kernels.conv_transpose_bwd_weight import channel_sum_kernel, conv_transpose_bwd_weight_kernel
from . import configs, phase_table
from .kernel_plan import KernelPlan, numeric_constexprs, spatial_3d, strides
from .phase_gemm import gemm_plan, gemm_weight
from .shapes import ConvParams

#: Programs a split reduction aims for: enough to fill a large GPU several times over. Splitting further only adds
#: partial sums to write and add up.
SPLIT_TARGET_PROGRAMS = 1024


def needs_preactivation(activation: str, negative_slope: float) -> bool:
    """Whether the activation's derivative needs the pre-activation ``z`` (recomputed) rather than the output."""
    if activation == "leaky_relu":
        return negative_slope <= 0  # then y > 0 no longer tells z > 0
    return activation in ("gelu", "gelu_tanh", "silu")


def _dense_like(t: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """``t`` (same shape as the dense ``ref``, any rank) with ``ref``'s strides, copied only if needed."""
    if t.stride() == ref.stride():
        return t
    return torch.empty_like(ref).copy_(t)  # empty_like keeps a dense tensor's strides


def activation_grad_plan(
    dy: torch.Tensor,
    saved: torch.Tensor,
    dz: torch.Tensor,
    activation: str,
    negative_slope: float,
    *,
    config: dict | None = None,
) -> KernelPlan:
    """The launch that writes ``dz = dy * act'(.)``; all three dense with one element order."""
    if config is None:
        config = configs.config_for(
            "activation_bwd", saved.dtype, saved.device, {"BLOCK": saved.numel()},
            lambda c: activation_grad_plan(dy, saved, dz, activation, negative_slope, config=c),
        )  # fmt: skip
    args = dict(
        dy_ptr=dy, v_ptr=saved, dz_ptr=dz, NUMEL=saved.numel(), ACTIVATION=activation,
        NEGATIVE_SLOPE=float(negative_slope) if activation == "leaky_relu" else 0.0,
        COMPUTE_DTYPE=numeric_constexprs((saved,))["ACC_DTYPE"], BLOCK=config["BLOCK"],
    )  # fmt: skip
    grid = (triton.cdiv(saved.numel(), config["BLOCK"]),)
    return KernelPlan(activation_bwd_kernel, grid, args, config["num_warps"], config["num_stages"])


def activation_grad(dy: torch.Tensor, saved: torch.Tensor, activation: str, negative_slope: float) -> torch.Tensor:
    """``dz = dy * act'(.)`` from the saved output or the recomputed pre-activation ``saved`` (dense)."""
    dy = _dense_like(dy, saved)
    dz = torch.empty_like(saved)
    activation_grad_plan(dy, saved, dz, activation, negative_slope).launch()
    return dz


def input_grad_plan(
    dz: torch.Tensor,
    weight: torch.Tensor,
    dx: torch.Tensor,
    params: ConvParams,
    *,
    config: dict | None = None,
    index64: bool | None = None,
) -> KernelPlan:
    """The launch that writes ``dx`` (the forward input's shape, any strides) from ``dz``: the phase GEMM
    (:mod:`triton_convt.kernels.phase_gemm`) with one phase, gathering ``dz`` at ``i*stride - padding + k*dilation``
    for every tap, reducing over the output channels. ``weight`` is read in place (bring it into a fast layout
    with :func:`.phase_gemm.gemm_weight` first)."""
    dz5, w5, dx5 = spatial_3d(dz), spatial_3d(weight), spatial_3d(dx)
    table = phase_table.input_grad_table(tuple(dx5.shape[2:]), params.as_3d())
    return gemm_plan(
        "conv_transpose2d_bwd_input", dz5, w5, None, dx5, table, groups=params.groups,
        reduce_over_output_channels=True, split_layouts=True, config=config, index64=index64,
        rebuild=lambda c: input_grad_plan(dz, weight, dx, params, config=c, index64=index64),
    )  # fmt: skip


def _splits(pixels: int, tiles: int, block: int) -> int:
    """How many splits of the pixel reduction: enough programs in all, never a split of less than one block."""
    return max(1, min(triton.cdiv(SPLIT_TARGET_PROGRAMS, tiles), triton.cdiv(pixels, block)))


def weight_grad_plan(
    x: torch.Tensor,
    dz: torch.Tensor,
    weight: torch.Tensor,
    params: ConvParams,
    *,
    splits: int | None = None,
    config: dict | None = None,
    index64: bool | None = None,
) -> tuple[KernelPlan, torch.Tensor]:
    """The launch that writes the weight gradient's partial sums, and the ``[splits, *weight.shape]`` buffer; 1 to
    3 spatial axes (run through :func:`.kernel_plan.spatial_3d` views)."""
    x5, dz5 = spatial_3d(x), spatial_3d(dz)
    n, _, *in_sizes = x5.shape
    out_sizes = dz5.shape[2:]
    c_in, c_out_g, *kernel = spatial_3d(weight).shape
    c_in_g = c_in // params.groups
    pixels = n * in_sizes[0] * in_sizes[1] * in_sizes[2]
    if config is None:
        sizes = {"BLOCK_M": c_in_g, "BLOCK_N": c_out_g, "BLOCK_K": pixels}
        config = configs.config_for(
            "conv_transpose2d_bwd_weight", x.dtype, x.device, sizes,
            lambda c: weight_grad_plan(x, dz, weight, params, splits=splits, config=c, index64=index64)[0],
        )  # fmt: skip
    m_tiles = triton.cdiv(c_in_g, config["BLOCK_M"])
    n_tiles = triton.cdiv(c_out_g, config["BLOCK_N"])
    taps = kernel[0] * kernel[1] * kernel[2] * params.groups
    if splits is None:
        splits = _splits(pixels, m_tiles * n_tiles * taps, config["BLOCK_K"])
    constexprs = numeric_constexprs((x, dz, weight), index64)
    partial = torch.empty((splits, *weight.shape), dtype=_accumulator(x.dtype), device=x.device)
    p3 = params.as_3d()
    (d, h, w), (od, oh, ow), (pd, ph, pw) = in_sizes, out_sizes, p3.padding
    args = dict(
        x_ptr=x5, dz_ptr=dz5, partial_ptr=partial,
        N=n, D=d, H=h, W=w, OD=od, OH=oh, OW=ow, C_IN=c_in, C_IN_G=c_in_g, C_OUT_G=c_out_g,
        PAD_D=pd, PAD_H=ph, PAD_W=pw, **strides("x", x5), **strides("dz", dz5),
        GROUPS=params.groups, M_TILES=m_tiles, N_TILES=n_tiles, PIXELS_PER_SPLIT=triton.cdiv(pixels, splits),
        KD=kernel[0], KH=kernel[1], KW=kernel[2], SD=p3.stride[0], SH=p3.stride[1], SW=p3.stride[2],
        DD=p3.dilation[0], DH=p3.dilation[1], DW=p3.dilation[2], SPATIAL=params.ndim, **constexprs,
        BLOCK_M=config["BLOCK_M"], BLOCK_N=config["BLOCK_N"], BLOCK_K=config["BLOCK_K"],
    )  # fmt: skip
    grid = (m_tiles * n_tiles, taps, splits)
    plan = KernelPlan(conv_transpose_bwd_weight_kernel, grid, args, config["num_warps"], config["num_stages"])
    return plan, partial


def bias_grad_plan(
    dz: torch.Tensor, *, splits: int | None = None, config: dict | None = None
) -> tuple[KernelPlan, torch.Tensor]:
    """The launch that writes the per-channel partial sums of ``dz`` (1 to 3 spatial axes), and the ``[splits, C]``
    buffer."""
    dz5 = spatial_3d(dz)
    n, c, od, oh, ow = dz5.shape
    pixels = n * od * oh * ow
    if config is None:
        config = configs.config_for(
            "channel_sum", dz.dtype, dz.device, {"BLOCK_P": pixels, "BLOCK_C": c},
            lambda cfg: bias_grad_plan(dz, splits=splits, config=cfg)[0],
        )  # fmt: skip
    c_tiles = triton.cdiv(c, config["BLOCK_C"])
    if splits is None:
        splits = _splits(pixels, c_tiles, config["BLOCK_P"])
    constexprs = numeric_constexprs((dz,))
    partial = torch.empty((splits, c), dtype=_accumulator(dz.dtype), device=dz.device)
    args = dict(
        dz_ptr=dz5, partial_ptr=partial, C=c, OD=od, OH=oh, OW=ow, PIXELS=pixels,
        **strides("dz", dz5),
        PIXELS_PER_SPLIT=triton.cdiv(pixels, splits), SPATIAL=dz.dim() - 2, ACC_DTYPE=constexprs["ACC_DTYPE"],
        INDEX_DTYPE=constexprs["INDEX_DTYPE"], BLOCK_P=config["BLOCK_P"], BLOCK_C=config["BLOCK_C"],
    )  # fmt: skip
    plan = KernelPlan(channel_sum_kernel, (c_tiles, splits), args, config["num_warps"], config["num_stages"])
    return plan, partial


def _accumulator(dtype: torch.dtype) -> torch.dtype:
    """The partial sums' dtype: the kernels' accumulator (fp64 for fp64, fp32 otherwise)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _reduce(partial: torch.Tensor, dtype: torch.dtype, like: torch.Tensor | None = None) -> torch.Tensor:
    """Add the partial sums in split order (torch's reduction over one dimension has a fixed order), then cast; into
    a tensor with ``like``'s strides when given (the weight gradient takes the weight's, ``empty_like``)."""
    if like is None:
        return partial.sum(0).to(dtype)
    out = torch.empty_like(like, dtype=dtype)
    if dtype == partial.dtype:
        return torch.sum(partial, 0, out=out)
    # Not sum(out=) into the narrower dtype: torch would cast the partial sums before adding them.
    return out.copy_(partial.sum(0))


def conv_transpose_backward(
    dy: torch.Tensor,
    x: torch.Tensor,
    weight: torch.Tensor,
    has_bias: bool,
    saved: torch.Tensor | None,
    params: ConvParams,
    activation: str,
    negative_slope: float,
    needs: tuple[bool, bool, bool],
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """Gradients ``(dx, dw, db)`` (None where ``needs`` says not needed) of ``act(conv_transpose2d(x, w) + b)``.

    ``saved`` is the forward output ``y`` or the recomputed pre-activation ``z`` (see
    :func:`needs_preactivation`); unused when ``activation`` is "none".
    """
    dz = dy if activation == "none" else activation_grad(dy, saved, activation, negative_slope)
    dx = dw = db = None
    if needs[0]:
        dx = torch.empty_like(x)  # x's strides when x is dense, its suggested memory format otherwise
        if dx.numel():
            input_grad_plan(dz, gemm_weight(spatial_3d(weight)), dx, params).launch()
    if needs[1]:
        if x.numel() == 0:
            dw = torch.zeros_like(weight)
        else:
            plan, partial = weight_grad_plan(x, dz, weight, params)
            plan.launch()
            # In the weight's own strides (the modules keep theirs channels_last): AccumulateGrad and DDP's gradient
            # buckets take a gradient laid out like its parameter without a copy.
            dw = _reduce(partial, weight.dtype, like=weight)
    if needs[2] and has_bias:
        if dz.numel() == 0:
            db = torch.zeros(dz.shape[1], dtype=dy.dtype, device=dy.device)
        else:
            plan, partial = bias_grad_plan(dz)
            plan.launch()
            db = _reduce(partial, dy.dtype)
    return dx, dw, db
