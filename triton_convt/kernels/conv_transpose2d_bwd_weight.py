"""Backward of ConvTranspose2d with respect to its weight and bias, deterministic.

``dw[ci, co, kh, kw] = sum over (n, ih, iw) of x[n, ci, ih, iw] * dz[n, co, ih*s - p + kh*d, iw*s - p + kw*d]``
(output positions outside the output contribute nothing). For one tap and one group this is a GEMM with rows = the
group's input channels, columns = its output channels and the reduction over every input pixel ``(n, ih, iw)``.

That reduction can be long (N*H*W) while the GEMM is small, so it is split into ``SPLITS`` contiguous ranges of
pixels. Each program writes its partial sum to its own slot; the caller adds the slots in a fixed order. No atomics:
the result is bitwise reproducible. The bias gradient (a per-channel sum of ``dz``) is split the same way.
"""

import triton
import triton.language as tl

from .dot import dot_acc


@triton.jit
def _pixel(p, H, W):
    """``(n, h, w)`` of the flat pixel index ``p = (n*H + h)*W + w`` (non-negative, so // and % are exact)."""
    w = p % W
    t = p // W
    return t // H, t % H, w


@triton.jit
def conv_transpose2d_bwd_weight_kernel(
    x_ptr,
    dz_ptr,
    partial_ptr,
    N,
    H,
    W,
    OH,
    OW,
    C_IN,
    C_IN_G,
    C_OUT_G,
    PAD_H,
    PAD_W,
    stride_xn,
    stride_xc,
    stride_xh,
    stride_xw,
    stride_dzn,
    stride_dzc,
    stride_dzh,
    stride_dzw,
    GROUPS,
    M_TILES,
    N_TILES,
    PIXELS_PER_SPLIT,
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
    """One ``[BLOCK_M, BLOCK_N]`` tile of one tap's weight gradient of one group, over one split of the pixels.

    Args:
        x_ptr: forward input ``[N, C_in, H, W]``, any strides.
        dz_ptr: gradient at the pre-activation output ``[N, C_out, OH, OW]``, any strides.
        partial_ptr: contiguous ``[SPLITS, C_in, C_out/groups, KH, KW]`` partial sums in ACC_DTYPE; every element
            is written exactly once.
        N, H, W: batch and input spatial size.
        OH, OW: output spatial size.
        C_IN: input channels (all groups); C_IN_G, C_OUT_G: channels per group.
        PAD_H, PAD_W: padding of the forward call.
        stride_x*, stride_dz*: element strides per dimension.
        GROUPS: number of groups.
        M_TILES, N_TILES: tiles over ``C_IN_G`` (rows) and ``C_OUT_G`` (columns).
        PIXELS_PER_SPLIT: input pixels ``(n, ih, iw)`` each split reduces over (the last split may have fewer).
        KH, KW, SH, SW, DH, DW: kernel size, stride and dilation of the forward call.
        ACC_DTYPE: accumulator and partial-sum dtype (fp32, or fp64 for fp64 tensors).
        DOT_PRECISION: ``tl.dot`` input precision ("tf32" or "ieee" for fp32 operands, "ieee" otherwise).
        DOT_IN_FP32: cast operands to fp32 before ``tl.dot`` (bf16 in the interpreter only).
        INDEX_DTYPE: tl.int32, or tl.int64 when some tensor spans 2^31 elements or more.
        BLOCK_M, BLOCK_N, BLOCK_K: tile sizes (input channels, output channels, pixels per step).
    """
    pid = tl.program_id(0).to(INDEX_DTYPE)
    pid_n = pid % N_TILES
    pid_m = pid // N_TILES
    tap_group = tl.program_id(1).to(INDEX_DTYPE)
    split = tl.program_id(2).to(INDEX_DTYPE)
    group = tap_group % GROUPS
    tap = tap_group // GROUPS
    kh = tap // KW
    kw = tap % KW

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M).to(INDEX_DTYPE)
    ci_ok = offs_m < C_IN_G
    ci = group * C_IN_G + offs_m
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N).to(INDEX_DTYPE)
    co_ok = offs_n < C_OUT_G
    co = group * C_OUT_G + offs_n
    offs_k = tl.arange(0, BLOCK_K).to(INDEX_DTYPE)

    pixels = N * H * W
    start = split * PIXELS_PER_SPLIT
    end = tl.minimum(start + PIXELS_PER_SPLIT, pixels)
    # The tap's shift from the input pixel's own output position (ih*SH - PAD_H, iw*SW - PAD_W).
    shift_h = kh * DH - PAD_H
    shift_w = kw * DW - PAD_W

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=ACC_DTYPE)
    for p0 in range(start, end, BLOCK_K):
        # The pixel decode is per element of a [BLOCK_K] vector, not of the [BLOCK_M, BLOCK_N, BLOCK_K] product.
        p = p0 + offs_k
        p_ok = p < end
        n, ih, iw = _pixel(p, H, W)
        oh = ih * SH + shift_h
        ow = iw * SW + shift_w
        dz_ok = p_ok & (oh >= 0) & (oh < OH) & (ow >= 0) & (ow < OW)
        a = tl.load(
            x_ptr + (ci * stride_xc)[:, None] + (n * stride_xn + ih * stride_xh + iw * stride_xw)[None, :],
            mask=ci_ok[:, None] & p_ok[None, :],
            other=0.0,
        )
        b = tl.load(
            dz_ptr + (n * stride_dzn + oh * stride_dzh + ow * stride_dzw)[:, None] + (co * stride_dzc)[None, :],
            mask=dz_ok[:, None] & co_ok[None, :],
            other=0.0,
        )
        acc = dot_acc(a, b, acc, ACC_DTYPE, DOT_PRECISION, DOT_IN_FP32)

    # partial[split, ci, co_g, kh, kw], contiguous.
    offsets = (((split * C_IN + ci)[:, None] * C_OUT_G + offs_n[None, :]) * KH + kh) * KW + kw
    tl.store(partial_ptr + offsets, acc, mask=ci_ok[:, None] & co_ok[None, :])


