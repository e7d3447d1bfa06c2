"""Folding a conv weight for nearest-upsample + conv, and the adjoint that unfolds the folded weight's gradient.

Per axis (``triton_convt.launch.upsample_shapes``): tap ``j`` of output phase ``r`` reads input offset
``e(r, j) = floor((r - p_lo + j*d) / s)``, and the pair ``(r, e)`` is tap ``k' = r + P - e*s`` of a transposed
convolution with stride ``s``. The folded weight is ``W'[ci, co, kh', kw'] = sum of w[g*Cout_g + co, ci - g*Cin_g,
jh, jw]`` over the taps ``(jh, jw)`` that land on ``(kh', kw')``; the weight gradient is its adjoint,
``dw[co, ci_g, jh, jw] = sum over phases (rh, rw) of dW'[ci, co_l, kh'(rh, jh), kw'(rw, jw)]``.

Which tap lands where depends only on the kernel size, scale, padding and dilation. The launcher computes it in
Python (a floor division, which Triton's truncating ``//`` would get wrong for negative numerators) and passes it
as one constexpr bit mask per axis, ``LANDS_H`` (bit ``k'*KH + j`` set iff conv tap ``j`` adds into folded tap
``k'``); both kernels loop over the taps with ``tl.static_range`` and test those bits at compile time, so a launch
issues exactly the loads the fold needs, with no per-element test.
"""

import triton
import triton.language as tl


@triton.jit
def _channels(BLOCK: tl.constexpr, C_IN, C_IN_G, C_OUT_G):
    """A block of (input channel, output channel of its group) pairs, output channel fastest (the folded weight's
    channels_last order); returns ``(ci, co_l, g, ci_g, mask)``."""
    f = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = f < C_IN * C_OUT_G
    ci = f // C_OUT_G
    co = f % C_OUT_G
    return ci, co, ci // C_IN_G, ci % C_IN_G, mask


@triton.jit
def upsample_fold_kernel(
    w_ptr,
    wf_ptr,
    C_IN,
    C_IN_G,
    C_OUT_G,
    stride_wo,
    stride_wi,
    stride_wh,
    stride_ww,
    stride_fi,
    stride_fo,
    stride_fh,
    stride_fw,
    KH: tl.constexpr,
    KW: tl.constexpr,
    FKH: tl.constexpr,
    FKW: tl.constexpr,
    LANDS_H: tl.constexpr,
    LANDS_W: tl.constexpr,
    ACC_DTYPE: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """``W'`` from the conv weight ``w``: one program per block of (input channel, output channel) pairs, all taps.

    Args:
        w_ptr: the conv weight ``[C_out, C_in/groups, KH, KW]``, any strides.
        wf_ptr: the folded weight ``[C_in, C_out/groups, FKH, FKW]``, written here (same dtype; any strides, the
            launcher gives it output channels innermost).
        C_IN: input channels (all groups).
        C_IN_G: input channels per group.
        C_OUT_G: output channels per group.
        stride_wo, stride_wi, stride_wh, stride_ww: ``w``'s element strides.
        stride_fi, stride_fo, stride_fh, stride_fw: ``W'``'s element strides.
        KH, KW: the conv's kernel size.
        FKH, FKW: the folded kernel size ``K'``.
        LANDS_H, LANDS_W: per axis, bit ``k'*K + j`` is set iff conv tap ``j`` adds into folded tap ``k'``.
        ACC_DTYPE: the sums' dtype (fp32, fp64 for fp64); one cast at the store.
        BLOCK: channel pairs per program.
    """
    ci, co, g, ci_g, mask = _channels(BLOCK, C_IN, C_IN_G, C_OUT_G)
    w_base = (g * C_OUT_G + co) * stride_wo + ci_g * stride_wi
    f_base = ci * stride_fi + co * stride_fo
    for kh in tl.static_range(FKH):
        for kw in tl.static_range(FKW):
            acc = tl.zeros((BLOCK,), dtype=ACC_DTYPE)
            for jh in tl.static_range(KH):
                if (LANDS_H >> (kh * KH + jh)) & 1 == 1:
                    for jw in tl.static_range(KW):
                        if (LANDS_W >> (kw * KW + jw)) & 1 == 1:
                            acc += tl.load(w_ptr + w_base + jh * stride_wh + jw * stride_ww, mask=mask).to(ACC_DTYPE)
            tl.store(wf_ptr + f_base + kh * stride_fh + kw * stride_fw, acc.to(wf_ptr.dtype.element_ty), mask=mask)


@triton.jit
def upsample_unfold_kernel(
    partial_ptr,
    dw_ptr,
    SPLITS,
    C_IN,
    C_IN_G,
    C_OUT_G,
    stride_ps,
    stride_pi,
    stride_po,
    stride_ph,
    stride_pw,
    stride_wo,
    stride_wi,
    stride_wh,
    stride_ww,
    KH: tl.constexpr,
    KW: tl.constexpr,
    FKH: tl.constexpr,
    FKW: tl.constexpr,
    LANDS_H: tl.constexpr,
    LANDS_W: tl.constexpr,
    ACC_DTYPE: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """The conv weight's gradient from the folded weight's: the adjoint of :func:`upsample_fold_kernel`, also adding
    up the transposed convolution's split partial sums, in a fixed order (splits innermost, then phases), so the
    result is bitwise reproducible.

    Args:
        partial_ptr: ``[SPLITS, C_in, C_out/groups, FKH, FKW]`` partial sums of ``dW'`` (the accumulator dtype).
        dw_ptr: the conv weight's gradient ``[C_out, C_in/groups, KH, KW]``, written here (any strides).
        SPLITS: how many partial sums to add.
        C_IN: input channels (all groups).
        C_IN_G: input channels per group.
        C_OUT_G: output channels per group.
        stride_ps, stride_pi, stride_po, stride_ph, stride_pw: the partial sums' element strides.
        stride_wo, stride_wi, stride_wh, stride_ww: ``dw``'s element strides.
        KH, KW: the conv's kernel size.
        FKH, FKW: the folded kernel size ``K'``.
        LANDS_H, LANDS_W: per axis, bit ``k'*K + j`` is set iff conv tap ``j`` adds into folded tap ``k'``.
        ACC_DTYPE: the sums' dtype (fp32, fp64 for fp64); one cast at the store.
        BLOCK: channel pairs per program.
    """
    ci, co, g, ci_g, mask = _channels(BLOCK, C_IN, C_IN_G, C_OUT_G)
    p_base = ci * stride_pi + co * stride_po
    w_base = (g * C_OUT_G + co) * stride_wo + ci_g * stride_wi
    for jh in tl.static_range(KH):
        for jw in tl.static_range(KW):
            acc = tl.zeros((BLOCK,), dtype=ACC_DTYPE)
            # Each conv tap lands once per phase: s_h*s_w folded taps, visited in a fixed order.
            for kh in tl.static_range(FKH):
                if (LANDS_H >> (kh * KH + jh)) & 1 == 1:
                    for kw in tl.static_range(FKW):
                        if (LANDS_W >> (kw * KW + jw)) & 1 == 1:
                            tap = partial_ptr + p_base + kh * stride_ph + kw * stride_pw
                            for split in range(SPLITS):
                                acc += tl.load(tap + split * stride_ps, mask=mask).to(ACC_DTYPE)
            tl.store(dw_ptr + w_base + jh * stride_wh + jw * stride_ww, acc.to(dw_ptr.dtype.element_ty), mask=mask)
