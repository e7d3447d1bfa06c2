"""The windows of the phase GEMM's NCHW variant (``triton_convt.launch.window``), plain Python: every output column is
written by exactly one window, every in-range tap it adds lies inside that window, windows start aligned, and the
window table lists the (D, H) phases and then every W residue. The kernel's use of them is checked against torch in
``tests/test_nchw.py``."""

import itertools
import math

import pytest

from triton_convt.launch import phase_table, shapes
from triton_convt.launch.window import ALIGN, column_taps, first_column, last_column, plan_window, window_valid


def _forward_axis(iw, k, s, p, d, op=0):
    ow = (iw - 1) * s - 2 * p + d * (k - 1) + op + 1
    return phase_table.forward_axis(iw, ow, k, shapes.launch_stride(iw, k, s, d), p, d), iw, ow


def _input_grad_axis(iw, k, s, p, d, op=0):
    """The input gradient's W axis: it gathers the output gradient (the forward's output width) into the input."""
    ow = (iw - 1) * s - 2 * p + d * (k - 1) + op + 1
    return phase_table.input_grad_axis(iw, k, s, p, d), ow, iw


# (kernel, stride, padding, dilation, output_padding): taps reaching left of the input (padding), right of it (no
# padding, a kernel wider than the stride), several taps per column, dilation, a stride larger than the kernel.
GEOMETRIES = [(4, 2, 1, 1, 0), (3, 2, 1, 1, 1), (2, 2, 0, 1, 0), (16, 8, 4, 1, 0), (10, 5, 0, 1, 0), (5, 3, 2, 2, 2),
              (3, 1, 2, 2, 0), (1, 3, 0, 1, 2), (7, 2, 3, 3, 1)]  # fmt: skip


def _check_every_window(axis, iw, ow, window):
    written = []
    for t in range(window.tiles):
        lo, hi = first_column(window, axis, t), last_column(window, axis, t, ow)
        assert 0 < hi - lo <= window.block_o
        written += range(lo, hi)
        a0 = t * window.step
        for o in range(lo, hi):
            for u, _ in column_taps(axis, o):
                assert not 0 <= u < iw or a0 <= u < a0 + window.block_w, (t, o, u)
    assert written == list(range(ow))  # each output column exactly once, in order


@pytest.mark.parametrize("grad", [False, True], ids=["forward", "input-grad"])
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_every_window_writes_its_columns_once_from_inside_itself(geometry, grad):
    axis_of = _input_grad_axis if grad else _forward_axis
    for iw, block_m in itertools.product((1, 3, 7, 16, 40, 129), (16, 64, 128)):
        k, s, p, d, op = geometry
        if (iw - 1) * s - 2 * p + d * (k - 1) + op + 1 <= 0:
            continue
        axis, gathered, out = axis_of(iw, k, s, p, d, op)
        window = plan_window(axis, gathered, out, rows=5, block_m=block_m)
        if window is None:  # only a row wider than the window whose columns' taps span more than any halo
            span = max((max(u for u, _ in taps) - min(u for u, _ in taps) for taps in
                        (column_taps(axis, o) for o in range(out)) if taps), default=0)  # fmt: skip
            assert gathered > block_m and span > block_m - math.lcm(ALIGN, axis.xs), (iw, block_m)
            continue
        assert block_m % window.block_w == 0 and window.block_o == 1 << (window.block_o.bit_length() - 1)
        if window.tiles > 1:
            # Windows start on 16-byte boundaries of 16-bit rows, and every window past the second sees the second's
            # pattern of taps shifted (so the planner's check of three windows covers them all).
            assert window.step % ALIGN == 0 and window.step % axis.xs == 0 and window.step < window.block_w
        else:
            assert gathered <= window.block_w
        _check_every_window(axis, gathered, out, window)


def test_a_row_that_fits_takes_one_window_and_a_wide_row_overlapping_windows():
    axis, iw, ow = _forward_axis(16, 4, 2, 1, 1)
    one = plan_window(axis, iw, ow, rows=64, block_m=128)
    assert (one.block_w, one.tiles, one.block_o) == (16, 1, 32)  # 8 rows of 16 columns, the whole output row
    axis, iw, ow = _forward_axis(300, 4, 2, 1, 1)
    wide = plan_window(axis, iw, ow, rows=1, block_m=128)
    # One row of 300 columns: windows of 128 overlapping by 8 (the taps of a column span two input columns).
    assert (wide.block_w, wide.step) == (128, 120) and wide.tiles == math.ceil(ow / (120 * 2))


def test_no_window_when_a_column_spans_more_than_any_halo():
    # Dilation 9 with three taps: a column's taps span 18 input columns, more than a 16-wide window's halo.
    axis, iw, ow = _forward_axis(100, 3, 1, 0, 9)
    assert plan_window(axis, iw, ow, rows=1, block_m=16) is None
    assert plan_window(axis, iw, ow, rows=1, block_m=64) is not None


def test_window_valid_rejects_a_window_that_misses_a_tap():
    axis, iw, ow = _forward_axis(40, 4, 2, 1, 1)
    window = plan_window(axis, iw, ow, rows=1, block_m=16)
    assert window.tiles > 1 and window_valid(window, axis, iw, ow, list(range(window.tiles)))
    shifted = type(window)(window.block_w, window.step, window.tiles, window.own + 4, window.block_o)
    assert not window_valid(shifted, axis, iw, ow, list(range(shifted.tiles)))


def test_window_table_lists_the_dh_phases_then_every_w_residue():
    full = phase_table.forward_table((3, 5, 6), (6, 10, 12), shapes.ConvParams(
        stride=(2, 2, 2), padding=(1, 1, 1), output_padding=(0, 0, 0), dilation=(1, 1, 1), groups=1,
        kernel=(4, 4, 4)))  # fmt: skip
    table = phase_table.window_table(full)
    assert table.window and table.phases == 4 and len(table.rows) == 4 + 2
    assert {row[:2] for row in table.rows[:4]} == {(rd, rh) for rd in (0, 1) for rh in (0, 1)}
    assert all(row[2] == 0 and row[5] == 1 and row[8] == 1 for row in table.rows[:4])  # one W "phase" of one tap
    w_axis = full.axes[2]
    for r, row in enumerate(table.rows[4:]):
        assert row[2::3][:5] == w_axis.rows[r]  # (r, Q, T, delta_0, k_0) at the W columns
    assert table.taps == 4 and full.taps == 8  # the window's loop runs the D and H taps only
    assert table.max_rows_per_image == 3 * 5