@triton.jit
def channel_sum_kernel(
    dz_ptr,
    partial_ptr,
    C,
    OH,
    OW,
    PIXELS,
    stride_dzn,
    stride_dzc,
    stride_dzh,
    stride_dzw,
    PIXELS_PER_SPLIT,
    ACC_DTYPE: tl.constexpr,
    INDEX_DTYPE: tl.constexpr,
    BLOCK_P: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    """Partial per-channel sums of ``dz`` over one split of its ``N*OH*OW`` pixels (the bias gradient).

    Args:
        dz_ptr: ``[N, C, OH, OW]``, any strides.
        partial_ptr: contiguous ``[SPLITS, C]`` in ACC_DTYPE; every element is written exactly once.
        C, OH, OW: channels and output spatial size.
        PIXELS: ``N*OH*OW``.
        stride_dz*: element strides of ``dz``.
        PIXELS_PER_SPLIT: pixels each split sums over.
        ACC_DTYPE: accumulation dtype (fp32, or fp64 for fp64 tensors).
        INDEX_DTYPE: tl.int32, or tl.int64 when ``dz`` spans 2^31 elements or more.
        BLOCK_P, BLOCK_C: pixels per step and channels per program.
    """
    pid_c = tl.program_id(0).to(INDEX_DTYPE)
    split = tl.program_id(1).to(INDEX_DTYPE)
    c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C).to(INDEX_DTYPE)
    c_ok = c < C
    offs_p = tl.arange(0, BLOCK_P).to(INDEX_DTYPE)
    start = split * PIXELS_PER_SPLIT
    end = tl.minimum(start + PIXELS_PER_SPLIT, PIXELS)
    # One running sum per channel; each chunk is reduced as it arrives (a [BLOCK_P, BLOCK_C] accumulator would
    # spill in fp64). The order is fixed by the config, so the result is still reproducible.
    acc = tl.zeros((BLOCK_C,), dtype=ACC_DTYPE)
    for p0 in range(start, end, BLOCK_P):
        p = p0 + offs_p
        p_ok = p < end
        n, oh, ow = _pixel(p, OH, OW)
        v = tl.load(
            dz_ptr + (n * stride_dzn + oh * stride_dzh + ow * stride_dzw)[:, None] + (c * stride_dzc)[None, :],
            mask=p_ok[:, None] & c_ok[None, :],
            other=0.0,
        )
        acc += tl.sum(v.to(ACC_DTYPE), axis=0)
    tl.store(partial_ptr + split * C + c, acc, mask=c_ok)
