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
from .phase_table import BITMASK_TAPS, PhaseTable, device_table, window_table
from .weights import mask_products
from .window import Window, narrow, plan_window

#: Row tiles per group of the grouped launch order: the programs of GROUP_M row tiles and all column tiles run
#: side by side, so a weight tile is read from L2 by GROUP_M programs rather than by one (the matmul tutorial's
#: choice).
GROUP_M = 8


#: The suffix of the config key of the launches that run the kernel's window variant (:mod:`.window`): those whose
#: gathered operand or output does not have channels innermost (NCHW, NCL, NCDHW), and narrow ones in every layout
#: (:func:`.window.narrow`). Their GEMM columns are the kernel's W taps times the output channels, so their tiles are
#: chosen apart (``autotune_configs/``, keys ``conv_transpose2d_fwd_nchw`` and ``conv_transpose2d_bwd_input_nchw``,
#: whose ``BLOCK_N`` is the GEMM's columns, taps included).
NCHW_SUFFIX = "_nchw"


def channels_inner(x5: torch.Tensor) -> bool:
    """Whether the 5-D gathered operand has its channels innermost (channels_last), or a single channel."""
    return x5.stride(1) == 1 or x5.shape[1] == 1


def windowed(x5: torch.Tensor, y5: torch.Tensor, columns: int, kernel_w: int) -> bool:
    """Whether a launch of the transposed convolution or its input gradient (no pixel shuffle) runs the window
    variant: when the gathered operand or the output does not have its channels innermost (NCHW, NCL, NCDHW; an
    output in NCHW only, as a 1x1 input's, is written whole too), or when its ``columns`` per group are narrow
    (:func:`.window.narrow`)."""
    return not (channels_inner(x5) and channels_inner(y5)) or narrow(columns, kernel_w)


def config_key(kernel_key: str, x5: torch.Tensor, y5: torch.Tensor, split_layouts: bool, window: bool) -> str:
    """The config key of a launch: ``kernel_key``, with :data:`NCHW_SUFFIX` when ``split_layouts`` and the launch
    runs the window variant (``window``, :func:`windowed`) or, on the phase path (conv2d + pixel_shuffle), its
    gathered operand or output does not have channels innermost."""
    if split_layouts and (window or not (channels_inner(x5) and channels_inner(y5))):
        return kernel_key + NCHW_SUFFIX
    return kernel_key


