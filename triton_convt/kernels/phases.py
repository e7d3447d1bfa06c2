"""Phase arithmetic inside a kernel, per element, for three spatial axes (D, H, W): the closed-form tap schedule
(:func:`phase_tap`), phase and pixel decoding, offsets and boundary tests, for the kernels that compute them in
closed form (the depthwise forward, the weight gradient). The implicit-GEMM kernel gets the same information from
a host-built table (:mod:`.phase_gemm`).

A kernel runs 1-D and 2-D calls through views with unit axes in front (:func:`triton_convt.launch.kernel_plan.
spatial_3d`); ``SPATIAL`` (a constexpr: 1, 2 or 3) names how many of the three axes are real, and every helper
here leaves the unit axes out at compile time (their index is the literal 0, their offset is not added, their
boundary test is not made), so a 2-D build carries no instruction for the D axis.
"""

import triton
import triton.language as tl


@triton.jit
def phase_tap(
    rp, j, K: tl.constexpr, S: tl.constexpr, D: tl.constexpr, GCD: tl.constexpr, STEP: tl.constexpr, INV: tl.constexpr
):
    """Tap ``j`` of the phase whose residue plus padding is ``rp``, along one axis: ``(k, delta, exists)``.

    The phase has taps only if ``rp % GCD == 0``; they are ``k = k0 + j*STEP`` (while ``k < K``) with
    ``k0 = (rp // GCD * INV) % STEP`` (:func:`triton_convt.launch.shapes.tap_schedule`), and tap ``k`` reads input
    ``q + delta``, ``delta = (rp - k*D) / S``: an exact division for a real tap, so truncation toward zero gives the
    right, possibly negative, value.
    """
    k = (rp // GCD * INV) % STEP + j * STEP
    return k, (rp - k * D) // S, (rp % GCD == 0) & (k < K)


@triton.jit
def phase_residues(phase, SD: tl.constexpr, SH: tl.constexpr, SW: tl.constexpr, SPATIAL: tl.constexpr):
    """Residues ``(rd, rh, rw)`` of phase ``phase`` (row-major over ``SD x SH x SW``); 0 on a unit axis."""
    rw = phase % SW
    t = phase // SW
    rd = 0
    rh = 0
    if SPATIAL >= 2:
        rh = t
        if SPATIAL == 3:
            rh = t % SH
            rd = t // SH
    return rd, rh, rw


@triton.jit
def phase_count(out, r, S: tl.constexpr):
    """``Q_r = ceil((O - r) / s)`` outputs of phase residue ``r`` along an axis of ``out`` outputs (``O - r + s - 1
    >= 0``, so ``//`` is a floor here)."""
    return (out - r + S - 1) // S


@triton.jit
def pixel_coords(row, size_d, size_h, size_w, SPATIAL: tl.constexpr):
    """``(n, d, h, w)`` of the flat, non-negative index ``row = ((n*size_d + d)*size_h + h)*size_w + w`` (``//`` and
    ``%`` are exact); ``d`` (and ``h`` for 1-D) is the literal 0 on a unit axis, with no division for it."""
    w = row % size_w
    t = row // size_w
    d = 0
    h = 0
    if SPATIAL >= 2:
        h = t % size_h
        t = t // size_h
    if SPATIAL == 3:
        d = t % size_d
        t = t // size_d
    return t, d, h, w


@triton.jit
def add_spatial(base, d, h, w, stride_d, stride_h, stride_w, SPATIAL: tl.constexpr):
    """``base + d*stride_d + h*stride_h + w*stride_w``, added in that order, with the unit axes' terms left out."""
    if SPATIAL == 3:
        base += d * stride_d
    if SPATIAL >= 2:
        base += h * stride_h
    return base + w * stride_w


@triton.jit
def axis_in_range(ok, q, delta, size, REAL: tl.constexpr):
    """``ok`` narrowed to the rows whose input index ``q + delta`` lies in ``[0, size)``; ``ok`` itself on a unit
    axis (``REAL`` False), whose one index is always in range."""
    if REAL:
        ok = ok & (q >= -delta) & (q < size - delta)
    return ok
