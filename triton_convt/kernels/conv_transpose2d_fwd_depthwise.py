"""Forward ConvTranspose2d for one input channel per group (depthwise, any channel multiplier), without tl.dot.

With ``C_in / groups == 1`` the GEMM of :mod:`.conv_transpose2d_fwd` has a reduction of one channel per tap, and
``tl.dot`` tiles of at least 16 would issue 16x (and, with one output channel per group, 256x) the useful work.
Here each program computes a ``[BLOCK_M, BLOCK_C]`` tile of one phase — output pixels of the phase x output
channels of *all* groups — as one fused multiply-add per tap: output channel ``co`` reads input channel
``co // MULT`` and weight ``w[co // MULT, co % MULT, kh, kw]``. Phases and taps are those of the GEMM kernel
(the same closed form, :func:`.conv_transpose2d_fwd.phase_tap`); FCN's bilinear upsampling is this case.

Each tap's product is masked to its in-range rows, so non-finite weights give torch's CPU result here without a
separate variant: in an elementwise kernel the mask costs one select per product.
"""

import triton
import triton.language as tl

from .conv_transpose2d_fwd import phase_extent, phase_rows, phase_tap
from .epilogue import epilogue_store


@triton.jit
def conv_transpose2d_fwd_depthwise_kernel(
    x_ptr,
    w_ptr,
    bias_ptr,
    y_ptr,
    N,
    H,
    W,
    OH,
    OW,
    C_OUT,
    MULT,
    PAD_H,
    PAD_W,
    stride_xn,
    stride_xc,
    stride_xh,
    stride_xw,
    stride_wi,
    stride_wo,
    stride_wh,
    stride_ww,
    stride_yn,
    stride_yc,
    stride_yh,
    stride_yw,
    M_TILES,
    C_TILES,
    KH: tl.constexpr,
    KW: tl.constexpr,
    SH: tl.constexpr,
    SW: tl.constexpr,
    DH: tl.constexpr,
    DW: tl.constexpr,
    GCD_H: tl.constexpr,
    STEP_H: tl.constexpr,
    INV_H: tl.constexpr,
    TAPS_H: tl.constexpr,
    GCD_W: tl.constexpr,
    STEP_W: tl.constexpr,
    INV_W: tl.constexpr,
    TAPS_W: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    ACTIVATION: tl.constexpr,
    NEGATIVE_SLOPE: tl.constexpr,
    ACC_DTYPE: tl.constexpr,
    INDEX_DTYPE: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    """One ``[BLOCK_M, BLOCK_C]`` output tile of one phase.

    Args:
        x_ptr: input ``[N, C_in, H, W]`` with ``C_in == groups``, any strides.
        w_ptr: weight ``[C_in, MULT, KH, KW]``, any strides.
        bias_ptr: bias ``[C_out]`` (ignored unless HAS_BIAS).
        y_ptr: output ``[N, C_out, OH, OW]``, any strides; every element is written exactly once.
        N, H, W: batch and input spatial size.
        OH, OW: output spatial size.
        C_OUT: output channels (``groups * MULT``).
        MULT: output channels per group (the channel multiplier).
        PAD_H, PAD_W: padding.
        stride_x*, stride_w*, stride_y*: element strides per dimension.
        M_TILES: row tiles of the largest phase; programs past their own phase's rows exit at once.
        C_TILES: channel tiles, ``cdiv(C_OUT, BLOCK_C)``.
        KH, KW, SH, SW, DH, DW, GCD_*, STEP_*, INV_*, TAPS_*: as in the GEMM kernel.
        HAS_BIAS, ACTIVATION, NEGATIVE_SLOPE: the epilogue's, as in the GEMM kernel.
        ACC_DTYPE: accumulator dtype (fp32, or fp64 for fp64 tensors).
        INDEX_DTYPE: tl.int32, or tl.int64 when some tensor spans 2^31 elements or more.
        BLOCK_M, BLOCK_C: tile sizes (output pixels of the phase, output channels).
    """
    pid = tl.program_id(0).to(INDEX_DTYPE)
    pid_c = pid % C_TILES
    rest = pid // C_TILES
    pid_m = rest % M_TILES
    phase = rest // M_TILES
    rh, rw, q_h, q_w, rows = phase_extent(phase, N, OH, OW, SH, SW)
    if pid_m * BLOCK_M >= rows:
        return
    row_mask, n, qh, qw = phase_rows(pid_m, q_h, q_w, rows, BLOCK_M, INDEX_DTYPE)
    co = pid_c * BLOCK_C + tl.arange(0, BLOCK_C).to(INDEX_DTYPE)
    col_mask = co < C_OUT
    ci = co // MULT  # decoded once per program, not per tap
    x_base = (n * stride_xn + qh * stride_xh + qw * stride_xw)[:, None] + (ci * stride_xc)[None, :]
    w_base = ci * stride_wi + (co - ci * MULT) * stride_wo

    acc = tl.zeros((BLOCK_M, BLOCK_C), dtype=ACC_DTYPE)
    rph = rh + PAD_H
    rpw = rw + PAD_W
    for jh in tl.static_range(TAPS_H):
        kh, dh, ok_tap_h = phase_tap(rph, jh, KH, SH, DH, GCD_H, STEP_H, INV_H)
        ok_h = row_mask & (qh >= -dh) & (qh < H - dh)
        for jw in tl.static_range(TAPS_W):
            kw, dw, ok_tap_w = phase_tap(rpw, jw, KW, SW, DW, GCD_W, STEP_W, INV_W)
            if ok_tap_h & ok_tap_w:
                ok = ok_h & (qw >= -dw) & (qw < W - dw)
                x = tl.load(x_ptr + x_base + (dh * stride_xh + dw * stride_xw),
                            mask=ok[:, None] & col_mask[None, :], other=0.0)
                w = tl.load(w_ptr + w_base + (kh * stride_wh + kw * stride_ww), mask=col_mask, other=0.0)
                acc += tl.where(ok[:, None], x.to(ACC_DTYPE) * w.to(ACC_DTYPE)[None, :], 0.0)

    oh = qh * SH + rh
    ow = qw * SW + rw
    y_offsets = (n * stride_yn + oh * stride_yh + ow * stride_yw)[:, None] + (co * stride_yc)[None, :]
    store_mask = row_mask[:, None] & col_mask[None, :]
    epilogue_store(acc, bias_ptr, y_ptr, y_offsets, co, col_mask, store_mask, HAS_BIAS, ACTIVATION, NEGATIVE_SLOPE)
