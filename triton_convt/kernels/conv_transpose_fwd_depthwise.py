"""Forward transposed convolution (1 to 3 spatial axes) for one input channel per group (depthwise, any channel
multiplier), without tl.dot.

With ``C_in / groups == 1`` the GEMM of :mod:`.phase_gemm` has a reduction of one channel per tap, and
``tl.dot`` tiles of at least 16 would issue 16x (and, with one output channel per group, 256x) the useful work.
Here each program computes a block of ``BLOCK`` output elements of one phase, each a ``(pixel, channel)`` pair
over the output channels of *all* groups, as one fused multiply-add per tap: output channel ``co`` reads input
channel ``co // MULT`` and weight ``w[co // MULT, co % MULT, kd, kh, kw]``. Phases and taps are those of the GEMM
kernel (the same closed form, :func:`.phases.phase_tap`, per axis); FCN's bilinear upsampling is this
case. Written for three axes (D, H, W): 1-D and 2-D calls run it through views with unit axes in front, and the
constexpr ``SPATIAL`` removes those axes' decoding, offsets and boundary tests at compile time (:mod:`.phases`).

Why a flat block and not a ``[pixels, channels]`` tile: a tile's channel side is a power of two, and the layers
this kernel serves have few, odd channel counts (21 PASCAL VOC classes would be padded to 32, issuing 1.5x the
work). Flattened, only the phase's last block is partial. ``CHANNELS_FASTEST`` orders the elements as the output
is laid out (channels_last: channel fastest, so a block stores contiguously; NCHW: pixel fastest). In NCHW a phase
(one residue per axis) would write every ``stride``-th output of a row, a part of each memory sector, the rest of
which other phases write much later; so there (``ALL_W``) a program's phase is a (D, H) phase only and its elements
run along whole output rows, every W residue, each element decoding its own W residue.

Each tap's product is masked to its in-range elements, so non-finite weights give torch's CPU result here without
a separate variant: in an elementwise kernel the mask costs one select per product.
"""

import triton
import triton.language as tl

from .epilogue import epilogue_store
from .phases import add_spatial, axis_in_range, phase_count, phase_residues, phase_tap, pixel_coords


