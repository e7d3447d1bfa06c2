"""The body of :func:`triton_convt.kernels.phase_gemm.phase_gemm_kernel`: one output tile of one phase (the
loop over taps x channel blocks, the row bitmasks, the pointer increments, the epilogue), and the helpers it takes.
The window variant's epilogue is :mod:`.window_epilogue`."""

import triton
import triton.language as tl

from .dot import dot_acc
from .epilogue import epilogue_store, epilogue_values, shuffled_store
from .window_epilogue import window_epilogue

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
              W_TAPS: tl.constexpr):  # fmt: skip
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
def gemm_tile(x_ptr, w_ptr, bias_ptr, y_ptr, table_ptr, phase, group, pid_m, pid_n, w_tile, N, ID, IH, IW, C_RED_G,
          C_COL_G, stride_xn, stride_xc, stride_xd, stride_xh, stride_xw, stride_wk, stride_wn, stride_wg, stride_wd,
          stride_wh, stride_ww, stride_yn, stride_yc, stride_yd, stride_yh, stride_yw, stride_b, W_TABLE, W_TILES,
          W_OWN, OW, Q_D_MAX, Q_H_MAX, NDIM: tl.constexpr, XS_D: tl.constexpr, XS_H: tl.constexpr,
          XS_W: tl.constexpr, OS_D: tl.constexpr, OS_H: tl.constexpr, OS_W: tl.constexpr, DSTEP_D: tl.constexpr,
          DSTEP_H: tl.constexpr, DSTEP_W: tl.constexpr, KSTEP_D: tl.constexpr, KSTEP_H: tl.constexpr,
          KSTEP_W: tl.constexpr, MAX_T_D: tl.constexpr, MAX_T_H: tl.constexpr, MAX_T_W: tl.constexpr,
          BITMASK: tl.constexpr, MASK_DTYPE: tl.constexpr, EVEN_K: tl.constexpr, HAS_BIAS: tl.constexpr,
          ACTIVATION: tl.constexpr, NEGATIVE_SLOPE: tl.constexpr, SHUFFLE: tl.constexpr,
          SHUFFLE_BLOCKS: tl.constexpr, ACC_DTYPE: tl.constexpr,
          DOT_PRECISION: tl.constexpr, DOT_IN_FP32: tl.constexpr, INDEX_DTYPE: tl.constexpr,
          MASK_PRODUCTS: tl.constexpr, W_WINDOW: tl.constexpr, WINDOW_W: tl.constexpr, W_STEP: tl.constexpr,
          KERNEL_W: tl.constexpr, TAPS_N: tl.constexpr, TAPS_A: tl.constexpr, TAPS_B: tl.constexpr,
          TAPS_O: tl.constexpr, OUT_W: tl.constexpr, OUT_CHUNK: tl.constexpr, EPILOGUE: tl.constexpr,
          X_UNIT: tl.constexpr,
          BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):  # fmt: skip
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
                          DSTEP_D, DSTEP_H, DSTEP_W, MAX_T_D, MAX_T_H, MAX_T_W, NDIM, MASK_DTYPE,
                          not W_WINDOW)  # fmt: skip

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
    x_jump_d = (
        one * DSTEP_D * stride_xd
        - (t_h - 1) * (one * DSTEP_H * stride_xh)
        - (t_w - 1) * (one * step_xw * stride_xw)
        - (k_blocks - 1) * x_chan
    )
    w_jump_d = (one * KSTEP_D * stride_wd - (t_h - 1) * (one * KSTEP_H * stride_wh)
                - (t_w - 1) * (one * step_ww * stride_ww) - (k_blocks - 1) * w_chan)  # fmt: skip
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
        window_epilogue(acc, acc2, bias_ptr, stride_b, y_ptr, table_ptr, co, col_mask, pid_m, w_tile, a0, rows,
                        q_rows_d, q_rows_h, q_d, q_h, r_d, r_h, IW, W_TABLE, W_TILES, W_OWN, OW, stride_yn, stride_yc,
                        stride_yd, stride_yh, stride_yw, NDIM, XS_W, OS_D, OS_H, OS_W, DSTEP_W, KSTEP_W, HAS_BIAS,
                        ACTIVATION, NEGATIVE_SLOPE, INDEX_DTYPE, WINDOW_W, W_STEP, TAPS_A, TAPS_B, TAPS_O, OUT_W,
                        OUT_CHUNK, KERNEL_W, EPILOGUE, TABLE_COLUMNS, BLOCK_M, channels)  # fmt: skip
    elif SHUFFLE == 1:
        y_offsets = y_rows[:, None] + (co * stride_yc)[None, :]
        store_mask = row_mask[:, None] & col_mask[None, :]
        epilogue_store(
            acc, bias_ptr, stride_b, y_ptr, y_offsets, co, col_mask, store_mask, HAS_BIAS, ACTIVATION, NEGATIVE_SLOPE
        )
    else:  # conv2d + pixel_shuffle: column co (the bias's index too) goes to sub-pixel co % r^2 of channel co // r^2
        values = epilogue_values(acc, bias_ptr, stride_b, co, col_mask, HAS_BIAS, ACTIVATION, NEGATIVE_SLOPE)
        first_channel = (group * C_COL_G + pid_n * BLOCK_N) // (SHUFFLE * SHUFFLE)  # exact when SHUFFLE_BLOCKS
        out_channels = (C_COL_G - pid_n * BLOCK_N) // (SHUFFLE * SHUFFLE)
        shuffled_store(values, y_ptr, y_rows, row_mask, co, col_mask, first_channel, out_channels, stride_yc,
                       stride_yh, stride_yw, SHUFFLE, SHUFFLE_BLOCKS, BLOCK_M, BLOCK_N)  # fmt: skip


@triton.jit
def _accumulate(acc, a, b, rows_ok, MASK_PRODUCTS: tl.constexpr, ACC_DTYPE: tl.constexpr, DOT_PRECISION: tl.constexpr,
                DOT_IN_FP32: tl.constexpr):  # fmt: skip
    """``acc + a @ b``; with MASK_PRODUCTS, the product added only to the rows ``rows_ok`` reads in range."""
    if MASK_PRODUCTS:
        partial = dot_acc(a, b, tl.zeros(acc.shape, dtype=ACC_DTYPE), ACC_DTYPE, DOT_PRECISION, DOT_IN_FP32)
        return acc + tl.where(rows_ok[:, None], partial, 0.0)
    return dot_acc(a, b, acc, ACC_DTYPE, DOT_PRECISION, DOT_IN_FP32)
