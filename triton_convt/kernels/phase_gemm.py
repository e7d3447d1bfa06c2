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
"""

import triton
import triton.language as tl

from .dot import dot_acc
from .epilogue import epilogue_store

#: Columns of the phase table, one row per phase in launch order (:mod:`triton_convt.launch.phase_table`).
TABLE_COLUMNS = tl.constexpr(16)


@triton.jit
def _tap_in_range(u, delta0, taps, size, j, DSTEP: tl.constexpr):
    """Whether tap ``j`` of an axis (of ``taps``) reads inside ``[0, size)`` from row coordinate ``u`` (``q*XS``)."""
    pos = u + (delta0 + j * DSTEP)
    return (pos >= 0) & (pos < size) & (j < taps)


@triton.jit
def _row_taps(u_d, u_h, u_w, delta_d, delta_h, delta_w, t_d, t_h, t_w, ID, IH, IW, row_mask,
              DSTEP_D: tl.constexpr, DSTEP_H: tl.constexpr, DSTEP_W: tl.constexpr, MAX_T_D: tl.constexpr,
              MAX_T_H: tl.constexpr, MAX_T_W: tl.constexpr, NDIM: tl.constexpr, MASK_DTYPE: tl.constexpr,
              W_TAPS: tl.constexpr):
    """Each row's in-range taps as a bitmask, computed once per program: bit ``(jd*t_h + jh)*t_w + jw`` (the
    tap's number in the loop's order) is set where tap ``(jd, jh, jw)`` of the phase reads inside the input along
    every axis. Without ``W_TAPS`` (the window variant, whose loop has no W taps) the bits are ``jd*t_h + jh``
    and ``row_mask`` already says whether the row's column is inside the input."""
    valid = tl.zeros(row_mask.shape, dtype=MASK_DTYPE)
    for jd in tl.static_range(MAX_T_D):
        ok_d = row_mask
        if NDIM == 3:
            ok_d = ok_d & _tap_in_range(u_d, delta_d, t_d, ID, jd, DSTEP_D)
        for jh in tl.static_range(MAX_T_H):
            ok_h = ok_d
            if NDIM >= 2:
                ok_h = ok_h & _tap_in_range(u_h, delta_h, t_h, IH, jh, DSTEP_H)
            one = tl.full(row_mask.shape, 1, MASK_DTYPE)
            if W_TAPS:
                for jw in tl.static_range(MAX_T_W):
                    ok = ok_h & _tap_in_range(u_w, delta_w, t_w, IW, jw, DSTEP_W)
                    valid |= tl.where(ok, one << ((jd * t_h + jh) * t_w + jw), 0)
            else:
                valid |= tl.where(ok_h, one << (jd * t_h + jh), 0)
    return valid


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
            _tile(x_ptr, w_ptr, bias_ptr, y_ptr, table_ptr, ph, group, pid_m, pid_n, w_tile, N, ID, IH, IW, C_RED_G,
                  C_COL_G, stride_xn, stride_xc, stride_xd, stride_xh, stride_xw, stride_wk, stride_wn, stride_wg,
                  stride_wd, stride_wh, stride_ww, stride_yn, stride_yc, stride_yd, stride_yh, stride_yw, stride_b,
                  W_TABLE, W_TILES, W_OWN, OW, Q_D_MAX, Q_H_MAX, NDIM, XS_D, XS_H, XS_W, OS_D, OS_H, OS_W, DSTEP_D,
                  DSTEP_H, DSTEP_W, KSTEP_D, KSTEP_H, KSTEP_W, MAX_T_D, MAX_T_H, MAX_T_W, BITMASK, MASK_DTYPE,
                  EVEN_K, HAS_BIAS, ACTIVATION, NEGATIVE_SLOPE, ACC_DTYPE, DOT_PRECISION, DOT_IN_FP32, INDEX_DTYPE,
                  MASK_PRODUCTS, W_WINDOW, WINDOW_W, W_STEP, KERNEL_W, TAPS_N, TAPS_A, TAPS_B, TAPS_O, OUT_W,
                  OUT_CHUNK, EPILOGUE, X_UNIT, BLOCK_M, BLOCK_N, BLOCK_K)
    else:
        row = table_ptr + phase * TABLE_COLUMNS
        if pid_m * BLOCK_M >= N * tl.load(row + 3) * tl.load(row + 4) * tl.load(row + 5):
            return
        _tile(x_ptr, w_ptr, bias_ptr, y_ptr, table_ptr, phase, group, pid_m, pid_n, 0, N, ID, IH, IW, C_RED_G,
              C_COL_G, stride_xn, stride_xc, stride_xd, stride_xh, stride_xw, stride_wk, stride_wn, stride_wg,
              stride_wd, stride_wh, stride_ww, stride_yn, stride_yc, stride_yd, stride_yh, stride_yw, stride_b,
              W_TABLE, W_TILES, W_OWN, OW, Q_D_MAX, Q_H_MAX, NDIM, XS_D, XS_H, XS_W, OS_D, OS_H, OS_W, DSTEP_D,
              DSTEP_H, DSTEP_W, KSTEP_D, KSTEP_H, KSTEP_W, MAX_T_D, MAX_T_H, MAX_T_W, BITMASK, MASK_DTYPE, EVEN_K,
              HAS_BIAS, ACTIVATION, NEGATIVE_SLOPE, ACC_DTYPE, DOT_PRECISION, DOT_IN_FP32, INDEX_DTYPE,
              MASK_PRODUCTS, W_WINDOW, WINDOW_W, W_STEP, KERNEL_W, TAPS_N, TAPS_A, TAPS_B, TAPS_O, OUT_W, OUT_CHUNK,
              EPILOGUE, X_UNIT, BLOCK_M, BLOCK_N, BLOCK_K)