@triton.jit
def conv_transpose_fwd_depthwise_kernel(
    x_ptr,
    w_ptr,
    bias_ptr,
    y_ptr,
    N,
    D,
    H,
    W,
    OD,
    OH,
    OW,
    C_OUT,
    MULT,
    PAD_D,
    PAD_H,
    PAD_W,
    stride_xn,
    stride_xc,
    stride_xd,
    stride_xh,
    stride_xw,
    stride_wi,
    stride_wo,
    stride_wd,
    stride_wh,
    stride_ww,
    stride_yn,
    stride_yc,
    stride_yd,
    stride_yh,
    stride_yw,
    stride_b,
    TILES,
    KD: tl.constexpr,
    KH: tl.constexpr,
    KW: tl.constexpr,
    SD: tl.constexpr,
    SH: tl.constexpr,
    SW: tl.constexpr,
    DD: tl.constexpr,
    DH: tl.constexpr,
    DW: tl.constexpr,
    GCD_D: tl.constexpr,
    STEP_D: tl.constexpr,
    INV_D: tl.constexpr,
    TAPS_D: tl.constexpr,
    GCD_H: tl.constexpr,
    STEP_H: tl.constexpr,
    INV_H: tl.constexpr,
    TAPS_H: tl.constexpr,
    GCD_W: tl.constexpr,
    STEP_W: tl.constexpr,
    INV_W: tl.constexpr,
    TAPS_W: tl.constexpr,
    SPATIAL: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    ACTIVATION: tl.constexpr,
    NEGATIVE_SLOPE: tl.constexpr,
    ACC_DTYPE: tl.constexpr,
    INDEX_DTYPE: tl.constexpr,
    CHANNELS_FASTEST: tl.constexpr,
    ALL_W: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """One block of ``BLOCK`` (pixel, channel) output elements of one phase.

    Args:
        x_ptr: input ``[N, C_in, D, H, W]`` with ``C_in == groups``, any strides (a 1-D or 2-D input viewed with
            unit axes in front).
        w_ptr: weight ``[C_in, MULT, KD, KH, KW]``, any strides.
        bias_ptr: bias ``[C_out]``, any stride (ignored unless HAS_BIAS).
        y_ptr: output ``[N, C_out, OD, OH, OW]``, any strides; every element is written exactly once.
        N, D, H, W: batch and input spatial size.
        OD, OH, OW: output spatial size.
        C_OUT: output channels (``groups * MULT``).
        MULT: output channels per group (the channel multiplier).
        PAD_D, PAD_H, PAD_W: padding.
        stride_x*, stride_w*, stride_y*: element strides per dimension (those of a unit axis are not read).
        stride_b: the bias's element stride (1 when there is no bias).
        TILES: blocks of the largest phase, ``cdiv(rows * C_OUT, BLOCK)`` (with ALL_W, rows of whole output
            columns); programs past their own phase's elements exit at once.
        KD, KH, KW, SD, SH, SW, DD, DH, DW: kernel size, stride and dilation per axis (1 on a unit axis).
        GCD_*, STEP_*, INV_*, TAPS_*: each axis' tap schedule (:func:`triton_convt.launch.shapes.tap_schedule`).
        SPATIAL: how many of the axes D, H, W are real (1, 2 or 3: the call's dimensionality); the others are unit
            axes in front, removed at compile time.
        HAS_BIAS, ACTIVATION, NEGATIVE_SLOPE: the epilogue's, as in the GEMM kernel.
        ACC_DTYPE: accumulator dtype (fp32, or fp64 for fp64 tensors).
        INDEX_DTYPE: tl.int32, or tl.int64 when some tensor spans 2^31 elements or more.
        CHANNELS_FASTEST: element ``e`` is channel ``e % C_OUT`` of row ``e // C_OUT`` (for a channels_last
            output); otherwise row ``e % rows`` of channel ``e // rows`` (NCHW). Either order is correct for any
            strides; the one that matches the output's layout stores contiguously.
        ALL_W: a program's phase is a (D, H) phase and its rows take every output column (each element its own W
            residue), so that NCHW rows are written whole; the grid has ``SD * SH`` phases.
        BLOCK: elements per program.
    """
    pid = tl.program_id(0).to(INDEX_DTYPE)
    pid_e = pid % TILES
    phase = pid // TILES
    if ALL_W:
        rd, rh, rw = phase_residues(phase, SD, SH, 1, SPATIAL)
        q_w = OW  # every output column; its residue is decoded per element below
    else:
        rd, rh, rw = phase_residues(phase, SD, SH, SW, SPATIAL)
        q_w = phase_count(OW, rw, SW)
    q_d = 1
    q_h = 1
    if SPATIAL == 3:
        q_d = phase_count(OD, rd, SD)
    if SPATIAL >= 2:
        q_h = phase_count(OH, rh, SH)
    rows = (N * q_d * q_h * q_w).to(INDEX_DTYPE)
    if pid_e * BLOCK >= rows * C_OUT:
        return
    e = pid_e * BLOCK + tl.arange(0, BLOCK).to(INDEX_DTYPE)
    mask = e < rows * C_OUT
    # Decoded once per program, not per tap.
    if CHANNELS_FASTEST:
        co = e % C_OUT
        row = e // C_OUT
    else:
        co = e // rows
        row = e % rows
    n, qd, qh, qw = pixel_coords(row, q_d, q_h, q_w, SPATIAL)
    if ALL_W:  # qw was the output column: split it into its phase row and residue
        rw = qw % SW
        qw = qw // SW
    ci = co // MULT
    x_base = add_spatial(n * stride_xn + ci * stride_xc, qd, qh, qw, stride_xd, stride_xh, stride_xw, SPATIAL)
    w_base = ci * stride_wi + (co - ci * MULT) * stride_wo

    acc = tl.zeros((BLOCK,), dtype=ACC_DTYPE)
    rpd = rd + PAD_D
    rph = rh + PAD_H
    rpw = rw + PAD_W
    for jd in tl.static_range(TAPS_D):
        kd, dd, ok_tap_d = phase_tap(rpd, jd, KD, SD, DD, GCD_D, STEP_D, INV_D)
        ok_d = axis_in_range(mask, qd, dd, D, SPATIAL == 3)
        for jh in tl.static_range(TAPS_H):
            kh, dh, ok_tap_h = phase_tap(rph, jh, KH, SH, DH, GCD_H, STEP_H, INV_H)
            ok_h = axis_in_range(ok_d, qh, dh, H, SPATIAL >= 2)
            for jw in tl.static_range(TAPS_W):
                kw, dw, ok_tap_w = phase_tap(rpw, jw, KW, SW, DW, GCD_W, STEP_W, INV_W)
                if ALL_W:  # the W tap exists per element
                    if ok_tap_d & ok_tap_h:
                        ok = axis_in_range(ok_h & ok_tap_w, qw, dw, W, True)
                        x_tap = add_spatial(0, dd, dh, dw, stride_xd, stride_xh, stride_xw, SPATIAL)
                        w_tap = add_spatial(0, kd, kh, kw, stride_wd, stride_wh, stride_ww, SPATIAL)
                        x = tl.load(x_ptr + x_base + x_tap, mask=ok, other=0.0)
                        w = tl.load(w_ptr + w_base + w_tap, mask=ok, other=0.0)
                        acc += tl.where(ok, x.to(ACC_DTYPE) * w.to(ACC_DTYPE), 0.0)
                elif ok_tap_d & ok_tap_h & ok_tap_w:
                    ok = axis_in_range(ok_h, qw, dw, W, True)
                    x_tap = add_spatial(0, dd, dh, dw, stride_xd, stride_xh, stride_xw, SPATIAL)
                    w_tap = add_spatial(0, kd, kh, kw, stride_wd, stride_wh, stride_ww, SPATIAL)
                    x = tl.load(x_ptr + x_base + x_tap, mask=ok, other=0.0)
                    w = tl.load(w_ptr + w_base + w_tap, mask=mask, other=0.0)
                    acc += tl.where(ok, x.to(ACC_DTYPE) * w.to(ACC_DTYPE), 0.0)

    y_offsets = add_spatial(
        n * stride_yn + co * stride_yc,
        qd * SD + rd,
        qh * SH + rh,
        qw * SW + rw,
        stride_yd,
        stride_yh,
        stride_yw,
        SPATIAL,
    )
    epilogue_store(acc, bias_ptr, stride_b, y_ptr, y_offsets, co, mask, mask, HAS_BIAS, ACTIVATION, NEGATIVE_SLOPE)
