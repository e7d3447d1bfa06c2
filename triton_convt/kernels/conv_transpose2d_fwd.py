"""Forward ConvTranspose2d as a phase-decomposed implicit GEMM (gather form).

Output pixel ``o = q*s + r`` of phase ``r`` (per axis) is a stride-1 correlation of the *compact* input with the
phase's taps: tap ``k`` of phase ``r`` reads input ``q + delta(r, k)`` (see ``shared/design/phase-math.md`` and
:mod:`triton_convt.launch.shapes`). Each program computes one ``[BLOCK_M, BLOCK_N]`` tile of one phase of one group:

* rows    = output pixels ``(n, qh, qw)`` of the phase,
* columns = output channels of the group,
* reduction = input channels of the group x the phase's taps, accumulated with ``tl.dot`` in fp32 (fp64 for fp64).

No zero insertion, no divisibility mask, no atomics: phases write disjoint outputs, so the result is deterministic.
Phases with no tap still run and store the bias (and activation). Sizes are runtime arguments (a new shape does not recompile);
stride, dilation, kernel size, tiles and dtype are ``tl.constexpr``, and the memory layout reaches the compiler
through the JIT's specialisation of unit strides (a channels_last tensor has ``stride_xc == 1``, NCHW has
``stride_xw == 1``).
"""

import triton
import triton.language as tl

from .dot import dot_acc
from .epilogue import epilogue_store


@triton.jit
def phase_tap(rp, j, K: tl.constexpr, S: tl.constexpr, D: tl.constexpr, GCD: tl.constexpr, STEP: tl.constexpr,
              INV: tl.constexpr):
    """Tap ``j`` of the phase whose residue plus padding is ``rp``, along one axis: ``(k, delta, exists)``.

    The phase has taps only if ``rp % GCD == 0``; they are ``k = k0 + j*STEP`` (while ``k < K``) with
    ``k0 = (rp // GCD * INV) % STEP`` (:func:`triton_convt.launch.shapes.tap_schedule`), and tap ``k`` reads input
    ``q + delta``, ``delta = (rp - k*D) / S``: an exact division for a real tap, so truncation toward zero gives the
    right, possibly negative, value.
    """
    k = (rp // GCD * INV) % STEP + j * STEP
    return k, (rp - k * D) // S, (rp % GCD == 0) & (k < K)


@triton.jit
def phase_extent(phase, N, OH, OW, SH: tl.constexpr, SW: tl.constexpr):
    """Residues ``(rh, rw)`` of phase ``phase`` (row-major over ``SH x SW``), its outputs per axis ``Q_r`` and its
    rows ``N * Q_rh * Q_rw``. ``Q_r = ceil((O - r) / s)``: ``O - r + s - 1 >= 0``, so ``//`` is a floor here."""
    rh = phase // SW
    rw = phase % SW
    q_h = (OH - rh + SH - 1) // SH
    q_w = (OW - rw + SW - 1) // SW
    return rh, rw, q_h, q_w, N * q_h * q_w


@triton.jit
def row_coords(row, q_h, q_w):
    """Output pixel ``(n, qh, qw)`` of row ``row`` of a phase with ``q_h x q_w`` outputs per image (rows are
    non-negative, so ``//`` and ``%`` are exact)."""
    t = row // q_w
    return t // q_h, t % q_h, row % q_w


@triton.jit
def phase_rows(pid_m, q_h, q_w, rows, BLOCK_M: tl.constexpr, INDEX_DTYPE: tl.constexpr):
    """Row tile ``pid_m`` of a phase: ``(row_mask, n, qh, qw)``, decoded once per program."""
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M).to(INDEX_DTYPE)
    n, qh, qw = row_coords(offs_m, q_h, q_w)
    return offs_m < rows, n, qh, qw


