"""Launch planning of the phase-gather GEMM (:mod:`triton_convt.kernels.phase_gemm`), which computes both the
forward transposed convolution and its input gradient.

:func:`gemm_weight` brings the weight into a layout the kernel reads with 16-byte loads (at most one launch, none
for a channels_last weight); :func:`gemm_plan` turns 5-D views of the operands, the phase table and the weight's
roles into a :class:`~.kernel_plan.KernelPlan`. The forward and backward planners
(:mod:`.conv_transpose_fwd`, :mod:`.conv_transpose_bwd`) say which operand is which.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..activations import DEFAULT_NEGATIVE_SLOPE
from ..kernels.phase_gemm import phase_gemm_kernel
from ..kernels.weight_repack import weight_repack_kernel
from . import configs
from .kernel_plan import KernelPlan, numeric_constexprs, strides
from .phase_table import BITMASK_TAPS, PhaseTable, device_table
from .weights import mask_products

#: Row tiles per group of the grouped launch order: the programs of GROUP_M row tiles and all column tiles run
#: side by side, so a weight tile is read from L2 by GROUP_M programs rather than by one (the matmul tutorial's
#: choice).
GROUP_M = 8


#: The suffix of the config key of the forward's launches whose input does not have channels innermost (NCHW): their
#: A tiles are gathered element by element, which needs more registers, so they take smaller tiles of their own
#: (``autotune_configs/``, key ``conv_transpose2d_fwd_nchw``).
NCHW_SUFFIX = "_nchw"


def config_key(kernel_key: str, x5: torch.Tensor, split_layouts: bool) -> str:
    """The config key of a launch: ``kernel_key``, with :data:`NCHW_SUFFIX` when ``split_layouts`` and the gathered
    operand's channels are not innermost."""
    if split_layouts and x5.stride(1) != 1 and x5.shape[1] > 1:
        return kernel_key + NCHW_SUFFIX
    return kernel_key


def reads_in_place(w5: torch.Tensor) -> bool:
    """Whether the kernel reads the 5-D weight view ``[C_in, C_out/g, kD, kH, kW]`` with 16-byte loads: output
    channels innermost (channels_last, what ``model.to(memory_format=torch.channels_last)`` makes) or input
    channels innermost. A dimension of one element has no stride to speak of and counts as either."""
    return any(w5.stride(d) == 1 or w5.shape[d] == 1 for d in (0, 1))


def repack_plan(w5: torch.Tensor, *, config: dict | None = None) -> tuple[KernelPlan, torch.Tensor]:
    """The launch that copies the 5-D weight view ``w5`` into output-channels-innermost order, and the copy as a
    5-D view of the same shape (strides ``(kD*kH*kW*C_out_g, 1, kH*kW*C_out_g, kW*C_out_g, C_out_g)``)."""
    c_in, c_out_g, kd, kh, kw = w5.shape
    packed = torch.empty((c_in, kd, kh, kw, c_out_g), dtype=w5.dtype, device=w5.device)
    if config is None:
        config = configs.config_for("weight_repack", w5.dtype, w5.device, {"BLOCK": w5.numel()},
                                    lambda c: repack_plan(w5, config=c)[0])  # fmt: skip
    args = dict(
        w_ptr=w5, out_ptr=packed, NUMEL=w5.numel(), C_OUT_G=c_out_g, KD=kd, KH=kh, KW=kw,
        **strides("w", w5, weight=True),
        INDEX_DTYPE=numeric_constexprs((w5, packed))["INDEX_DTYPE"], BLOCK=config["BLOCK"],
    )  # fmt: skip
    grid = (triton.cdiv(w5.numel(), config["BLOCK"]),)
    plan = KernelPlan(weight_repack_kernel, grid, args, config["num_warps"], config["num_stages"])
    return plan, packed.permute(0, 4, 1, 2, 3)


def gemm_weight(w5: torch.Tensor) -> torch.Tensor:
    """``w5`` if the kernel reads it in place (:func:`reads_in_place`), else a copy in channels_last order made by
    one launch. Made on every call, never cached (see :mod:`triton_convt.kernels.weight_repack`)."""
    if reads_in_place(w5):
        return w5
    plan, packed = repack_plan(w5)
    plan.launch()
    return packed


