"""Backward of the transposed convolution (1 to 3 spatial axes) with respect to its weight and bias, deterministic.

``dw[ci, co, kh, kw] = sum over (n, ih, iw) of x[n, ci, ih, iw] * dz[n, co, ih*s - p + kh*d, iw*s - p + kw*d]``
(output positions outside the output contribute nothing; likewise with a D axis). For one tap and one group this is
a GEMM with rows = the group's input channels, columns = its output channels and the reduction over every input
pixel ``(n, ih, iw)``. Written for three axes (D, H, W): 1-D and 2-D calls run through views with unit axes in
front, which the constexpr ``SPATIAL`` removes at compile time (:mod:`.phases`).

That reduction can be long (N*H*W) while the GEMM is small, so it is split into ``SPLITS`` contiguous ranges of
pixels. Each program writes its partial sum to its own slot; the caller adds the slots in a fixed order. No atomics:
the result is bitwise reproducible. The bias gradient (a per-channel sum of ``dz``) is split the same way.
"""

import triton
import triton.language as tl

from .dot import dot_acc
from .phases import add_spatial, pixel_coords


@triton.jit
def _output_in_range(ok, od, oh, ow, OD, OH, OW, SPATIAL: tl.constexpr):
    """``ok`` narrowed to the positions inside the output; a unit axis is never tested."""
    if SPATIAL == 3:
        ok = ok & (od >= 0) & (od < OD)
    if SPATIAL >= 2:
        ok = ok & (oh >= 0) & (oh < OH)
    return ok & (ow >= 0) & (ow < OW)


@triton.jit
def conv_transpose_bwd_weight_kernel(
    x_ptr,
    dz_ptr,
    partial_ptr,
    N,
    D,
    H,
    W,
    OD,
    OH,
    OW,
    C_IN,
    C_IN_G,
    C_OUT_G,
    PAD_D,
    PAD_H,
    PAD_W,
    stride_xn,
    stride_xc,
    stride_xd,
    stride_xh,
    stride_xw,
    stride_dzn,
    stride_dzc,
    stride_dzd,
    stride_dzh,
    stride_dzw,
    GROUPS,
    M_TILES,
    N_TILES,
    PIXELS_PER_SPLIT,
    KD: tl.constexpr,
    KH: tl.constexpr,
    KW: tl.constexpr,
    SD: tl.constexpr,
    SH: tl.constexpr,
    SW: tl.constexpr,
    DD: tl.constexpr,
    DH: tl.constexpr,
    DW: tl.constexpr,
    SPATIAL: tl.constexpr,
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
        x_ptr: forward input ``[N, C_in, D, H, W]``, any strides (1-D and 2-D inputs viewed with unit axes in front).
        dz_ptr: gradient at the pre-activation output ``[N, C_out, OD, OH, OW]``, any strides.
        partial_ptr: contiguous ``[SPLITS, C_in, C_out/groups, KD, KH, KW]`` partial sums in ACC_DTYPE; every
            element is written exactly once.
        N, D, H, W: batch and input spatial size.
        OD, OH, OW: output spatial size.
        C_IN: input channels (all groups); C_IN_G, C_OUT_G: channels per group.
        PAD_D, PAD_H, PAD_W: padding of the forward call.
        stride_x*, stride_dz*: element strides per dimension (those of a unit axis are not read).
        GROUPS: number of groups.
        M_TILES, N_TILES: tiles over ``C_IN_G`` (rows) and ``C_OUT_G`` (columns).
        PIXELS_PER_SPLIT: input pixels ``(n, id, ih, iw)`` each split reduces over (the last split may have fewer).
        KD, KH, KW, SD, SH, SW, DD, DH, DW: kernel size, stride and dilation of the forward call (1 on a unit axis).
        SPATIAL: how many of the axes D, H, W are real (1, 2 or 3); the others are unit axes, removed at compile
            time.
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
    tap = tap_group // GROUPS  # (kd*KH + kh)*KW + kw
    kd = 0
    kh = 0
    kw = tap
    if SPATIAL >= 2:
        kw = tap % KW
        kh = tap // KW
        if SPATIAL == 3:
            kd = kh // KH
            kh = kh % KH

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M).to(INDEX_DTYPE)
    ci_ok = offs_m < C_IN_G
    ci = group * C_IN_G + offs_m
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N).to(INDEX_DTYPE)
    co_ok = offs_n < C_OUT_G
    co = group * C_OUT_G + offs_n
    offs_k = tl.arange(0, BLOCK_K).to(INDEX_DTYPE)

    pixels = N * D * H * W
    start = split * PIXELS_PER_SPLIT
    end = tl.minimum(start + PIXELS_PER_SPLIT, pixels)
    # The tap's shift from the input pixel's own output position (id*SD - PAD_D, ih*SH - PAD_H, iw*SW - PAD_W).
    shift_d = kd * DD - PAD_D
    shift_h = kh * DH - PAD_H
    shift_w = kw * DW - PAD_W

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=ACC_DTYPE)
    for p0 in range(start, end, BLOCK_K):
        # The pixel decode is per element of a [BLOCK_K] vector, not of the [BLOCK_M, BLOCK_N, BLOCK_K] product.
        p = p0 + offs_k
        p_ok = p < end
        n, i_d, ih, iw = pixel_coords(p, D, H, W, SPATIAL)
        od = i_d * SD + shift_d
        oh = ih * SH + shift_h
        ow = iw * SW + shift_w
        dz_ok = _output_in_range(p_ok, od, oh, ow, OD, OH, OW, SPATIAL)
        x_pixel = add_spatial(n * stride_xn, i_d, ih, iw, stride_xd, stride_xh, stride_xw, SPATIAL)
        dz_pixel = add_spatial(n * stride_dzn, od, oh, ow, stride_dzd, stride_dzh, stride_dzw, SPATIAL)
        a = tl.load(
            x_ptr + (ci * stride_xc)[:, None] + x_pixel[None, :], mask=ci_ok[:, None] & p_ok[None, :], other=0.0
        )
        b = tl.load(
            dz_ptr + dz_pixel[:, None] + (co * stride_dzc)[None, :], mask=dz_ok[:, None] & co_ok[None, :], other=0.0
        )
        acc = dot_acc(a, b, acc, ACC_DTYPE, DOT_PRECISION, DOT_IN_FP32)

    # partial[split, ci, co_g, kd, kh, kw], contiguous: the taps of one (ci, co_g) are KD*KH*KW consecutive slots.
    offsets = ((split * C_IN + ci)[:, None] * C_OUT_G + offs_n[None, :]) * (KD * KH * KW) + tap
    tl.store(partial_ptr + offsets, acc, mask=ci_ok[:, None] & co_ok[None, :])