@triton.jit
def _tile(x_ptr, w_ptr, bias_ptr, y_ptr, table_ptr, phase, group, pid_m, pid_n, w_tile, N, ID, IH, IW, C_RED_G,
          C_COL_G, stride_xn, stride_xc, stride_xd, stride_xh, stride_xw, stride_wk, stride_wn, stride_wg, stride_wd,
          stride_wh, stride_ww, stride_yn, stride_yc, stride_yd, stride_yh, stride_yw, stride_b, W_TABLE, W_TILES,
          W_OWN, OW, Q_D_MAX, Q_H_MAX, NDIM: tl.constexpr, XS_D: tl.constexpr, XS_H: tl.constexpr,
          XS_W: tl.constexpr, OS_D: tl.constexpr, OS_H: tl.constexpr, OS_W: tl.constexpr, DSTEP_D: tl.constexpr,
          DSTEP_H: tl.constexpr, DSTEP_W: tl.constexpr, KSTEP_D: tl.constexpr, KSTEP_H: tl.constexpr,
          KSTEP_W: tl.constexpr, MAX_T_D: tl.constexpr, MAX_T_H: tl.constexpr, MAX_T_W: tl.constexpr,
          BITMASK: tl.constexpr, MASK_DTYPE: tl.constexpr, EVEN_K: tl.constexpr, HAS_BIAS: tl.constexpr,
          ACTIVATION: tl.constexpr, NEGATIVE_SLOPE: tl.constexpr, ACC_DTYPE: tl.constexpr,
          DOT_PRECISION: tl.constexpr, DOT_IN_FP32: tl.constexpr, INDEX_DTYPE: tl.constexpr,
          MASK_PRODUCTS: tl.constexpr, W_WINDOW: tl.constexpr, WINDOW_W: tl.constexpr, W_STEP: tl.constexpr,
          KERNEL_W: tl.constexpr, TAPS_N: tl.constexpr, TAPS_A: tl.constexpr, TAPS_B: tl.constexpr,
          TAPS_O: tl.constexpr, OUT_W: tl.constexpr, OUT_CHUNK: tl.constexpr, EPILOGUE: tl.constexpr,
          X_UNIT: tl.constexpr,
          BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """One output tile of phase ``phase`` (a table row) of group ``group``: row tile ``pid_m`` (of the phase's rows;
    with ``W_WINDOW``, of the row grid of the largest phase, window ``w_tile``), column tile ``pid_n``. Arguments as
    :func:`phase_gemm_kernel`'s."""
    # The gathered operand's width and strides but along W come in units of X_UNIT elements: so the compiler sees
    # rows that start 16 bytes apart, and a row's end on a 16-byte boundary (a row of 8 16-bit elements, which
    # the JIT's divisibility-by-16 hint leaves out).
    IW *= X_UNIT
    stride_xn *= X_UNIT
    stride_xc *= X_UNIT
    stride_xd *= X_UNIT
    stride_xh *= X_UNIT
    row = table_ptr + phase * TABLE_COLUMNS
    r_d = tl.load(row + 0)
    r_h = tl.load(row + 1)
    r_w = tl.load(row + 2)
    q_d = tl.load(row + 3)
    q_h = tl.load(row + 4)
    q_w = tl.load(row + 5)
    t_d = tl.load(row + 6)
    t_h = tl.load(row + 7)
    t_w = tl.load(row + 8)
    delta_d = tl.load(row + 9)
    delta_h = tl.load(row + 10)
    delta_w = tl.load(row + 11)
    k0_d = tl.load(row + 12)
    k0_h = tl.load(row + 13)
    k0_w = tl.load(row + 14)
    if W_WINDOW:
        # The window starts at a multiple of the constant W_STEP: so the compiler learns that its loads are
        # aligned. Rows are decoded on the grid of the largest phase, the same for every phase.
        a0 = w_tile * W_STEP
        q_rows_d = Q_D_MAX
        q_rows_h = Q_H_MAX
        rows = N * q_rows_d * q_rows_h
        tile_rows = BLOCK_M // WINDOW_W
        # The loop has no W taps: every W tap is a column block of the product.
        t_w = 1
    else:
        q_rows_d = q_d
        q_rows_h = q_h
        rows = N * q_d * q_h * q_w
        tile_rows = BLOCK_M

    # Decode the tile's rows once: (n, qd, qh, qw), their offsets in x and y, and which taps each row may read.
    offs = tl.arange(0, BLOCK_M).to(INDEX_DTYPE)
    if W_WINDOW:
        offs_m = pid_m.to(INDEX_DTYPE) * tile_rows + offs // WINDOW_W
        col = a0 + offs % WINDOW_W
        row_mask = (offs_m < rows) & (col < IW)  # a column past the input's edge reads zeros
        rest = offs_m
        x_rows = col * stride_xw
        y_rows = col * 0
        u_w = col
    else:
        offs_m = pid_m.to(INDEX_DTYPE) * BLOCK_M + offs
        row_mask = offs_m < rows
        qw = offs_m % q_w
        rest = offs_m // q_w
        x_rows = qw * XS_W * stride_xw
        y_rows = (qw * OS_W + r_w) * stride_yw
        u_w = qw * XS_W
    if NDIM >= 2:
        qh = rest % q_rows_h
        rest = rest // q_rows_h
        x_rows += qh * XS_H * stride_xh
        y_rows += (qh * OS_H + r_h) * stride_yh
        if W_WINDOW:
            row_mask &= qh < q_h  # a row of the grid past this phase's rows
    if NDIM == 3:
        qd = rest % q_rows_d
        rest = rest // q_rows_d
        x_rows += qd * XS_D * stride_xd
        y_rows += (qd * OS_D + r_d) * stride_yd
        if W_WINDOW:
            row_mask &= qd < q_d
    x_rows += rest * stride_xn
    y_rows += rest * stride_yn

    # Which taps each row reads inside the input: a bitmask per row when the phase's taps fit in one
    # (at most 63), so that the loop's border test is one AND per row; else per-axis compares in the loop.
    u_h = qh * XS_H if NDIM >= 2 else u_w
    u_d = qd * XS_D if NDIM == 3 else u_w
    if BITMASK:
        valid = _row_taps(u_d, u_h, u_w, delta_d, delta_h, delta_w, t_d, t_h, t_w, ID, IH, IW, row_mask,
                          DSTEP_D, DSTEP_H, DSTEP_W, MAX_T_D, MAX_T_H, MAX_T_W, NDIM, MASK_DTYPE, not W_WINDOW)

    channels: tl.constexpr = BLOCK_N // TAPS_N  # output channels per tile
    offs_n = pid_n * channels + tl.arange(0, channels).to(INDEX_DTYPE)
    col_mask = offs_n < C_COL_G
    offs_k = tl.arange(0, BLOCK_K).to(INDEX_DTYPE)
    # The operand tiles' pointers advance by increments, as in a plain GEMM: one channel block, or at the end
    # of a tap's channels a jump to the first channel block of the next tap (w fastest, then h, then d).
    # Scalars in INDEX_DTYPE from the first factor on, so that the int64 path forms every jump in int64.
    # The window variant's loop has one tap along W (t_w = 1): its W taps are the product's column blocks.
    if W_WINDOW:
        step_xw = 0
        step_ww = 0
    else:
        step_xw = DSTEP_W
        step_ww = KSTEP_W
    k_blocks = tl.cdiv(C_RED_G, BLOCK_K)
    one = tl.full((), 1, INDEX_DTYPE)
    x_chan = one * BLOCK_K * stride_xc
    w_chan = one * BLOCK_K * stride_wk
    x_jump_w = one * step_xw * stride_xw - (k_blocks - 1) * x_chan
    w_jump_w = one * step_ww * stride_ww - (k_blocks - 1) * w_chan
    x_jump_h = one * DSTEP_H * stride_xh - (t_w - 1) * (one * step_xw * stride_xw) - (k_blocks - 1) * x_chan
    w_jump_h = one * KSTEP_H * stride_wh - (t_w - 1) * (one * step_ww * stride_ww) - (k_blocks - 1) * w_chan
    x_jump_d = (one * DSTEP_D * stride_xd - (t_h - 1) * (one * DSTEP_H * stride_xh)
                - (t_w - 1) * (one * step_xw * stride_xw) - (k_blocks - 1) * x_chan)
    w_jump_d = (one * KSTEP_D * stride_wd - (t_h - 1) * (one * KSTEP_H * stride_wh)
                - (t_w - 1) * (one * step_ww * stride_ww) - (k_blocks - 1) * w_chan)
    x_first = (group * C_RED_G) * stride_xc + one * delta_d * stride_xd + one * delta_h * stride_xh
    w_first = group * stride_wg + one * k0_d * stride_wd + one * k0_h * stride_wh
    if W_WINDOW:
        # B tiles [BLOCK_K, TAPS_A * channels]: column block j is W tap j; a second product holds the taps past
        # TAPS_A (TAPS_B blocks, those past the kernel's taps masked to zeros), so that a kernel of 3 or 5 taps
        # issues 3 or 5 blocks, not 4 or 8. The A tiles, the same expression as the phase path's, are contiguous
        # along the window (their rows), which the compiler reads from the strides and the window's start.
        cols = tl.arange(0, TAPS_A * channels)
        col_n = pid_n * channels + (cols % channels).to(INDEX_DTYPE)
        col_kw = cols // channels
        if EPILOGUE == 1:
            # Block j*OS_W + c holds the tap whose products land on output residue c (see the epilogue): tap
            # ((c + r0) % OS_W) + j*OS_W, with r0 = padding % OS_W, residue 0's first tap.
            r0 = tl.load(table_ptr + W_TABLE * TABLE_COLUMNS + 14)
            col_kw = (col_kw % OS_W + r0) % OS_W + col_kw // OS_W * OS_W
        b_cols = col_kw * stride_ww + col_n * stride_wn
        b_col_mask = col_n < C_COL_G
        if TAPS_B > 0:
            cols2 = tl.arange(0, TAPS_B * channels)
            col_n2 = pid_n * channels + (cols2 % channels).to(INDEX_DTYPE)
            col_kw2 = TAPS_A + cols2 // channels
            b2_col_mask = (col_n2 < C_COL_G) & (col_kw2 < KERNEL_W)
            b2_cols = col_kw2 * stride_ww + col_n2 * stride_wn
            b2_ptrs = w_ptr + w_first + (offs_k[:, None] * stride_wk + b2_cols[None, :])
            acc2 = tl.zeros((BLOCK_M, TAPS_B * channels), dtype=ACC_DTYPE)
    else:
        x_first += one * delta_w * stride_xw
        w_first += one * k0_w * stride_ww
        b_cols = offs_n * stride_wn
        b_col_mask = col_mask
    a_ptrs = x_ptr + x_first + (x_rows[:, None] + (offs_k * stride_xc)[None, :])
    b_ptrs = w_ptr + w_first + (offs_k[:, None] * stride_wk + b_cols[None, :])

    acc = tl.zeros((BLOCK_M, TAPS_A * channels), dtype=ACC_DTYPE)
    c0 = 0
    jw = 0
    jh = 0
    jd = 0
    bit = tl.full((), 1, MASK_DTYPE)  # the current tap's bit in the rows' masks: taps are numbered in loop order
    for _ in tl.range(0, k_blocks * t_d * t_h * t_w):
        if BITMASK:
            rows_ok = (valid & bit) != 0
        else:
            rows_ok = row_mask
            if not W_WINDOW:
                rows_ok &= _tap_in_range(u_w, delta_w, t_w, IW, jw, DSTEP_W)
            if NDIM >= 2:
                rows_ok &= _tap_in_range(u_h, delta_h, t_h, IH, jh, DSTEP_H)
            if NDIM == 3:
                rows_ok &= _tap_in_range(u_d, delta_d, t_d, ID, jd, DSTEP_D)
        if EVEN_K:
            a_mask = rows_ok[:, None]
            b_mask = b_col_mask[None, :]
        else:
            k_ok = offs_k < C_RED_G - c0
            a_mask = rows_ok[:, None] & k_ok[None, :]
            b_mask = k_ok[:, None] & b_col_mask[None, :]
        a = tl.load(a_ptrs, mask=a_mask, other=0.0)
        b = tl.load(b_ptrs, mask=b_mask, other=0.0)
        acc = _accumulate(acc, a, b, rows_ok, MASK_PRODUCTS, ACC_DTYPE, DOT_PRECISION, DOT_IN_FP32)
        if W_WINDOW and TAPS_B > 0:
            if EVEN_K:
                b2_mask = b2_col_mask[None, :]
            else:
                b2_mask = k_ok[:, None] & b2_col_mask[None, :]
            b2 = tl.load(b2_ptrs, mask=b2_mask, other=0.0)
            acc2 = _accumulate(acc2, a, b2, rows_ok, MASK_PRODUCTS, ACC_DTYPE, DOT_PRECISION, DOT_IN_FP32)
        # Next channel block; past the last one, the next tap. The counters of the unit axes of a 1-D or 2-D
        # call are not kept.
        c0 += BLOCK_K
        next_tap = c0 >= C_RED_G
        c0 = tl.where(next_tap, 0, c0)
        if BITMASK:
            bit = tl.where(next_tap, bit << 1, bit)
        x_inc = tl.where(next_tap, x_jump_w, x_chan)
        w_inc = tl.where(next_tap, w_jump_w, w_chan)
        if NDIM >= 2 or not BITMASK:
            jw = tl.where(next_tap, jw + 1, jw)
        if NDIM >= 2:
            next_h = jw >= t_w
            jw = tl.where(next_h, 0, jw)
            x_inc = tl.where(next_h, x_jump_h, x_inc)
            w_inc = tl.where(next_h, w_jump_h, w_inc)
            if NDIM == 3 or not BITMASK:
                jh = tl.where(next_h, jh + 1, jh)
            if NDIM == 3:
                next_d = jh >= t_h
                jh = tl.where(next_d, 0, jh)
                x_inc = tl.where(next_d, x_jump_d, x_inc)
                w_inc = tl.where(next_d, w_jump_d, w_inc)
                if not BITMASK:
                    jd = tl.where(next_d, jd + 1, jd)
        a_ptrs += x_inc
        b_ptrs += w_inc
        if W_WINDOW and TAPS_B > 0:
            b2_ptrs += w_inc

    co = group * C_COL_G + offs_n
    if W_WINDOW:
        if TAPS_B == 0:
            acc2 = acc  # not read
        _window_epilogue(acc, acc2, bias_ptr, stride_b, y_ptr, table_ptr, co, col_mask, pid_m, w_tile, a0, rows,
                         q_rows_d, q_rows_h, q_d, q_h, r_d, r_h, IW, W_TABLE, W_TILES, W_OWN, OW, stride_yn, stride_yc,
                         stride_yd, stride_yh,
                         stride_yw, NDIM, XS_W, OS_D, OS_H, OS_W, DSTEP_W, KSTEP_W, HAS_BIAS, ACTIVATION,
                         NEGATIVE_SLOPE, INDEX_DTYPE, WINDOW_W, W_STEP, TAPS_A, TAPS_B, TAPS_O, OUT_W, OUT_CHUNK,
                         KERNEL_W, EPILOGUE, BLOCK_M, channels)
    else:
        y_offsets = y_rows[:, None] + (co * stride_yc)[None, :]
        store_mask = row_mask[:, None] & col_mask[None, :]
        epilogue_store(
            acc, bias_ptr, stride_b, y_ptr, y_offsets, co, col_mask, store_mask, HAS_BIAS, ACTIVATION, NEGATIVE_SLOPE
        )


@triton.jit
def _accumulate(acc, a, b, rows_ok, MASK_PRODUCTS: tl.constexpr, ACC_DTYPE: tl.constexpr, DOT_PRECISION: tl.constexpr,
                DOT_IN_FP32: tl.constexpr):
    """``acc + a @ b``; with MASK_PRODUCTS, the product added only to the rows ``rows_ok`` reads in range."""
    if MASK_PRODUCTS:
        partial = dot_acc(a, b, tl.zeros(acc.shape, dtype=ACC_DTYPE), ACC_DTYPE, DOT_PRECISION, DOT_IN_FP32)
        return acc + tl.where(rows_ok[:, None], partial, 0.0)
    return dot_acc(a, b, acc, ACC_DTYPE, DOT_PRECISION, DOT_IN_FP32)


@triton.jit
def _pick(acc, src, ok, TILE_ROWS: tl.constexpr, WINDOW_W: tl.constexpr, TAPS: tl.constexpr, TAPS_O: tl.constexpr,
          OUT_W: tl.constexpr, CHANNELS: tl.constexpr):
    """Per tile row, output column ``o`` and channel: the sum over ``j`` of ``acc``'s entry in row ``src[o, j]`` of
    the row's (window column, tap) rows where ``ok[o, j]``. ``acc``'s rows are (tile row, window column), its
    columns (tap, channel): seen as ``[tile row, window column x tap, channel]``, a gather along the middle axis."""
    products = tl.reshape(acc, (TILE_ROWS, WINDOW_W * TAPS, CHANNELS))
    index = tl.where(ok, src, 0).to(tl.int32)
    index = tl.broadcast_to(tl.reshape(index, (1, OUT_W * TAPS_O, 1)), (TILE_ROWS, OUT_W * TAPS_O, CHANNELS))
    picked = tl.reshape(tl.gather(products, index, 1), (TILE_ROWS, OUT_W, TAPS_O, CHANNELS))
    picked = tl.where(tl.reshape(ok, (1, OUT_W, TAPS_O, 1)), picked, 0.0)
    return tl.sum(picked, axis=2)


@triton.jit
def _gather_taps(acc, u, ok, TILE_ROWS: tl.constexpr, WINDOW_W: tl.constexpr, TAPS: tl.constexpr, X: tl.constexpr,
                 CHANNELS: tl.constexpr):
    """``[tile row, x, tap, channel]``: the product of window column ``u[x, tap]`` and that tap where ``ok[x, tap]``,
    else 0. ``acc``'s rows are (tile row, window column), its columns (tap, channel): seen as ``[tile row, window
    column, tap, channel]``, a gather along the window (a short axis, held by the lanes of one warp)."""
    products = tl.reshape(acc, (TILE_ROWS, WINDOW_W, TAPS, CHANNELS))
    index = tl.reshape(tl.where(ok, u, 0).to(tl.int32), (1, X, TAPS, 1))
    index = tl.broadcast_to(index, (TILE_ROWS, X, TAPS, CHANNELS))
    picked = tl.gather(products, index, 1)
    return tl.where(tl.reshape(ok, (1, X, TAPS, 1)), picked, 0.0)


@triton.jit
def _window_epilogue(acc, acc2, bias_ptr, stride_b, y_ptr, table_ptr, co, col_mask, pid_m, w_tile, a0, rows, q_rows_d,
                     q_rows_h, q_d, q_h, r_d, r_h, IW, W_TABLE, W_TILES, W_OWN, OW, stride_yn, stride_yc, stride_yd,
                     stride_yh, stride_yw, NDIM: tl.constexpr, XS_W: tl.constexpr, OS_D: tl.constexpr,
                     OS_H: tl.constexpr,
                     OS_W: tl.constexpr, DSTEP_W: tl.constexpr, KSTEP_W: tl.constexpr, HAS_BIAS: tl.constexpr,
                     ACTIVATION: tl.constexpr, NEGATIVE_SLOPE: tl.constexpr, INDEX_DTYPE: tl.constexpr,
                     WINDOW_W: tl.constexpr, W_STEP: tl.constexpr, TAPS_A: tl.constexpr, TAPS_B: tl.constexpr,
                     TAPS_O: tl.constexpr, OUT_W: tl.constexpr, OUT_CHUNK: tl.constexpr, KERNEL_W: tl.constexpr,
                     EPILOGUE: tl.constexpr, BLOCK_M: tl.constexpr, CHANNELS: tl.constexpr):
    """The window variant's epilogue: output column ``o`` of residue ``r = o % OS_W`` adds, for each tap ``j`` of
    its residue, the product's row of input column ``u = (o // OS_W)*XS_W + delta_0(r) + j*DSTEP_W`` in column
    block ``k_0(r) + j*KSTEP_W``, when ``u`` is inside the input (taps outside it read zeros in torch's sum); then
    bias, activation and one store of ``OUT_W`` consecutive output columns of each row (every W phase)."""
    tile_rows: tl.constexpr = BLOCK_M // WINDOW_W
    # The window's output columns [o_lo, o_hi): every column whose in-range taps lie inside the window.
    o_lo = tl.where(w_tile == 0, 0, (w_tile * (W_STEP * OS_W) - W_OWN + (XS_W - 1)) // XS_W)
    o_hi = tl.where(w_tile == W_TILES - 1, OW, ((w_tile + 1) * (W_STEP * OS_W) - W_OWN + (XS_W - 1)) // XS_W)

    # The rows (n, qd, qh) again, one per tile row, for their output offsets.
    offs_r = pid_m.to(INDEX_DTYPE) * tile_rows + tl.arange(0, tile_rows).to(INDEX_DTYPE)
    rest = offs_r
    y_rows = rest * 0
    row_mask = offs_r < rows
    if NDIM >= 2:
        y_rows += (rest % q_rows_h * OS_H + r_h) * stride_yh
        row_mask &= rest % q_rows_h < q_h
        rest = rest // q_rows_h
    if NDIM == 3:
        y_rows += (rest % q_rows_d * OS_D + r_d) * stride_yd
        row_mask &= rest % q_rows_d < q_d
        rest = rest // q_rows_d
    y_rows += rest * stride_yn

    shape: tl.constexpr = (tile_rows * OUT_CHUNK, CHANNELS)
    if EPILOGUE == 1:
        # Output column o = (a0 + m)*OS_W - padding + kw of window column m and tap kw: with kw - padding =
        # j'*OS_W + c (0 <= c < OS_W), o = (a0 + m + j')*OS_W + c, so tap kw's products land on residue c
        # shifted by j' window columns. Column block j*OS_W + c holds the tap of residue c whose j' is
        # j - delta_0 - [c + r0 >= OS_W] (delta_0 and r0 = padding % OS_W from residue 0's row of the table): a
        # gather along the window per block, then a sum over j, leaves the columns in memory order from a0*OS_W.
        residue0 = table_ptr + W_TABLE * TABLE_COLUMNS
        delta0 = tl.load(residue0 + 11)
        r0 = tl.load(residue0 + 14)
        m0 = o_lo // OS_W - a0  # the first column the window writes is in group a0 + m0 of OS_W columns
    # OUT_CHUNK columns at a time: what a gather produces stays as small as its source (or smaller), whatever the
    # stride (a 1-D stride of 8 writes 8 output columns per window column).
    for chunk in tl.static_range(OUT_W // OUT_CHUNK):
        if EPILOGUE == 1:
            o = (a0 + m0) * OS_W + chunk * OUT_CHUNK + tl.arange(0, OUT_CHUNK)
            m = m0 + chunk * (OUT_CHUNK // OS_W) + tl.arange(0, OUT_CHUNK // OS_W)
            block = tl.arange(0, TAPS_A)
            c = block % OS_W
            shift = block // OS_W - delta0 - ((c + r0) >= OS_W).to(tl.int32)
            u = m[:, None] - shift[None, :]  # the window column of block's product
            tap = (c + r0) % OS_W + block // OS_W * OS_W
            ok = (u >= 0) & (u < WINDOW_W) & (a0 + u < IW) & (tap < KERNEL_W)[None, :]
            picked = _gather_taps(acc, u, ok, tile_rows, WINDOW_W, TAPS_A, OUT_CHUNK // OS_W, CHANNELS)
            picked = tl.reshape(picked, (tile_rows, OUT_CHUNK // OS_W, TAPS_A // OS_W, OS_W, CHANNELS))
            out = tl.sum(picked, axis=2)
            if TAPS_B > 0:  # the taps past TAPS_A, in order: each onto its own residue
                tap = TAPS_A + tl.arange(0, TAPS_B)
                shift = (tap - r0) // OS_W - delta0
                u = m[:, None] - shift[None, :]
                ok = (u >= 0) & (u < WINDOW_W) & (a0 + u < IW) & (tap < KERNEL_W)[None, :]
                picked = _gather_taps(acc2, u, ok, tile_rows, WINDOW_W, TAPS_B, OUT_CHUNK // OS_W, CHANNELS)
                onto = ((tap - r0) % OS_W)[:, None] == tl.arange(0, OS_W)[None, :]
                picked = tl.where(onto[None, None, :, :, None], picked[:, :, :, None, :], 0.0)
                out += tl.sum(picked, axis=2)
            out = tl.reshape(out, (tile_rows, OUT_CHUNK, CHANNELS))
        elif EPILOGUE == 2:
            # One residue (the input gradient, or a forward of stride 1): every tap adds to every column.
            o = o_lo + chunk * OUT_CHUNK + tl.arange(0, OUT_CHUNK)
            u0 = o * XS_W + tl.load(table_ptr + W_TABLE * TABLE_COLUMNS + 11) - a0
            kw = tl.arange(0, TAPS_A)
            u = u0[:, None] + kw[None, :] * DSTEP_W
            ok = (u >= 0) & (u < WINDOW_W) & (a0 + u < IW)
            out = tl.sum(_gather_taps(acc, u, ok, tile_rows, WINDOW_W, TAPS_A, OUT_CHUNK, CHANNELS), axis=2)
            if TAPS_B > 0:
                kw = TAPS_A + tl.arange(0, TAPS_B)
                u = u0[:, None] + kw[None, :] * DSTEP_W
                ok = (u >= 0) & (u < WINDOW_W) & (a0 + u < IW) & (kw < KERNEL_W)[None, :]
                out += tl.sum(_gather_taps(acc2, u, ok, tile_rows, WINDOW_W, TAPS_B, OUT_CHUNK, CHANNELS), axis=2)
        else:
            # Any geometry: each column's taps from the table, picked out of the product's (column, tap) rows.
            o = o_lo + chunk * OUT_CHUNK + tl.arange(0, OUT_CHUNK)
            residue = table_ptr + (W_TABLE + o % OS_W) * TABLE_COLUMNS
            taps = tl.load(residue + 8)
            u = (o // OS_W * XS_W + tl.load(residue + 11))[:, None] + tl.arange(0, TAPS_O)[None, :] * DSTEP_W
            kw = tl.load(residue + 14)[:, None] + tl.arange(0, TAPS_O)[None, :] * KSTEP_W
            ok = (tl.arange(0, TAPS_O)[None, :] < taps[:, None]) & (u >= a0) & (u < a0 + WINDOW_W) & (u < IW)
            out = _pick(acc, (u - a0) * TAPS_A + kw, ok & (kw < TAPS_A), tile_rows, WINDOW_W, TAPS_A, TAPS_O,
                        OUT_CHUNK, CHANNELS)
            if TAPS_B > 0:
                out += _pick(acc2, (u - a0) * TAPS_B + kw - TAPS_A, ok & (kw >= TAPS_A), tile_rows, WINDOW_W,
                             TAPS_B, TAPS_O, OUT_CHUNK, CHANNELS)
        y_offsets = (y_rows[:, None, None] + (o.to(INDEX_DTYPE) * stride_yw)[None, :, None]
                     + (co * stride_yc)[None, None, :])
        store_mask = row_mask[:, None, None] & ((o >= o_lo) & (o < o_hi))[None, :, None] & col_mask[None, None, :]
        epilogue_store(tl.reshape(out, shape), bias_ptr, stride_b, y_ptr, tl.reshape(y_offsets, shape), co,
                       col_mask, tl.reshape(store_mask, shape), HAS_BIAS, ACTIVATION, NEGATIVE_SLOPE)
