"""The windows of the phase GEMM's ``W_WINDOW`` variant (inputs with W contiguous and channels strided: NCHW, NCL,
NCDHW; and, in every layout, layers of few output channels: :func:`narrow`), plain Python.

In NCHW a tap shifts a row tile's W coordinate by a runtime offset, so a tile read per tap cannot be proven
aligned, and its loads stay scalar (no 16-byte vectors, no ``cp.async``). The window variant reads instead, for
every D and H tap, the same window of ``WINDOW_W`` consecutive input columns starting at a multiple of ``W_STEP``
(aligned when ``W_STEP`` is a multiple of 8 and the rows start aligned), and multiplies it by every W tap of the
kernel at once (the GEMM's columns are taps x output channels). Output column ``o`` of W residue ``r = o % OS``
then adds, for each tap ``j`` of its residue, the product of input column ``u = (o // OS)*XS + delta_0(r) +
j*DSTEP`` with tap ``k_0(r) + j*KSTEP`` (the phase table's W fields): the kernel's epilogue picks those entries
out of the product and writes ``OUT_W`` consecutive output columns, every W phase of them.

A window can only write the output columns whose in-range taps all lie inside it. :func:`plan_window` lays the
windows of a row out so that they do:

* a row no wider than ``WINDOW_W`` has one window at column 0, which writes the whole output row;
* a wider row has windows every ``W_STEP`` columns, overlapping by ``WINDOW_W - W_STEP`` (the halo, at least the
  span of one output column's taps); window ``t > 0`` writes the output columns from ``t*P + o0`` (``P = W_STEP *
  OS / XS`` columns per window) to the next window's first, window 0 from column 0, the last to the output's end.
  ``W_STEP`` is a multiple of 8 and of ``XS``, so that the windows start aligned and every window but the first
  and the last sees the same pattern of taps (:func:`window_valid` checks the first, one inner and the last).

The waste is the halo (``1 - W_STEP/WINDOW_W`` of a wide row's windows) and, for a row narrower than a window,
the window's columns past the row; :func:`plan_window` takes the window width that issues the fewest GEMM rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .phase_table import AxisTaps

#: Window starts are multiples of this many columns: 8 16-bit elements are 16 bytes, the width of a vector load and
#: of ``cp.async``.
ALIGN = 8


@dataclass(frozen=True)
class Window:
    """How the window variant covers a row of the gathered operand (the kernel's constexprs and arguments)."""

    block_w: int  #: WINDOW_W: the window's width, a power of two dividing BLOCK_M
    step: int  #: W_STEP: columns between two windows' starts
    tiles: int  #: W_TILES: windows per row
    own: int  #: W_OWN: window ``t > 0`` writes from output column ``cdiv(t*step*OS - own, XS)``
    block_o: int  #: OUT_W: the most output columns a window writes, rounded up to a power of two
    width: int = 0  #: the most output columns a window writes


#: A group of at most this many output columns runs the window variant in every layout (:func:`narrow`): the
#: phase path's columns are those channels alone, padded to the tensor cores' narrowest tile (8 columns: more than
#: twice the MACs an RGB head needs), and each input element it loads serves that few multiply-adds, so instruction
#: issue bounds it far above its memory bound. The window variant's columns are every W tap of those channels (a
#: k4 s2 RGB head: 4 taps x 3 channels in 16 columns), and each input element it loads serves all of them.
NARROW_COLUMNS = 4


def narrow(columns: int, kernel_w: int) -> bool:
    """Whether a GEMM with ``columns`` output columns per group and ``kernel_w`` taps along W runs the window
    variant even with channels innermost: at most :data:`NARROW_COLUMNS` columns, and W taps to fill the tile with."""
    return columns <= NARROW_COLUMNS and kernel_w > 1


def _ceil_pow2(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


def column_taps(axis: AxisTaps, o: int) -> list[tuple[int, int]]:
    """The ``(input column, tap)`` pairs output column ``o`` adds along W (before the input's edges)."""
    rows = {row[0]: row for row in axis.rows}
    r, q = o % axis.os, o // axis.os
    if r not in rows:
        return []
    _, _, taps, delta0, k0 = rows[r]
    return [(q * axis.xs + delta0 + j * axis.dstep, k0 + j * axis.kstep) for j in range(taps)]


def first_column(window: Window, axis: AxisTaps, t: int) -> int:
    """The first output column window ``t`` writes (the kernel's ``o_lo``)."""
    return 0 if t == 0 else -(-(t * window.step * axis.os - window.own) // axis.xs)


def last_column(window: Window, axis: AxisTaps, t: int, ow: int) -> int:
    """One past the last output column window ``t`` writes (the kernel's ``o_hi``)."""
    return ow if t == window.tiles - 1 else first_column(window, axis, t + 1)


def window_valid(window: Window, axis: AxisTaps, iw: int, ow: int, tiles: list[int] | None = None) -> bool:
    """Whether every output column window ``t`` writes (for ``t`` in ``tiles``; default: the first, the second and
    the last) finds each of its in-range taps inside the window, and the window writes at most ``block_o``
    columns. The windows between the second and the last see the second's pattern shifted (``step`` is a multiple
    of ``XS``), so checking those three checks them all; to stand for them, a window past the first counts its taps
    left of the input as in range."""
    if tiles is None:
        tiles = sorted({0, min(1, window.tiles - 1), window.tiles - 1})
    for t in tiles:
        a0 = t * window.step
        lo, hi = first_column(window, axis, t), last_column(window, axis, t, ow)
        if hi - lo > window.block_o or (t > 0 and lo <= first_column(window, axis, t - 1)):
            return False
        for o in range(lo, hi):
            for u, _ in column_taps(axis, o):
                if (t > 0 or u >= 0) and u < iw and not a0 <= u < a0 + window.block_w:
                    return False
    return True


def _tiled(axis: AxisTaps, iw: int, ow: int, block_w: int) -> Window | None:
    """The windows of width ``block_w`` over a row wider than it: the largest step (fewest windows) for which some
    start of the written columns is valid, and of those the smallest start (the narrowest first window) that is a
    multiple of the output step, if one is (the epilogue then starts its columns on a group of the residues)."""
    align = math.lcm(ALIGN, axis.xs)
    for step in range((block_w - 1) // align * align, 0, -align):
        per_window = step * axis.os // axis.xs  # output columns a window writes (but the first and the last)
        found = []
        for o0 in range(1 - per_window, per_window + 1):  # window 1 writes from per_window + o0 > 0
            tiles = max(1, -(-(ow - o0) // per_window))  # window n starts at n * per_window + o0 >= ow
            if tiles == 1:
                continue  # a row wider than the window needs two
            draft = Window(block_w, step, tiles, -o0 * axis.xs, 0)
            width = max(last_column(draft, axis, t, ow) - first_column(draft, axis, t) for t in (0, 1, tiles - 1))
            window = Window(block_w, step, tiles, -o0 * axis.xs, _ceil_pow2(width), width)
            if window_valid(window, axis, iw, ow):
                if o0 % axis.os == 0:
                    return window
                found.append(window)
        if found:
            return found[0]
    return None


def plan_window(axis: AxisTaps, iw: int, ow: int, rows: int, block_m: int) -> Window | None:
    """The windows of a launch with ``BLOCK_M`` GEMM rows: ``axis`` is the W axis of the call's phase table, ``iw``
    and ``ow`` the input (gathered operand) and output widths, ``rows`` the rows ``(n, qd, qh)`` of the largest
    (D, H) phase. Of the power-of-two window widths up to ``block_m``, the one that issues the fewest GEMM rows
    (``cdiv(rows, block_m / block_w) * block_m * tiles``; ties to the wider window); None when no width has a valid
    layout (an output column's taps spanning more than any window's halo)."""
    best, best_cost = None, None
    block_w = 1
    while block_w <= block_m:
        if iw <= block_w:
            window = Window(block_w, block_w, 1, 0, _ceil_pow2(max(1, ow)), ow)
        else:
            window = _tiled(axis, iw, ow, block_w) if block_w > ALIGN else None
        if window is not None:
            cost = -(-rows // (block_m // block_w)) * block_m * window.tiles
            if best_cost is None or cost <= best_cost:
                best, best_cost = window, cost
        if iw <= block_w:
            break  # a wider window only pads more
        block_w *= 2
    return best
