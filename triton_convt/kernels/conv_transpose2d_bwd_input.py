"""Backward of ConvTranspose2d with respect to its input (gather form).

``y[n, co, o] += x[n, ci, i] * w[ci, co, k]`` for ``o = i*s - p + k*d`` makes the input gradient an ordinary strided
convolution of the output gradient: every input pixel ``i`` gathers ``dz[o]`` for its own taps ``k``, at
``o = i*s - p + k*d``, valid when ``0 <= o < O``. No phases are needed (every ``(i, k)`` pair lands on an integer
output position), every input element is written by exactly one program, and there are no atomics.

Each program computes one ``[BLOCK_M, BLOCK_N]`` tile of one group as an implicit GEMM: rows = input pixels
``(n, ih, iw)``, columns = the group's input channels, reduction = the group's output channels x all taps.
"""

import triton
import triton.language as tl

from .dot import dot_acc


@triton.jit
def conv_transpose2d_bwd_input_kernel(
    dz_ptr,
    w_ptr,
    dx_ptr,
    N,
    H,
    W,
    OH,
    OW,
    C_IN_G,
    C_OUT_G,
    PAD_H,
    PAD_W,
    stride_dzn,
    stride_dzc,
    stride_dzh,
    stride_dzw,
    stride_wi,
    stride_wo,
    stride_wh,
    stride_ww,
    stride_dxn,
    stride_dxc,
    stride_dxh,
    stride_dxw,
    GROUPS,
    M_TILES,
    N_TILES,
    KH: tl.constexpr,
    KW: tl.constexpr,
    SH: tl.constexpr,
    SW: tl.constexpr,
    DH: tl.constexpr,
    DW: tl.constexpr,
    ACC_DTYPE: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    DOT_IN_FP32: tl.constexpr,
    INDEX_DTYPE: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    """One tile of ``dx`` (input pixels x input channels) of one group.

    Args:
        dz_ptr: gradient at the pre-activation output ``[N, C_out, OH, OW]``, any strides.
        w_ptr: weight ``[C_in, C_out/groups, KH, KW]``, any strides.
        dx_ptr: input gradient ``[N, C_in, H, W]``, any strides; every element is written exactly once.
        N, H, W: batch and input spatial size.
        OH, OW: output spatial size.
        C_IN_G, C_OUT_G: input and output channels per group.
        PAD_H, PAD_W: padding of the forward call.
        stride_dz*, stride_w*, stride_dx*: element strides per dimension.
        GROUPS: number of groups.
        M_TILES, N_TILES: row tiles (``cdiv(N*H*W, BLOCK_M)``) and column tiles (``cdiv(C_IN_G, BLOCK_N)``).
        KH, KW, SH, SW, DH, DW: kernel size, stride and dilation of the forward call.
        ACC_DTYPE: accumulator dtype (fp32, or fp64 for fp64 tensors).
        DOT_PRECISION: ``tl.dot`` input precision ("tf32" or "ieee" for fp32 operands, "ieee" otherwise).
        DOT_IN_FP32: cast operands to fp32 before ``tl.dot`` (bf16 in the interpreter only; see the forward kernel).
        INDEX_DTYPE: tl.int32, or tl.int64 when some tensor spans 2^31 elements or more.
        BLOCK_M, BLOCK_N, BLOCK_K: tile sizes (input pixels, input channels, output channels per step).
    """
    pid = tl.program_id(0).to(INDEX_DTYPE)
    pid_n = pid % N_TILES
    rest = pid // N_TILES
    pid_m = rest % M_TILES
    group = rest // M_TILES

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M).to(INDEX_DTYPE)
    row_mask = offs_m < N * H * W
    iw = offs_m % W
    t = offs_m // W
    ih = t % H
    n = t // H
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N).to(INDEX_DTYPE)
    col_mask = offs_n < C_IN_G
    ci = group * C_IN_G + offs_n
    offs_k = tl.arange(0, BLOCK_K).to(INDEX_DTYPE)
    co = group * C_OUT_G + offs_k

    # Output position of tap (0, 0); tap (kh, kw) adds (kh*DH, kw*DW). Decoded once, outside the loops.
    oh0 = ih * SH - PAD_H
    ow0 = iw * SW - PAD_W
    dz_rows = n * stride_dzn + oh0 * stride_dzh + ow0 * stride_dzw
    w_cols = ci * stride_wi

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=ACC_DTYPE)
    # Runtime tap loops (not static_range): a k16 layer would otherwise unroll 256 copies of the channel loop.
    for kh in range(KH):
        ok_h = row_mask & (oh0 >= -kh * DH) & (oh0 < OH - kh * DH)
        for kw in range(KW):
            ok = ok_h & (ow0 >= -kw * DW) & (ow0 < OW - kw * DW)
            dz_tap = dz_ptr + (dz_rows + (kh * DH * stride_dzh + kw * DW * stride_dzw))
            w_tap = w_ptr + (w_cols + (kh * stride_wh + kw * stride_ww))
            for c0 in range(0, C_OUT_G, BLOCK_K):
                k_ok = offs_k < C_OUT_G - c0
                a = tl.load(
                    dz_tap[:, None] + ((co + c0) * stride_dzc)[None, :],
                    mask=ok[:, None] & k_ok[None, :],
                    other=0.0,
                )
                b = tl.load(
                    w_tap[None, :] + ((offs_k + c0) * stride_wo)[:, None],
                    mask=k_ok[:, None] & col_mask[None, :],
                    other=0.0,
                )
                acc = dot_acc(a, b, acc, ACC_DTYPE, DOT_PRECISION, DOT_IN_FP32)

    dx_offsets = (n * stride_dxn + ih * stride_dxh + iw * stride_dxw)[:, None] + (ci * stride_dxc)[None, :]
    tl.store(dx_ptr + dx_offsets, acc.to(dx_ptr.dtype.element_ty), mask=row_mask[:, None] & col_mask[None, :])