@triton.jit
def channel_sum_kernel(
    dz_ptr,
    partial_ptr,
    C,
    OD,
    OH,
    OW,
    PIXELS,
    stride_dzn,
    stride_dzc,
    stride_dzd,
    stride_dzh,
    stride_dzw,
    PIXELS_PER_SPLIT,
    SPATIAL: tl.constexpr,
    ACC_DTYPE: tl.constexpr,
    INDEX_DTYPE: tl.constexpr,
    BLOCK_P: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    """Partial per-channel sums of ``dz`` over one split of its ``N*OD*OH*OW`` pixels (the bias gradient).

    Args:
        dz_ptr: ``[N, C, OD, OH, OW]``, any strides (1-D and 2-D gradients viewed with unit axes in front).
        partial_ptr: contiguous ``[SPLITS, C]`` in ACC_DTYPE; every element is written exactly once.
        C, OD, OH, OW: channels and output spatial size.
        PIXELS: ``N*OD*OH*OW``.
        stride_dz*: element strides of ``dz`` (those of a unit axis are not read).
        PIXELS_PER_SPLIT: pixels each split sums over.
        SPATIAL: how many of the axes D, H, W are real (1, 2 or 3).
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
        n, od, oh, ow = pixel_coords(p, OD, OH, OW, SPATIAL)
        pixel = add_spatial(n * stride_dzn, od, oh, ow, stride_dzd, stride_dzh, stride_dzw, SPATIAL)
        v = tl.load(dz_ptr + pixel[:, None] + (c * stride_dzc)[None, :], mask=p_ok[:, None] & c_ok[None, :],
                    other=0.0)  # fmt: skip
        acc += tl.sum(v.to(ACC_DTYPE), axis=0)
    tl.store(partial_ptr + split * C + c, acc, mask=c_ok)