def taps_n(w5: torch.Tensor) -> int:
    """The kernel's taps along W rounded up to a power of two: a window tile's ``BLOCK_N`` columns hold that many
    taps of ``BLOCK_N // taps_n`` output channels (those past the kernel's taps are not issued)."""
    return 1 << max(0, w5.shape[4] - 1).bit_length()


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
    # NCHW, and narrow layers in every layout, run the window variant (its own key's tiles): GEMM rows are windows of
    # input columns of rows (n, qd, qh), columns the kernel's W taps times the output channels; a program runs every
    # phase of its rows. conv2d + pixel_shuffle (``shuffle`` > 1) stays on the phase path in every layout, with its
    # own keys' tiles: the window epilogue writes whole output rows of a transposed convolution, not a shuffled
    # conv's sub-pixels.
    window_key = split_layouts and shuffle == 1 and windowed(x5, y5, c_col, w5.shape[4])
    key = config_key(kernel_key, x5, y5, split_layouts, window_key)
    if window_key:
        rows = n * window_table(table).max_rows_per_image
        sizes = {"BLOCK_M": rows * x5.shape[4], "BLOCK_N": c_col * taps_n(w5), "BLOCK_K": max(c_red, 1)}
    else:
        rows = n * table.max_rows_per_image
        sizes = {"BLOCK_M": rows, "BLOCK_N": c_col, "BLOCK_K": max(c_red, 1)}
    if config is None:
        config = configs.config_for(key, x5.dtype, x5.device, sizes, rebuild)
    window = None
    if window_key and config["BLOCK_N"] >= taps_n(w5):  # a tile holds every W tap of at least one channel
        window = plan_window(table.axes[2], x5.shape[4], y5.shape[4], rows, config["BLOCK_M"])
    if window is not None:
        table = window_table(table)
    else:  # the phase path; for an input without channels innermost only where no window layout exists (taps
        rows = n * table.max_rows_per_image  # spanning more than any window's halo), with its key's tiles
    if window is not None:  # every phase of a row tile in one program: the grid has no phases
        m_tiles = triton.cdiv(rows, config["BLOCK_M"] // window.block_w) * window.tiles
        n_tiles = triton.cdiv(c_col, config["BLOCK_N"] // taps_n(w5))
    else:
        m_tiles = triton.cdiv(rows, config["BLOCK_M"])
        n_tiles = triton.cdiv(c_col, config["BLOCK_N"])
    operands = (x5, w5, y5) if bias is None else (x5, w5, y5, bias)
    bitmask = table.taps <= BITMASK_TAPS
    args = dict(
        x_ptr=x5, w_ptr=w5, bias_ptr=bias, y_ptr=y5, table_ptr=device_table(table, x5.device),
        N=n, ID=x5.shape[2], IH=x5.shape[3], IW=x5.shape[4] // x_unit(x5, window), C_RED_G=c_red, C_COL_G=c_col,
        **_x_strides(x5, window),
        stride_wk=s_red, stride_wn=s_col, stride_wg=c_in_g * w5.stride(0),
        stride_wd=w5.stride(2), stride_wh=w5.stride(3), stride_ww=w5.stride(4),
        **strides("y", y5),
        stride_b=1 if bias is None else bias.stride(0),
        GROUPS=groups, M_TILES=m_tiles, N_TILES=n_tiles,
        **_window_args(window, table, y5),
        NDIM=3 - sum(1 for d in (2, 3) if _unit_axis(x5, y5, w5, d)),
        **dict(table.constexprs),
        BITMASK=bitmask, MASK_DTYPE=tl.int32 if table.taps <= 31 else tl.int64,
        EVEN_K=c_red % config["BLOCK_K"] == 0,
        HAS_BIAS=bias is not None, ACTIVATION=activation,
        NEGATIVE_SLOPE=float(negative_slope) if activation == "leaky_relu" else 0.0,  # no recompile for others
        SHUFFLE=shuffle, SHUFFLE_BLOCKS=shuffle_blocks(shuffle, c_col, config["BLOCK_N"]),
        **numeric_constexprs(operands, index64),
        MASK_PRODUCTS=mask_products(w5) if mask_out_of_range is None else mask_out_of_range,
        **_window_constexprs(window, table, w5, config["BLOCK_M"], config["BLOCK_N"] // taps_n(w5), config["num_warps"],
                             x_unit(x5, window)),
        BLOCK_M=config["BLOCK_M"], BLOCK_N=config["BLOCK_N"], BLOCK_K=config["BLOCK_K"], GROUP_M=GROUP_M,
    )  # fmt: skip
    grid = ((1 if window else table.phases) * groups * m_tiles * n_tiles,)
    return KernelPlan(phase_gemm_kernel, grid, args, config["num_warps"], config["num_stages"])


def shuffle_blocks(shuffle: int, columns: int, block_n: int) -> bool:
    """Whether the pixel-shuffled store (``shuffle`` > 1) can take the tile as ``shuffle**2`` runs of channels
    (the kernel's ``SHUFFLE_BLOCKS``): ``shuffle**2`` a power of two (a tile reshape) dividing the tile's width and
    the group's ``columns``, so that no run crosses a group or a tile."""
    sub = shuffle * shuffle
    return shuffle > 1 and sub & (sub - 1) == 0 and block_n % sub == 0 and columns % sub == 0


def x_unit(x5: torch.Tensor, window: Window | None) -> int:
    """The window variant's unit of the gathered operand's width and strides but W (the kernel's ``X_UNIT``): the
    largest power of two up to 8 (16 bytes of 16-bit elements) dividing them all; 1 without the window variant."""
    if window is None:
        return 1
    unit = 8
    while unit > 1 and any(v % unit for v in (x5.shape[4], *x5.stride()[:4])):
        unit //= 2
    return unit


def _x_strides(x5: torch.Tensor, window: Window | None) -> dict[str, int]:
    """The gathered operand's stride arguments: in units of :func:`x_unit` elements but along W."""
    unit = x_unit(x5, window)
    return {k: v // unit if k != "stride_xw" else v for k, v in strides("x", x5).items()}


def _window_args(window: Window | None, table: PhaseTable, y5: torch.Tensor) -> dict[str, int]:
    """The window variant's runtime arguments (zeros, unused, without it)."""
    if window is None:
        return dict(W_TABLE=0, W_TILES=1, W_OWN=0, OW=0, Q_D_MAX=1, Q_H_MAX=1)
    q_d, q_h = (max(row[1] for row in axis.rows) for axis in table.axes[:2])
    return dict(W_TABLE=table.phases, W_TILES=window.tiles, W_OWN=window.own, OW=y5.shape[4], Q_D_MAX=q_d, Q_H_MAX=q_h)


#: The most picked products per thread one chunk of the window epilogue forms (see :func:`_window_constexprs`).
CHUNK_ELEMENTS = 128


def epilogue_mode(axis, taps_a: int, taps_b: int) -> int:
    """How the window epilogue adds each output column's taps (the kernel's ``EPILOGUE``): 1, a forward without
    dilation (each residue's taps ``OS`` apart, one input column apart) whose stride, a power of two, divides
    ``taps_a``: a shift per tap; 2, one residue of consecutive taps (the input gradient, a stride of 1): every tap
    to every column; 0, the table's taps per column."""
    os_, xs = axis.os, axis.xs
    if xs == 1 and axis.dstep == -1 and axis.kstep == os_ and os_ & (os_ - 1) == 0 and taps_a % os_ == 0:
        return 1
    if os_ == 1 and axis.kstep == 1 and all(row[4] == 0 for row in axis.rows):
        return 2
    return 0


def _window_constexprs(window: Window | None, table: PhaseTable, w5: torch.Tensor, block_m: int = 0,
                       channels: int = 0, num_warps: int = 4, x_unit: int = 1) -> dict:  # fmt: skip
    """The window variant's constexprs (:mod:`.window`); without it, values that remove its code."""
    if window is None:
        return dict(W_WINDOW=False, WINDOW_W=1, W_STEP=1, KERNEL_W=1, TAPS_N=1, TAPS_A=1, TAPS_B=0, TAPS_O=1, OUT_W=1,
                    OUT_CHUNK=1, EPILOGUE=0, X_UNIT=1)  # fmt: skip
    axis = table.axes[2]
    kernel_w = w5.shape[4]
    taps_a = 1 << (kernel_w.bit_length() - 1)  # the largest power of two up to the kernel's taps
    taps_b = 0 if kernel_w == taps_a else _ceil_pow2(kernel_w - taps_a)
    taps_o = _ceil_pow2(axis.max_taps)
    mode = epilogue_mode(axis, taps_a, taps_b)
    # Products picked per output column: one per tap slot of its residue (0), per tap (2), per OS taps (1). The
    # shift per tap (1) starts its columns at a multiple of OS: up to OS - 1 before a window's first column.
    picked = {0: taps_o, 1: taps_a // axis.os + taps_b, 2: taps_a + taps_b}[mode]
    out_w = window.block_o
    if mode == 1 and window.tiles > 1 and (window.own // axis.xs) % axis.os:
        out_w = _ceil_pow2(window.width + axis.os - 1)
    if mode == 1:
        out_w = max(out_w, axis.os)  # whole groups of OS columns (a row narrower than the stride)
    # The epilogue's chunk of output columns: its picked products (rows x columns x taps x channels) no more than
    # CHUNK_ELEMENTS per thread, the registers a gather's result and index may take beside the product.
    chunk, least = out_w, axis.os if mode == 1 else 1
    while chunk > least and (block_m // window.block_w) * chunk * picked * channels > CHUNK_ELEMENTS * 32 * num_warps:
        chunk //= 2
    return dict(W_WINDOW=True, WINDOW_W=window.block_w, W_STEP=window.step, KERNEL_W=kernel_w, TAPS_N=taps_n(w5),
                TAPS_A=taps_a, TAPS_B=taps_b, TAPS_O=taps_o, OUT_W=out_w, OUT_CHUNK=chunk, EPILOGUE=mode,
                X_UNIT=x_unit)  # fmt: skip


def _ceil_pow2(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


def _unit_axis(x5: torch.Tensor, y5: torch.Tensor, w5: torch.Tensor, dim: int) -> bool:
    """Whether spatial dimension ``dim`` of the 5-D views is a unit axis that the kernel need not compute, and no
    axis before it is computed either (the kernel computes the last NDIM axes)."""
    return all(t.shape[d] == 1 for t in (x5, y5, w5) for d in range(2, dim + 1))