@triton.jit
def conv_transpose2d_fwd_kernel(
    x_ptr,
    w_ptr,
    bias_ptr,
    y_ptr,
    N,
    H,
    W,
    OH,
    OW,
    C_IN_G,
    C_OUT_G,
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
    stride_b,
    GROUPS,
    M_TILES,
    N_TILES,
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
    DOT_PRECISION: tl.constexpr,
    DOT_IN_FP32: tl.constexpr,
    INDEX_DTYPE: tl.constexpr,
    MASK_PRODUCTS: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    """One output tile of one phase of one group.

    Args:
        x_ptr: input ``[N, C_in, H, W]``, any strides.
        w_ptr: weight ``[C_in, C_out/groups, KH, KW]`` (torch's layout), any strides.
        bias_ptr: bias ``[C_out]``, any stride (ignored unless HAS_BIAS).
        y_ptr: output ``[N, C_out, OH, OW]``, any strides; every element is written exactly once.
        N, H, W: batch and input spatial size.
        OH, OW: output spatial size (from the shape formula, output_padding included).
        C_IN_G, C_OUT_G: input and output channels per group.
        PAD_H, PAD_W: padding (the amount cropped from each side of the full transposed convolution).
        stride_x*, stride_w*, stride_y*: element strides of input, weight and output, per dimension.
        stride_b: the bias's element stride (1 when there is no bias).
        GROUPS: number of groups.
        M_TILES: row tiles of the largest phase (phase 0); programs past their own phase's rows exit at once.
        N_TILES: column tiles, ``cdiv(C_OUT_G, BLOCK_N)``.
        KH, KW: kernel size.
        SH, SW: stride.
        DH, DW: dilation.
        GCD_*, STEP_*, INV_*, TAPS_*: the tap schedule of each axis (:func:`triton_convt.launch.shapes.tap_schedule`):
            a phase has taps only if ``(r + pad) % GCD == 0``; they are ``k0 + j*STEP`` for ``j < TAPS`` while
            ``< K``, with ``k0 = ((r + pad) // GCD * INV) % STEP``.
        HAS_BIAS: add the bias in the epilogue.
        ACTIVATION: activation applied after the bias ("none", or a name from triton_convt.activations).
        NEGATIVE_SLOPE: leaky_relu's slope (constexpr so that fp64 applies it exactly).
        ACC_DTYPE: accumulator dtype (fp32, or fp64 for fp64 tensors).
        DOT_PRECISION: ``tl.dot`` input precision: "tf32" or "ieee" for fp32 operands, "ieee" otherwise.
        DOT_IN_FP32: cast the operands to fp32 before ``tl.dot``; set only for bf16 in the interpreter, whose bf16
            ``tl.dot`` is wrong (triton 3.6 to 3.9, :func:`triton_convt.compat.dot_in_fp32`). Compiled kernels use bf16 tensor cores.
        INDEX_DTYPE: tl.int32, or tl.int64 when some tensor spans 2^31 elements or more.
        MASK_PRODUCTS: add each tap's partial product only to the rows whose input is in range. A row whose tap
            reads outside the input loads x = 0, and ``0 * w`` is exact for finite weights but NaN for inf or NaN
            weights, where torch's CPU result (which never visits that tap) is inf or finite. The launcher sets it
            only for non-finite weights, so finite weights run the plain accumulation, unchanged.
        BLOCK_M, BLOCK_N, BLOCK_K: tile sizes (rows, output channels, input channels per step).
    """
    # Decode the program once; nothing below divides per element inside the reduction loop.
    # Columns vary fastest so that neighbouring programs share the same input rows.
    pid = tl.program_id(0).to(INDEX_DTYPE)
    pid_n = pid % N_TILES
    rest = pid // N_TILES
    pid_m = rest % M_TILES
    rest = rest // M_TILES
    group = rest % GROUPS
    phase = rest // GROUPS
    rh, rw, q_h, q_w, rows = phase_extent(phase, N, OH, OW, SH, SW)
    if pid_m * BLOCK_M >= rows:
        return
    row_mask, n, qh, qw = phase_rows(pid_m, q_h, q_w, rows, BLOCK_M, INDEX_DTYPE)

    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N).to(INDEX_DTYPE)
    col_mask = offs_n < C_OUT_G
    offs_k = tl.arange(0, BLOCK_K).to(INDEX_DTYPE)
    ci = group * C_IN_G + offs_k

    # Row offsets at tap shift 0: a tap adds one scalar to them. Channel offsets are formed from the INDEX_DTYPE
    # vector ``ci`` so that they cannot overflow int32 when the int64 path is on.
    x_rows = n * stride_xn + qh * stride_xh + qw * stride_xw
    w_cols = offs_n * stride_wo
    store_mask = row_mask[:, None] & col_mask[None, :]

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=ACC_DTYPE)
    rph = rh + PAD_H
    rpw = rw + PAD_W
    for jh in tl.static_range(TAPS_H):
        kh, dh, ok_tap_h = phase_tap(rph, jh, KH, SH, DH, GCD_H, STEP_H, INV_H)
        ok_h = row_mask & (qh >= -dh) & (qh < H - dh)
        for jw in tl.static_range(TAPS_W):
            kw, dw, ok_tap_w = phase_tap(rpw, jw, KW, SW, DW, GCD_W, STEP_W, INV_W)
            if ok_tap_h & ok_tap_w:
                a_rows_ok = ok_h & (qw >= -dw) & (qw < W - dw)
                x_tap = x_ptr + (x_rows + (dh * stride_xh + dw * stride_xw))
                w_tap = w_ptr + (w_cols + (kh * stride_wh + kw * stride_ww))
                for c0 in range(0, C_IN_G, BLOCK_K):
                    k_ok = offs_k < C_IN_G - c0
                    a = tl.load(
                        x_tap[:, None] + ((ci + c0) * stride_xc)[None, :],
                        mask=a_rows_ok[:, None] & k_ok[None, :],
                        other=0.0,
                    )
                    b = tl.load(
                        w_tap[None, :] + ((ci + c0) * stride_wi)[:, None],
                        mask=k_ok[:, None] & col_mask[None, :],
                        other=0.0,
                    )
                    if MASK_PRODUCTS:
                        partial = dot_acc(a, b, tl.zeros((BLOCK_M, BLOCK_N), dtype=ACC_DTYPE), ACC_DTYPE,
                                          DOT_PRECISION, DOT_IN_FP32)
                        acc += tl.where(a_rows_ok[:, None], partial, 0.0)
                    else:
                        acc = dot_acc(a, b, acc, ACC_DTYPE, DOT_PRECISION, DOT_IN_FP32)

    oh = qh * SH + rh
    ow = qw * SW + rw
    co = group * C_OUT_G + offs_n
    y_offsets = (n * stride_yn + oh * stride_yh + ow * stride_yw)[:, None] + (co * stride_yc)[None, :]
    epilogue_store(
        acc, bias_ptr, stride_b, y_ptr, y_offsets, co, col_mask, store_mask, HAS_BIAS, ACTIVATION, NEGATIVE_SLOPE
    )
