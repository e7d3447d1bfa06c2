"""Phase arithmetic of the transposed convolution inside a kernel, per element: the depthwise kernel's helpers.

Output pixel ``o = q*s + r`` of phase ``r`` (per axis) reads input ``q + delta(r, k)`` through tap ``k`` (see
``shared/design/phase-math.md`` and :mod:`triton_convt.launch.shapes`). The implicit-GEMM kernel gets the same
information from a host-built table (:mod:`.phase_gemm`); the depthwise kernel, which has no reduction to amortise
a table over, computes it in closed form with these functions.
"""

import triton
import triton.language as tl



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
