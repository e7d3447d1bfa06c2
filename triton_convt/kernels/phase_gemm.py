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
from .epilogue import epilogue_store, epilogue_values, shuffled_store

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
              MAX_T_H: tl.constexpr, MAX_T_W: tl.constexpr, NDIM: tl.constexpr, MASK_DTYPE: tl.constexpr):
    """Each row's in-range taps as a bitmask, computed once per program: bit ``(jd*t_h + jh)*t_w + jw`` (the
    tap's number in the loop's order) is set where tap ``(jd, jh, jw)`` of the phase reads inside the input along
    every axis."""
    valid = tl.zeros(row_mask.shape, dtype=MASK_DTYPE)
    for jd in tl.static_range(MAX_T_D):
        ok_d = row_mask
        if NDIM == 3:
            ok_d = ok_d & _tap_in_range(u_d, delta_d, t_d, ID, jd, DSTEP_D)
        for jh in tl.static_range(MAX_T_H):
            ok_h = ok_d
            if NDIM >= 2:
                ok_h = ok_h & _tap_in_range(u_h, delta_h, t_h, IH, jh, DSTEP_H)
            for jw in tl.static_range(MAX_T_W):
                ok = ok_h & _tap_in_range(u_w, delta_w, t_w, IW, jw, DSTEP_W)
                one = tl.full(row_mask.shape, 1, MASK_DTYPE)
                valid |= tl.where(ok, one << ((jd * t_h + jh) * t_w + jw), 0)
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
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr,
):
    """One ``[BLOCK_M, BLOCK_N]`` output tile of one phase of one group.

    Args:
        x_ptr: the gathered operand ``[N, C, ID, IH, IW]`` (forward: the input; input gradient: the output
            gradient), any strides.
        w_ptr: the weight, any strides; the tile of reduction channel ``c`` and column ``j`` of group ``g`` at tap
            ``(kd, kh, kw)`` is at ``g*stride_wg + c*stride_wk + j*stride_wn + kd*stride_wd + ...``. The fast
            layouts have ``stride_wn == 1`` or ``stride_wk == 1`` (16-byte loads along one tile axis).
        bias_ptr: bias ``[C_COL_G * GROUPS]``, any stride (ignored unless HAS_BIAS).
        y_ptr: the output ``[N, C_COL_G * GROUPS, OD, OH, OW]``, any strides; every element is written exactly
            once (the output's spatial size reaches the kernel only through the phase table's extents).
        table_ptr: int32 ``[phases, TABLE_COLUMNS]``, one row per phase in launch order (heaviest first): residues
            ``r`` (d, h, w), extents ``Q`` (d, h, w), tap counts ``T`` (d, h, w), first input offsets ``delta_0``
            (d, h, w) and first weight taps ``k_0`` (d, h, w).
        N: batch size.
        ID, IH, IW: the gathered operand's spatial size (taps reading outside it read zeros).
        C_RED_G: reduction channels per group (forward: input channels; input gradient: output channels).
        C_COL_G: output channels per group of this GEMM (the columns).
        stride_x*, stride_y*: element strides of x and y per dimension (n, c, d, h, w).
        stride_wk, stride_wn, stride_wg: the weight's element strides along reduction channels, columns, and from
            one group to the next.
        stride_wd, stride_wh, stride_ww: the weight's element strides along the kernel's axes.
        stride_b: the bias's element stride.
        GROUPS: number of groups.
        M_TILES: row tiles of the largest phase; programs past their own phase's rows exit at once.
        N_TILES: column tiles, ``cdiv(C_COL_G, BLOCK_N)``.
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
            digits of ``co % r^2`` in base ``r`` (the table gives ``OS = r``). conv2d + pixel_shuffle in one launch.
        SHUFFLE_BLOCKS: every column tile is whole runs of ``r^2`` sub-pixels (``r^2`` a power of two dividing
            BLOCK_N and the group's columns): the tile is stored as ``r^2`` runs of consecutive channels; else
            column by column (:func:`.epilogue.shuffled_store`).
        ACC_DTYPE: accumulator dtype (fp32, or fp64 for fp64 tensors).
        DOT_PRECISION: ``tl.dot`` input precision ("tf32" or "ieee").
        DOT_IN_FP32: cast operands to fp32 before ``tl.dot`` (bf16 under the interpreter only).
        INDEX_DTYPE: tl.int32, or tl.int64 when some tensor spans 2^31 elements or more.
        MASK_PRODUCTS: add each tap's partial product only to the rows whose input is in range (non-finite
            weights on CPU, where ``0 * inf`` must not reach rows that torch never multiplies).
        BLOCK_M, BLOCK_N, BLOCK_K: tile sizes (rows, columns, reduction channels per step).
        GROUP_M: row tiles per group of the grouped launch order (neighbouring programs share weight tiles).
    """
    # Launch order: phases outermost (the table lists the heaviest first, so they start first and the light
    # ones fill the tail), then groups, then row tiles in groups of GROUP_M with the column tiles inside.
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
    rows = N * q_d * q_h * q_w
    if pid_m * BLOCK_M >= rows:
        return

    # Decode the tile's rows once: (n, qd, qh, qw), their offsets in x and y, and which taps each row may read.
    offs_m = pid_m.to(INDEX_DTYPE) * BLOCK_M + tl.arange(0, BLOCK_M).to(INDEX_DTYPE)
    row_mask = offs_m < rows
    qw = offs_m % q_w
    rest = offs_m // q_w
    x_rows = qw * XS_W * stride_xw
    y_rows = (qw * OS_W + r_w) * stride_yw
    if NDIM >= 2:
        qh = rest % q_h
        rest = rest // q_h
        x_rows += qh * XS_H * stride_xh
        y_rows += (qh * OS_H + r_h) * stride_yh
    if NDIM == 3:
        qd = rest % q_d
        rest = rest // q_d
        x_rows += qd * XS_D * stride_xd
        y_rows += (qd * OS_D + r_d) * stride_yd
    x_rows += rest * stride_xn
    y_rows += rest * stride_yn

    # Which taps each row reads inside the input: a bitmask per row when the phase's taps fit in one
    # (at most 63), so that the loop's border test is one AND per row; else per-axis compares in the loop.
    u_w = qw * XS_W
    u_h = qh * XS_H if NDIM >= 2 else u_w
    u_d = qd * XS_D if NDIM == 3 else u_w
    if BITMASK:
        valid = _row_taps(u_d, u_h, u_w, delta_d, delta_h, delta_w, t_d, t_h, t_w, ID, IH, IW, row_mask,
                          DSTEP_D, DSTEP_H, DSTEP_W, MAX_T_D, MAX_T_H, MAX_T_W, NDIM, MASK_DTYPE)

    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N).to(INDEX_DTYPE)
    col_mask = offs_n < C_COL_G
    offs_k = tl.arange(0, BLOCK_K).to(INDEX_DTYPE)
    # The operand tiles' pointers advance by increments, as in a plain GEMM: one channel block, or at the end
    # of a tap's channels a jump to the first channel block of the next tap (w fastest, then h, then d).
    # Scalars in INDEX_DTYPE from the first factor on, so that the int64 path forms every jump in int64.
    k_blocks = tl.cdiv(C_RED_G, BLOCK_K)
    one = tl.full((), 1, INDEX_DTYPE)
    x_chan = one * BLOCK_K * stride_xc
    w_chan = one * BLOCK_K * stride_wk
    x_jump_w = one * DSTEP_W * stride_xw - (k_blocks - 1) * x_chan
    w_jump_w = one * KSTEP_W * stride_ww - (k_blocks - 1) * w_chan
    x_jump_h = one * DSTEP_H * stride_xh - (t_w - 1) * (one * DSTEP_W * stride_xw) - (k_blocks - 1) * x_chan
    w_jump_h = one * KSTEP_H * stride_wh - (t_w - 1) * (one * KSTEP_W * stride_ww) - (k_blocks - 1) * w_chan
    x_jump_d = (one * DSTEP_D * stride_xd - (t_h - 1) * (one * DSTEP_H * stride_xh)
                - (t_w - 1) * (one * DSTEP_W * stride_xw) - (k_blocks - 1) * x_chan)
    w_jump_d = (one * KSTEP_D * stride_wd - (t_h - 1) * (one * KSTEP_H * stride_wh)
                - (t_w - 1) * (one * KSTEP_W * stride_ww) - (k_blocks - 1) * w_chan)
    x_first = ((group * C_RED_G) * stride_xc + one * delta_d * stride_xd + one * delta_h * stride_xh
               + one * delta_w * stride_xw)
    a_ptrs = x_ptr + x_first + (x_rows[:, None] + (offs_k * stride_xc)[None, :])
    w_first = group * stride_wg + one * k0_d * stride_wd + one * k0_h * stride_wh + one * k0_w * stride_ww
    b_ptrs = w_ptr + w_first + (offs_k[:, None] * stride_wk + (offs_n * stride_wn)[None, :])

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=ACC_DTYPE)
    c0 = 0
    jw = 0
    jh = 0
    jd = 0
    bit = tl.full((), 1, MASK_DTYPE)  # the current tap's bit in the rows' masks: taps are numbered in loop order
    for _ in tl.range(0, k_blocks * t_d * t_h * t_w):
        if BITMASK:
            rows_ok = (valid & bit) != 0
        else:
            rows_ok = row_mask & _tap_in_range(u_w, delta_w, t_w, IW, jw, DSTEP_W)
            if NDIM >= 2:
                rows_ok &= _tap_in_range(u_h, delta_h, t_h, IH, jh, DSTEP_H)
            if NDIM == 3:
                rows_ok &= _tap_in_range(u_d, delta_d, t_d, ID, jd, DSTEP_D)
        if EVEN_K:
            a_mask = rows_ok[:, None]
            b_mask = col_mask[None, :]
        else:
            k_ok = offs_k < C_RED_G - c0
            a_mask = rows_ok[:, None] & k_ok[None, :]
            b_mask = k_ok[:, None] & col_mask[None, :]
        a = tl.load(a_ptrs, mask=a_mask, other=0.0)
        b = tl.load(b_ptrs, mask=b_mask, other=0.0)
        if MASK_PRODUCTS:
            partial = dot_acc(a, b, tl.zeros((BLOCK_M, BLOCK_N), dtype=ACC_DTYPE), ACC_DTYPE, DOT_PRECISION,
                              DOT_IN_FP32)
            acc += tl.where(rows_ok[:, None], partial, 0.0)
        else:
            acc = dot_acc(a, b, acc, ACC_DTYPE, DOT_PRECISION, DOT_IN_FP32)
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

    co = group * C_COL_G + offs_n
    if SHUFFLE == 1:
        y_offsets = y_rows[:, None] + (co * stride_yc)[None, :]
        store_mask = row_mask[:, None] & col_mask[None, :]
        epilogue_store(
            acc, bias_ptr, stride_b, y_ptr, y_offsets, co, col_mask, store_mask, HAS_BIAS, ACTIVATION, NEGATIVE_SLOPE
        )
    else:  # conv2d + pixel_shuffle: column co (the bias's index too) goes to sub-pixel co % r^2 of channel co // r^2
        values = epilogue_values(acc, bias_ptr, stride_b, co, col_mask, HAS_BIAS, ACTIVATION, NEGATIVE_SLOPE)
        first_channel = (group * C_COL_G + pid_n * BLOCK_N) // (SHUFFLE * SHUFFLE)  # exact when SHUFFLE_BLOCKS
        channels = (C_COL_G - pid_n * BLOCK_N) // (SHUFFLE * SHUFFLE)
        shuffled_store(values, y_ptr, y_rows, row_mask, co, col_mask, first_channel, channels, stride_yc, stride_yh,
                       stride_yw, SHUFFLE, SHUFFLE_BLOCKS, BLOCK_M, BLOCK_N)  # fmt: skip
