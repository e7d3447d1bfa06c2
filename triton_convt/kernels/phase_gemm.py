"""The phase-gather implicit GEMM: the forward transposed convolution, and its input gradient, in one kernel.

Every output pixel ``o = q*OS + r`` (per spatial axis) of *phase* ``r`` reads input pixel ``q*XS + delta_j`` through
tap ``j`` of its phase, with ``delta_j = delta_0 + j*DSTEP`` and the weight tap ``k_j = k_0 + j*KSTEP``:

* the forward transposed convolution has ``OS = stride`` phases per axis, ``XS = 1``, and the taps of
  :func:`triton_convt.launch.shapes.tap_schedule` (``DSTEP = -dilation/gcd``, ``KSTEP = stride/gcd``); see
  ``shared/design/phase-math.md``;
* its input gradient, an ordinary strided convolution of the output gradient with the same weight, has one phase
  (``OS = 1``), ``XS = stride``, and every tap (``delta_j = -padding + j*dilation``, ``k_j = j``).

So one program computes one ``[BLOCK_M, BLOCK_N]`` tile of one phase of one group: rows = output pixels
``(n, qd, qh, qw)`` of the phase, columns = output channels of the group, reduction = the phase's taps x the
group's reduction channels. The taps and the channel blocks are ONE pipelined loop (``num_stages`` loads in
flight, the next tap's tiles loading while the current one multiplies). Per program, a small per-phase table
built on the host (:mod:`triton_convt.launch.phase_table`) gives the phase's residues, extents, tap counts and
first taps; every row's in-range taps are a bitmask computed once, so the loop's border test is one AND per row.

The kernel is written for three spatial axes (D, H, W). A 1-D or 2-D call passes views with unit axes in front
and ``NDIM`` < 3, and the unit axes' arithmetic is removed at compile time. Strides, dilation, tap counts,
tiles and dtypes are ``tl.constexpr``; sizes are runtime arguments, so a new shape does not recompile. Phases write
disjoint outputs and nothing is accumulated across programs: the result is deterministic.

This module holds the kernel's arguments and its launch order; one tile's work is :func:`.phase_tile.gemm_tile`, and
the NCHW window variant's epilogue :mod:`.window_epilogue`.
"""

import triton
import triton.language as tl

from .phase_tile import TABLE_COLUMNS, gemm_tile

__all__ = ["TABLE_COLUMNS", "phase_gemm_kernel"]  # the table's width, with the kernel it describes


