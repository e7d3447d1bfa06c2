"""The epilogue of the phase GEMM's window variant (NCHW, NCL, NCDHW inputs; :mod:`triton_convt.launch.window`):
each output column adds its W taps out of the product, whose rows are window columns and whose columns are taps x
channels (a gather along the window), then bias, activation and one store of whole output rows."""

import triton
import triton.language as tl

from .epilogue import epilogue_store


@triton.jit
def _pick(acc, src, ok, TILE_ROWS: tl.constexpr, WINDOW_W: tl.constexpr, TAPS: tl.constexpr, TAPS_O: tl.constexpr,
          OUT_W: tl.constexpr, CHANNELS: tl.constexpr):  # fmt: skip
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
                 CHANNELS: tl.constexpr):  # fmt: skip
    """``[tile row, x, tap, channel]``: the product of window column ``u[x, tap]`` and that tap where ``ok[x, tap]``,
    else 0. ``acc``'s rows are (tile row, window column), its columns (tap, channel): seen as ``[tile row, window
    column, tap, channel]``, a gather along the window (a short axis, held by the lanes of one warp)."""
    products = tl.reshape(acc, (TILE_ROWS, WINDOW_W, TAPS, CHANNELS))
    index = tl.reshape(tl.where(ok, u, 0).to(tl.int32), (1, X, TAPS, 1))
    index = tl.broadcast_to(index, (TILE_ROWS, X, TAPS, CHANNELS))
    picked = tl.gather(products, index, 1)
    return tl.where(tl.reshape(ok, (1, X, TAPS, 1)), picked, 0.0)


@triton.jit
def window_epilogue(acc, acc2, bias_ptr, stride_b, y_ptr, table_ptr, co, col_mask, pid_m, w_tile, a0, rows, q_rows_d,
                    q_rows_h, q_d, q_h, r_d, r_h, IW, W_TABLE, W_TILES, W_OWN, OW, stride_yn, stride_yc, stride_yd,
                    stride_yh, stride_yw, NDIM: tl.constexpr, XS_W: tl.constexpr, OS_D: tl.constexpr,
                    OS_H: tl.constexpr, OS_W: tl.constexpr, DSTEP_W: tl.constexpr, KSTEP_W: tl.constexpr,
                    HAS_BIAS: tl.constexpr, ACTIVATION: tl.constexpr, NEGATIVE_SLOPE: tl.constexpr,
                    INDEX_DTYPE: tl.constexpr, WINDOW_W: tl.constexpr, W_STEP: tl.constexpr, TAPS_A: tl.constexpr,
                    TAPS_B: tl.constexpr, TAPS_O: tl.constexpr, OUT_W: tl.constexpr, OUT_CHUNK: tl.constexpr,
                    KERNEL_W: tl.constexpr, EPILOGUE: tl.constexpr, TABLE_COLUMNS: tl.constexpr,
                    BLOCK_M: tl.constexpr, CHANNELS: tl.constexpr):  # fmt: skip
    """The window variant's epilogue (arguments as :func:`.phase_gemm.phase_gemm_kernel`'s; ``acc`` and ``acc2`` the
    tile's two products, ``a0`` its window's first input column, ``rows`` and ``q_rows_*`` its row grid, ``q_*`` and
    ``r_*`` the phase's extents and residues). Output column ``o`` of residue ``r = o % OS_W`` adds, for each tap
    ``j`` of its residue, the product's row of input column ``u = (o // OS_W)*XS_W + delta_0(r) + j*DSTEP_W`` in the
    column block of tap ``k_0(r) + j*KSTEP_W``, when ``u`` is inside the input (taps outside it read zeros in
    torch's sum): as a shift per tap (EPILOGUE 1 and 2) or from the table per column (0). Then bias, activation and
    one store of up to ``OUT_W`` consecutive output columns of each row, every W phase, ``OUT_CHUNK`` at a time."""
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
                        OUT_CHUNK, CHANNELS)  # fmt: skip
            if TAPS_B > 0:
                out += _pick(
                    acc2,
                    (u - a0) * TAPS_B + kw - TAPS_A,
                    ok & (kw >= TAPS_A),
                    tile_rows,
                    WINDOW_W,
                    TAPS_B,
                    TAPS_O,
                    OUT_CHUNK,
                    CHANNELS,
                )
        y_offsets = (y_rows[:, None, None] + (o.to(INDEX_DTYPE) * stride_yw)[None, :, None]
                     + (co * stride_yc)[None, None, :])  # fmt: skip
        store_mask = row_mask[:, None, None] & ((o >= o_lo) & (o < o_hi))[None, :, None] & col_mask[None, None, :]
        epilogue_store(tl.reshape(out, shape), bias_ptr, stride_b, y_ptr, tl.reshape(y_offsets, shape), co,
                       col_mask, tl.reshape(store_mask, shape), HAS_BIAS, ACTIVATION, NEGATIVE_SLOPE)  # fmt: skip
