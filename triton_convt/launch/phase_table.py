"""The phase table that drives :func:`triton_convt.kernels.phase_gemm.phase_gemm_kernel`, built on the host.

A phase is one residue per spatial axis (D, H, W). Its row of the table holds, per axis: the residue ``r``, the
extent ``Q`` (output rows of the phase along the axis), the tap count ``T``, the first tap's input offset
``delta_0`` and its weight tap ``k_0``; tap ``j`` then reads ``q*XS + delta_0 + j*DSTEP`` through weight tap
``k_0 + j*KSTEP``, with the per-axis steps constant for the whole call (constexprs, :class:`PhaseTable`).

Phases with no output are left out; the others are listed heaviest first (most taps), so that the programs of
the heavy phases start first and the light phases fill the tail of the launch.

The table is plain Python, a pure function of the geometry (sizes, kernel, stride, padding, dilation); its device
copy is kept per geometry and device (:func:`device_table`) and never goes stale: nothing it holds depends on a
tensor's values.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

from ..kernels.phase_tile import TABLE_COLUMNS
from . import shapes
from .shapes import ConvParams

#: Columns of a table row (the kernel's ``TABLE_COLUMNS``): r, Q, T, delta_0, k_0 for (d, h, w), then one unused.
COLUMNS = TABLE_COLUMNS.value

#: The most taps a phase may have for its rows' in-range taps to be kept as a bitmask (an int64 with the sign bit
#: unused); larger phases compare per tap in the loop.
BITMASK_TAPS = 63


@dataclass(frozen=True)
class AxisTaps:
    """One axis of a phase-gather GEMM: its phases and the constants shared by all of them."""

    rows: tuple[tuple[int, int, int, int, int], ...]  #: (r, Q, T, delta_0, k_0) per residue with output
    xs: int  #: input step: row q reads q*XS + delta
    os: int  #: output step: row q of residue r writes q*OS + r
    dstep: int  #: input offset increment per tap
    kstep: int  #: weight tap increment per tap
    max_taps: int  #: the most taps of any residue


@dataclass(frozen=True)
class PhaseTable:
    """A call's phases (rows in launch order) and the kernel's structural constexprs.

    A *window* table (:func:`window_table`, the kernel's ``W_WINDOW`` variant) lists the phases of D and H only,
    each covering every W residue, followed by one row per W residue ``r < OS_W`` (row ``phases + r``) with only its
    W fields set: a program of that variant runs the D and H taps in its loop and every W tap as a column block.
    """

    rows: tuple[tuple[int, ...], ...]
    constexprs: tuple[tuple[str, int], ...]
    max_rows_per_image: int  #: the largest phase's rows per image (Q_d * Q_h * Q_w; Q_d * Q_h for a window table)
    axes: tuple[AxisTaps, AxisTaps, AxisTaps]  #: the three axes the table was built from (D, H, W)
    phases: int  #: the launched phases: the first ``phases`` rows
    window: bool = False  #: a window table (see above)

    @property
    def taps(self) -> int:
        """The most taps a phase has along the axes its loop runs (the bound of the row bitmasks): all of them, or
        D and H for a window table."""
        c = dict(self.constexprs)
        return c["MAX_T_D"] * c["MAX_T_H"] * (1 if self.window else c["MAX_T_W"])


def forward_axis(size: int, out: int, kernel: int, stride: int, padding: int, dilation: int) -> AxisTaps:
    """The forward transposed convolution along one axis (``stride`` already the launch stride,
    :meth:`.shapes.ConvParams.for_launch`): ``stride`` residues, the taps of :func:`.shapes.tap_schedule`."""
    schedule = shapes.tap_schedule(kernel, stride, dilation)
    rows = []
    for r in range(stride):
        q = shapes.phase_count(out, stride, r)
        if q == 0:
            continue
        k0 = shapes.first_tap(r, padding, schedule)
        taps = 0 if k0 is None else len(range(k0, kernel, schedule.step))
        delta0 = 0 if not taps else (r + padding - k0 * dilation) // stride
        rows.append((r, q, taps, delta0, k0 if taps else 0))
    return AxisTaps(tuple(rows), xs=1, os=stride, dstep=-(dilation // schedule.gcd), kstep=schedule.step,
                    max_taps=schedule.max_taps)  # fmt: skip


def input_grad_axis(size: int, kernel: int, stride: int, padding: int, dilation: int, out_step: int = 1) -> AxisTaps:
    """The input gradient along one axis, an ordinary strided convolution of the output gradient: one residue
    whose ``size`` rows each read ``q*stride - padding + j*dilation`` through tap ``j``, for every tap. Row ``q``
    writes output ``q*out_step``: 1, or the upscale factor of a conv followed by a pixel shuffle
    (:mod:`.pixel_shuffle_shapes`), whose columns add their sub-pixel offset to it."""
    return AxisTaps(((0, size, kernel, -padding, 0),), xs=stride, os=out_step, dstep=dilation, kstep=1,
                    max_taps=kernel)  # fmt: skip


def _table(axes: tuple[AxisTaps, AxisTaps, AxisTaps], window: bool = False) -> PhaseTable:
    phases = []
    # A window table's phases cover every W residue: their W fields are one residue's of one row and one tap.
    w_rows = ((0, 1, 1, 0, 0),) if window else axes[2].rows
    for rd in axes[0].rows:
        for rh in axes[1].rows:
            for rw in w_rows:
                phases.append(tuple(v for field in zip(rd, rh, rw) for v in field) + (0,))
    # Row layout: (r_d, r_h, r_w, Q_d, Q_h, Q_w, T_d, T_h, T_w, delta..., k0..., 0). Heaviest first; the sort is
    # stable, so equal phases keep residue order.
    phases.sort(key=lambda row: -(row[6] * row[7] * row[8]))
    constexprs = []
    for name, axis in zip("DHW", axes):
        constexprs += [(f"XS_{name}", axis.xs), (f"OS_{name}", axis.os), (f"DSTEP_{name}", axis.dstep),
                       (f"KSTEP_{name}", axis.kstep), (f"MAX_T_{name}", axis.max_taps)]  # fmt: skip
    per_image = max((math.prod(row[3:6]) for row in phases), default=0)
    rows = list(phases)
    if window:
        # One row per W residue r < OS_W, the residues without output (Q = 0) included, so that the kernel finds
        # residue r at row phases + r: its W fields at the W columns (r, Q, T, delta_0, k_0), zeros elsewhere.
        by_residue = {rw[0]: rw for rw in axes[2].rows}
        for r in range(axes[2].os):
            rw = by_residue.get(r, (r, 0, 0, 0, 0))
            rows.append(tuple(v for field in zip((0,) * 5, (0,) * 5, rw) for v in field) + (0,))
    return PhaseTable(tuple(rows), tuple(constexprs), per_image, axes, len(phases), window)


@functools.lru_cache(maxsize=512)
def window_table(table: PhaseTable) -> PhaseTable:
    """The window table (see :class:`PhaseTable`) of the same call as ``table``."""
    return table if table.window else _table(table.axes, window=True)


@functools.lru_cache(maxsize=512)
def forward_table(input_size: tuple[int, ...], output_size: tuple[int, ...], params: ConvParams) -> PhaseTable:
    """The phases of a forward call (three axes: ``params`` from :meth:`.ConvParams.as_3d`, already
    :meth:`~.ConvParams.for_launch`)."""
    return _table(tuple(
        forward_axis(i, o, k, s, p, d)
        for i, o, k, s, p, d in zip(input_size, output_size, params.kernel, params.stride, params.padding,
                                    params.dilation)
    ))  # fmt: skip


@functools.lru_cache(maxsize=512)
def input_grad_table(input_size: tuple[int, ...], params: ConvParams) -> PhaseTable:
    """The one phase of an input-gradient call (three axes, ``params`` from :meth:`.ConvParams.as_3d`)."""
    return _table(tuple(
        input_grad_axis(i, k, s, p, d)
        for i, k, s, p, d in zip(input_size, params.kernel, params.stride, params.padding, params.dilation)
    ))  # fmt: skip


@functools.lru_cache(maxsize=512)
def conv_shuffle_table(conv_size: tuple[int, ...], params: ConvParams, upscale: int) -> PhaseTable:
    """The one phase of a conv2d followed by a pixel shuffle by ``upscale`` (three axes: ``params`` the conv's
    stride, leading padding, dilation and kernel from :meth:`.ConvParams.as_3d`, ``conv_size`` the conv's output
    size): the input gradient's table with the output step ``upscale`` on the shuffled axes (H, W)."""
    steps = (1,) * (len(conv_size) - 2) + (upscale, upscale)
    return _table(tuple(
        input_grad_axis(c, k, s, p, d, step)
        for c, k, s, p, d, step in zip(conv_size, params.kernel, params.stride, params.padding, params.dilation, steps)
    ))  # fmt: skip


_device_tables: dict[tuple[PhaseTable, torch.device], torch.Tensor] = {}


def device_table(table: PhaseTable, device: torch.device) -> torch.Tensor:
    """The table as an int32 tensor on ``device``, made once per table and device (a host-to-device copy the
    first time a geometry is seen; the table depends on the geometry only, so the copy cannot go stale)."""
    key = (table, device)
    tensor = _device_tables.get(key)
    if tensor is None:
        tensor = torch.tensor(table.rows, dtype=torch.int32, device=device).reshape(len(table.rows), COLUMNS)
        if len(_device_tables) > 1024:  # a long-running process with many geometries: start over
            _device_tables.clear()
        _device_tables[key] = tensor
    return tensor