@triton.jit
def phase_gemm_kernel(
    x_ptr,
    w_ptr,
    bias_ptr,
    y_ptr,
    table_ptr,
    N,
    ID,
    IH,
    IW,
    C_RED_G,
    C_COL_G,
    stride_xn,
    stride_xc,
    stride_xd,
    stride_xh,
    stride_xw,
    stride_wk,
    stride_wn,
    stride_wg,
    stride_wd,
    stride_wh,
    stride_ww,
    stride_yn,
    stride_yc,
    stride_yd,
    stride_yh,
    stride_yw,
    stride_b,
    GROUPS,
    M_TILES,
    N_TILES,
    W_TABLE,
    W_TILES,
    W_OWN,
    OW,
    Q_D_MAX,
    Q_H_MAX,
    NDIM: tl.constexpr,
    XS_D: tl.constexpr,
    XS_H: tl.constexpr,
    XS_W: tl.constexpr,
    OS_D: tl.constexpr,
    OS_H: tl.constexpr,
    OS_W: tl.constexpr,
    DSTEP_D: tl.constexpr,
    DSTEP_H: tl.constexpr,
    DSTEP_W: tl.constexpr,
    KSTEP_D: tl.constexpr,
    KSTEP_H: tl.constexpr,
    KSTEP_W: tl.constexpr,
    MAX_T_D: tl.constexpr,
    MAX_T_H: tl.constexpr,
    MAX_T_W: tl.constexpr,
    BITMASK: tl.constexpr,
    MASK_DTYPE: tl.constexpr,
    EVEN_K: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    ACTIVATION: tl.constexpr,
    NEGATIVE_SLOPE: tl.constexpr,
    SHUFFLE: tl.constexpr,
    SHUFFLE_BLOCKS: tl.constexpr,
    ACC_DTYPE: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    DOT_IN_FP32: tl.constexpr,
    INDEX_DTYPE: tl.constexpr,
    MASK_PRODUCTS: tl.constexpr,
    W_WINDOW: tl.constexpr,
    WINDOW_W: tl.constexpr,
    W_STEP: tl.constexpr,
    KERNEL_W: tl.constexpr,
    TAPS_N: tl.constexpr,
    TAPS_A: tl.constexpr,
    TAPS_B: tl.constexpr,
    TAPS_O: tl.constexpr,
    OUT_W: tl.constexpr,
    OUT_CHUNK: tl.constexpr,
    EPILOGUE: tl.constexpr,
    X_UNIT: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr,
):
    """One ``[BLOCK_M, BLOCK_N]`` output tile of one phase of one group.

    With ``W_WINDOW`` (inputs whose channels are not innermost: NCHW, NCL, NCDHW) a program covers instead every
    phase of its rows: it runs the (D, H) phases of the table one after the other (``W_TABLE`` of them), each for
    every W phase at once: its ``BLOCK_M`` GEMM rows are ``BLOCK_M // WINDOW_W`` rows
    ``(n, qd, qh)`` of one (D, H) phase times a window of ``WINDOW_W`` consecutive input columns, which the loop reads
    as ``[BLOCK_K, BLOCK_M]`` tiles, contiguous along the window and, the window starting at a multiple of
    ``W_STEP``, aligned (16-byte vector and cp.async loads, where a per-tap shift along W would defeat both); its
    columns are every W tap of the kernel (``KERNEL_W`` blocks of ``BLOCK_N // TAPS_N`` output channels, in two
    products of a power of two blocks each). The epilogue then adds
    each output column's taps out of the product (a gather along the window) and writes ``OUT_W`` consecutive
    output columns of every row: with every (D, H) phase in the same program, all phases of those pixels, so NCHW
    stores fill whole sectors.

    Args:
        x_ptr: the gathered operand ``[N, C, ID, IH, IW]`` (forward: the input; input gradient: the output
            gradient), any strides.
        w_ptr: the weight, any strides; the tile of reduction channel ``c`` and column ``j`` of group ``g`` at tap
            ``(kd, kh, kw)`` is at ``g*stride_wg + c*stride_wk + j*stride_wn + kd*stride_wd + ...``. The fast
            layouts have ``stride_wn == 1`` or ``stride_wk == 1`` (16-byte loads along one tile axis).
        bias_ptr: bias ``[C_COL_G * GROUPS]``, any stride (ignored unless HAS_BIAS).
        y_ptr: the output ``[N, C_COL_G * GROUPS, OD, OH, OW]``, any strides; every element is written exactly
            once (the output's spatial size reaches the kernel only through the phase table's extents, and ``OW``).
        table_ptr: int32 ``[rows, TABLE_COLUMNS]``, one row per phase in launch order (heaviest first): residues
            ``r`` (d, h, w), extents ``Q`` (d, h, w), tap counts ``T`` (d, h, w), first input offsets ``delta_0``
            (d, h, w) and first weight taps ``k_0`` (d, h, w). With ``W_WINDOW`` the phases are those of D and H, and
            rows ``W_TABLE + r`` hold the W fields of W residue ``r`` for every ``r < OS_W``.
        N: batch size.
        ID, IH, IW: the gathered operand's spatial size (taps reading outside it read zeros); IW in units of
            X_UNIT.
        C_RED_G: reduction channels per group (forward: input channels; input gradient: output channels).
        C_COL_G: output channels per group of this GEMM (the columns).
        stride_x*, stride_y*: element strides of x and y per dimension (n, c, d, h, w); those of x but ``w`` in
            units of X_UNIT elements.
        stride_wk, stride_wn, stride_wg: the weight's element strides along reduction channels, columns, and from
            one group to the next.
        stride_wd, stride_wh, stride_ww: the weight's element strides along the kernel's axes.
        stride_b: the bias's element stride.
        GROUPS: number of groups.
        M_TILES: row tiles of the largest phase; programs past their own phase's rows exit at once. With
            ``W_WINDOW``, row tiles times ``W_TILES``.
        N_TILES: column tiles, ``cdiv(C_COL_G, BLOCK_N // TAPS_N)``.
        W_TABLE: with ``W_WINDOW``, the number of (D, H) phases, which is the table row of W residue 0 (unused
            otherwise).
        W_TILES: with ``W_WINDOW``, windows per row: window ``t`` starts at input column ``t * W_STEP``.
        W_OWN: with ``W_WINDOW``, where a window's output columns start: window ``t > 0`` writes from column
            ``cdiv(t * W_STEP * OS_W - W_OWN, XS_W)`` to the next window's first column (the first from 0, the
            last to ``OW``), the columns whose in-range taps all lie inside it (the planner checks this).
        OW: with ``W_WINDOW``, the output's width.
        Q_D_MAX, Q_H_MAX: with ``W_WINDOW``, the rows of the largest phase along D and H: the grid of rows
            ``(n, qd, qh)`` a program's rows are taken from, for every phase.
        NDIM: spatial axes of the call (1, 2 or 3): axes in front of the last NDIM are unit axes, not computed.
        XS_*: input step per axis: row coordinate ``q`` reads ``q*XS + delta`` (1 forward, the stride for the
            input gradient).
        OS_*: output step per axis: row ``q`` of phase ``r`` writes output ``q*OS + r``.
        DSTEP_*, KSTEP_*: per-tap increments of the input offset and of the weight tap index, per axis.
        MAX_T_*: the most taps a phase has along each axis (static bound of the row bitmasks).
        BITMASK: keep each row's in-range taps as a bitmask (the phase has at most 63 taps); else compare per tap.
        MASK_DTYPE: the bitmask's dtype: tl.int32 up to 31 taps, tl.int64 up to 63.
        EVEN_K: ``C_RED_G`` is a multiple of BLOCK_K, so the reduction needs no channel mask.
        HAS_BIAS: add the bias in the epilogue.
        ACTIVATION, NEGATIVE_SLOPE: the fused activation (see :mod:`.epilogue`).
        SHUFFLE: the upscale factor ``r`` of a pixel shuffle applied to the result (1: none): column ``co`` of row
            ``(n, qh, qw)`` is written to channel ``co // r^2`` at ``(qh*OS_H + i, qw*OS_W + j)``, ``i, j`` the
            digits of ``co % r^2`` in base ``r`` (the table gives ``OS = r``). conv2d + pixel_shuffle in one launch;
            the phase path only (not with ``W_WINDOW``).
        SHUFFLE_BLOCKS: every column tile is whole runs of ``r^2`` sub-pixels (``r^2`` a power of two dividing
            BLOCK_N and the group's columns): the tile is stored as ``r^2`` runs of consecutive channels; else
            column by column (:func:`.epilogue.shuffled_store`).
        ACC_DTYPE: accumulator dtype (fp32, or fp64 for fp64 tensors).
        DOT_PRECISION: ``tl.dot`` input precision ("tf32" or "ieee").
        DOT_IN_FP32: cast operands to fp32 before ``tl.dot`` (bf16 under the interpreter only).
        INDEX_DTYPE: tl.int32, or tl.int64 when some tensor spans 2^31 elements or more.
        MASK_PRODUCTS: add each tap's partial product only to the rows whose input is in range (non-finite
            weights on CPU, where ``0 * inf`` must not reach rows that torch never multiplies).
        W_WINDOW: the window variant (see above); the loop then runs the D and H taps only.
        WINDOW_W: with ``W_WINDOW``, the window's width (a power of two dividing BLOCK_M); else 1.
        W_STEP: with ``W_WINDOW``, the distance between two windows of a row (a multiple of 8 when the rows are
            aligned, so that the compiler can prove it); else 1.
        KERNEL_W: with ``W_WINDOW``, the kernel's taps along W; else 1.
        TAPS_N: with ``W_WINDOW``, KERNEL_W rounded up to a power of two: a tile has ``BLOCK_N // TAPS_N`` output
            channels; else 1.
        TAPS_A, TAPS_B: with ``W_WINDOW``, the column blocks (taps) of the tile's two products: TAPS_A, the
            largest power of two up to KERNEL_W, then the rest rounded up to a power of two (0: none); else 1, 0.
        TAPS_O: with ``W_WINDOW``, the most taps an output column adds (MAX_T_W) rounded up to a power of two.
        OUT_W: with ``W_WINDOW``, output columns a window writes at most (a power of two); else 1.
        OUT_CHUNK: with ``W_WINDOW``, output columns the epilogue forms at a time (a power of two dividing OUT_W,
            sized so that a chunk's picked products are no more than the product's registers); else 1.
        X_UNIT: the unit of ``IW``, ``stride_xn``, ``stride_xc``, ``stride_xd``, ``stride_xh`` (the values passed
            are theirs over X_UNIT): a power of two up to 8 that divides them all, 1 without ``W_WINDOW``.
        EPILOGUE: with ``W_WINDOW``, how the epilogue adds each output column's taps: 1, a forward without
            dilation whose stride (a power of two) divides TAPS_A: each tap is a shift along the window
            onto one residue, and the columns come out in memory order (the column blocks hold the taps permuted
            to suit); 2, one residue (the input gradient, a
            stride of 1): every tap adds to every column; 0, any other: each column's taps from the table.
        BLOCK_M, BLOCK_N, BLOCK_K: tile sizes of the GEMM (rows, columns, reduction channels per step). With
            ``W_WINDOW``, the columns are ``TAPS_N`` taps of ``BLOCK_N // TAPS_N`` output channels.
        GROUP_M: row tiles per group of the grouped launch order (neighbouring programs share weight tiles).
    """
    # Launch order: phases outermost (the table lists the heaviest first, so they start first and the light
    # ones fill the tail), then groups, then row tiles in groups of GROUP_M with the column tiles inside. A
    # program of the window variant runs every phase of its rows, one after the other: its grid has no phases.
    pid = tl.program_id(0)
    tiles = M_TILES * N_TILES
    slot = pid // tiles
    pid_mn = pid % tiles
    phase = slot // GROUPS
    group = (slot % GROUPS).to(INDEX_DTYPE)
    in_group = GROUP_M * N_TILES
    first_m = pid_mn // in_group * GROUP_M
    size_m = tl.minimum(M_TILES - first_m, GROUP_M)
    pid_m = first_m + (pid_mn % in_group) % size_m
    pid_n = (pid_mn % in_group) // size_m
    if W_WINDOW:
        # The tile's window: columns [w_tile * W_STEP, + WINDOW_W) of BLOCK_M // WINDOW_W rows (n, qd, qh) of the
        # grid of the largest phase, the same rows for every phase (a phase with fewer rows masks the others).
        w_tile = pid_m % W_TILES
        pid_m = pid_m // W_TILES
        if pid_m * (BLOCK_M // WINDOW_W) >= N * Q_D_MAX * Q_H_MAX:
            return
        for ph in range(0, W_TABLE):
            gemm_tile(x_ptr, w_ptr, bias_ptr, y_ptr, table_ptr, ph, group, pid_m, pid_n, w_tile, N, ID, IH, IW,
                      C_RED_G, C_COL_G, stride_xn, stride_xc, stride_xd, stride_xh,
                      stride_xw, stride_wk, stride_wn, stride_wg, stride_wd, stride_wh, stride_ww, stride_yn, stride_yc,
                      stride_yd, stride_yh, stride_yw, stride_b, W_TABLE, W_TILES, W_OWN, OW, Q_D_MAX, Q_H_MAX, NDIM,
                      XS_D, XS_H, XS_W, OS_D, OS_H, OS_W, DSTEP_D, DSTEP_H, DSTEP_W, KSTEP_D, KSTEP_H, KSTEP_W,
                      MAX_T_D, MAX_T_H, MAX_T_W, BITMASK, MASK_DTYPE, EVEN_K, HAS_BIAS, ACTIVATION, NEGATIVE_SLOPE,
                      SHUFFLE, SHUFFLE_BLOCKS, ACC_DTYPE, DOT_PRECISION, DOT_IN_FP32, INDEX_DTYPE, MASK_PRODUCTS,
                      W_WINDOW, WINDOW_W, W_STEP, KERNEL_W, TAPS_N, TAPS_A, TAPS_B, TAPS_O, OUT_W, OUT_CHUNK,
                      EPILOGUE, X_UNIT, BLOCK_M, BLOCK_N, BLOCK_K)  # fmt: skip
    else:
        row = table_ptr + phase * TABLE_COLUMNS
        if pid_m * BLOCK_M >= N * tl.load(row + 3) * tl.load(row + 4) * tl.load(row + 5):
            return
        gemm_tile(x_ptr, w_ptr, bias_ptr, y_ptr, table_ptr, phase, group, pid_m, pid_n, 0, N, ID, IH, IW,
                  C_RED_G, C_COL_G, stride_xn, stride_xc, stride_xd, stride_xh,
                  stride_xw, stride_wk, stride_wn, stride_wg, stride_wd, stride_wh, stride_ww, stride_yn, stride_yc,
                  stride_yd, stride_yh, stride_yw, stride_b, W_TABLE, W_TILES, W_OWN, OW, Q_D_MAX, Q_H_MAX, NDIM,
                  XS_D, XS_H, XS_W, OS_D, OS_H, OS_W, DSTEP_D, DSTEP_H, DSTEP_W, KSTEP_D, KSTEP_H, KSTEP_W,
                  MAX_T_D, MAX_T_H, MAX_T_W, BITMASK, MASK_DTYPE, EVEN_K, HAS_BIAS, ACTIVATION, NEGATIVE_SLOPE,
                  SHUFFLE, SHUFFLE_BLOCKS, ACC_DTYPE, DOT_PRECISION, DOT_IN_FP32, INDEX_DTYPE, MASK_PRODUCTS,
                  W_WINDOW, WINDOW_W, W_STEP, KERNEL_W, TAPS_N, TAPS_A, TAPS_B, TAPS_O, OUT_W, OUT_CHUNK,
                  EPILOGUE, X_UNIT, BLOCK_M, BLOCK_N, BLOCK_K)  # fmt: skip