def gemm_plan(
    kernel_key: str,
    x5: torch.Tensor,
    w5: torch.Tensor,
    bias: torch.Tensor | None,
    y5: torch.Tensor,
    table: PhaseTable,
    *,
    groups: int,
    reduce_over_output_channels: bool,
    split_layouts: bool = False,
    activation: str = "none",
    negative_slope: float = DEFAULT_NEGATIVE_SLOPE,
    shuffle: int = 1,
    mask_out_of_range: bool | None = None,
    config: dict | None = None,
    index64: bool | None = None,
    rebuild=None,
) -> KernelPlan:
    """The launch of the phase GEMM that writes ``y5`` from ``x5`` and the weight ``w5``
    (``[C_in, C_out/g, kD, kH, kW]``, torch's transposed-convolution weight as a 5-D view).

    The forward reduces over the weight's input channels (its dimension 0) and writes its output channels; the
    input gradient (``reduce_over_output_channels``) reduces over the output channels and writes the input
    channels. ``config`` overrides the choice from ``autotune_configs/`` (key ``kernel_key``); ``rebuild(config)``
    makes the plan of another config for the tuner; ``index64`` forces the index width. With ``split_layouts``,
    an input without channels innermost takes the candidates of its own key (:func:`config_key`).

    ``shuffle`` > 1 writes the result pixel-shuffled (``y5`` has the shuffled shape and the table an output step of
    ``shuffle``: conv2d + pixel_shuffle, :mod:`.conv_pixel_shuffle_fwd`). ``mask_out_of_range`` overrides
    :func:`.weights.mask_products` (a conv multiplies its zero padding by the weight, as torch does).
    """
    n = x5.shape[0]
    c_in, c_out_g = w5.shape[:2]
    c_in_g = c_in // groups
    c_red, c_col = (c_out_g, c_in_g) if reduce_over_output_channels else (c_in_g, c_out_g)
    s_red, s_col = (w5.stride(1), w5.stride(0)) if reduce_over_output_channels else (w5.stride(0), w5.stride(1))
    rows = n * table.max_rows_per_image
    if config is None:
        config = configs.config_for(config_key(kernel_key, x5, split_layouts), x5.dtype, x5.device,
                                    {"BLOCK_M": rows, "BLOCK_N": c_col, "BLOCK_K": max(c_red, 1)}, rebuild)  # fmt: skip
    m_tiles = triton.cdiv(rows, config["BLOCK_M"])
    n_tiles = triton.cdiv(c_col, config["BLOCK_N"])
    operands = (x5, w5, y5) if bias is None else (x5, w5, y5, bias)
    bitmask = table.taps <= BITMASK_TAPS
    args = dict(
        x_ptr=x5, w_ptr=w5, bias_ptr=bias, y_ptr=y5, table_ptr=device_table(table, x5.device),
        N=n, ID=x5.shape[2], IH=x5.shape[3], IW=x5.shape[4], C_RED_G=c_red, C_COL_G=c_col,
        **strides("x", x5),
        stride_wk=s_red, stride_wn=s_col, stride_wg=c_in_g * w5.stride(0),
        stride_wd=w5.stride(2), stride_wh=w5.stride(3), stride_ww=w5.stride(4),
        **strides("y", y5),
        stride_b=1 if bias is None else bias.stride(0),
        GROUPS=groups, M_TILES=m_tiles, N_TILES=n_tiles,
        NDIM=3 - sum(1 for d in (2, 3) if _unit_axis(x5, y5, w5, d)),
        **dict(table.constexprs),
        BITMASK=bitmask, MASK_DTYPE=tl.int32 if table.taps <= 31 else tl.int64,
        EVEN_K=c_red % config["BLOCK_K"] == 0,
        HAS_BIAS=bias is not None, ACTIVATION=activation,
        NEGATIVE_SLOPE=float(negative_slope) if activation == "leaky_relu" else 0.0,  # no recompile for others
        SHUFFLE=shuffle, SHUFFLE_BLOCKS=shuffle_blocks(shuffle, c_col, config["BLOCK_N"]),
        **numeric_constexprs(operands, index64),
        MASK_PRODUCTS=mask_products(w5) if mask_out_of_range is None else mask_out_of_range,
        BLOCK_M=config["BLOCK_M"], BLOCK_N=config["BLOCK_N"], BLOCK_K=config["BLOCK_K"], GROUP_M=GROUP_M,
    )  # fmt: skip
    grid = (len(table.rows) * groups * m_tiles * n_tiles,)
    return KernelPlan(phase_gemm_kernel, grid, args, config["num_warps"], config["num_stages"])


def shuffle_blocks(shuffle: int, columns: int, block_n: int) -> bool:
    """Whether the pixel-shuffled store (``shuffle`` > 1) can take the tile as ``shuffle**2`` runs of channels
    (the kernel's ``SHUFFLE_BLOCKS``): ``shuffle**2`` a power of two (a tile reshape) dividing the tile's width and
    the group's ``columns``, so that no run crosses a group or a tile."""
    sub = shuffle * shuffle
    return shuffle > 1 and sub & (sub - 1) == 0 and block_n % sub == 0 and columns % sub == 0


def _unit_axis(x5: torch.Tensor, y5: torch.Tensor, w5: torch.Tensor, dim: int) -> bool:
    """Whether spatial dimension ``dim`` of the 5-D views is a unit axis that the kernel need not compute, and no
    axis before it is computed either (the kernel computes the last NDIM axes)."""
    return all(t.shape[d] == 1 for t in (x5, y5, w5) for d in range(2, dim + 1))
