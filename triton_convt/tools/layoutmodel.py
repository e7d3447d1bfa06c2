"""The layouts' side of the work model (plain Python; model figures, never measurements): what an NCHW call costs
beside a channels_last one.

Bytes. The fused call's reads (input, weight, bias) are whole tensors; its output is written in 32-byte sectors, and a
sector that two groups of programs far apart in the grid each write part of moves once per part
(:func:`output_writes`): the phase path writes one phase at a time, every ``stride``-th output of an NCHW row; the
NCHW window variant (:mod:`triton_convt.launch.window`) writes every phase of its rows in one program.
:func:`sector_traffic` is a call's bytes so counted, in either layout.

MACs: :func:`.workcount.work` in either layout (an NCHW input runs the window variant, :func:`.workcount.window_work`,
with the config the launcher picks for it). ``python -m triton_convt.tools.layoutmodel`` prints :func:`layout_report`
for the report's layer set.
"""

from __future__ import annotations

import argparse
import itertools
import math

import torch

from ..launch import shapes
from . import layers
from .layers import Layer
from .workcount import is_depthwise, launcher_config, runs_window, traffic, work

#: Bytes of a memory sector, the unit NVIDIA's L2 moves to and from DRAM (32 on A100 and H100): a write of part of
#: one moves a whole one (or makes the L2 read it first), unless another write completes it while it is still in L2.
SECTOR = 32

#: The memory layouts of :func:`sector_traffic`: the input and output of a model in ``channels_last`` (NHWC, NLC,
#: NDHWC) or in torch's default NCHW (NCL, NCDHW).
LAYOUTS = ("channels_last", "nchw")


def _union_sectors(start: int, runs: list[int], run: int) -> int:
    """Distinct sectors of runs of ``run`` bytes starting at bytes ``start + r`` for ``r`` in ``runs`` (sorted)."""
    total, last = 0, -1
    for r in runs:
        lo, hi = (start + r) // SECTOR, (start + r + run - 1) // SECTOR
        if hi > last:
            total += hi - max(lo, last + 1) + 1
            last = hi
    return total


def sector_bytes(itemsize: int, dims: list[tuple[int, int]], base: int = 0) -> int:
    """Bytes of the sectors holding the elements ``base + sum(i_d * stride_d)`` (``0 <= i_d < size_d``, ``dims`` =
    ``[(size, stride)]`` in elements, nested as a tensor's strides are; the elements one group of programs writes
    together).

    Dimensions that tile densely are merged first; the innermost one left with stride 1 makes contiguous runs. The
    runs of the next dimensions are listed while a dimension's pitch is within a sector of the block so far (their
    runs may share a sector), and their sectors counted exactly; the blocks along the dimensions past those share
    none, and are counted per starting offset modulo a sector."""
    merged: list[tuple[int, int]] = []
    for size, stride in sorted((d for d in dims if d[0] > 1), key=lambda d: d[1]):
        if merged and merged[-1][0] * merged[-1][1] == stride:
            merged[-1] = (merged[-1][0] * size, merged[-1][1])
        else:
            merged.append((size, stride))
    run, outer = (merged[0][0], merged[1:]) if merged and merged[0][1] == 1 else (1, merged)
    runs, k = [0], 0
    while k < len(outer) and (k == 0 or outer[k][1] * itemsize < runs[-1] + run * itemsize + SECTOR):
        size, stride = outer[k]
        runs = sorted(r + i * stride * itemsize for r in runs for i in range(size))
        k += 1
    offsets = {base * itemsize % SECTOR: 1}  # a block's starting offset modulo a sector -> how many blocks
    for size, stride in outer[k:]:
        step = stride * itemsize % SECTOR
        period = SECTOR // math.gcd(SECTOR, step)
        spread: dict[int, int] = {}
        for start, times in offsets.items():
            for i in range(min(period, size)):
                at = (start + i * step) % SECTOR
                spread[at] = spread.get(at, 0) + times * (size // period + (i < size % period))
        offsets = spread
    return SECTOR * sum(times * _union_sectors(start, runs, run * itemsize) for start, times in offsets.items())


def output_writes(layer: Layer, itemsize: int, layout: str, window: bool | None = None) -> int:
    """Bytes of the output's sectors as the forward kernel writes them, counting a sector once per group of
    programs that writes part of it: the programs of one phase (a grid runs phase after phase, so a sector two
    phases share is written twice unless it stays in L2 in between). A phase of the phase path (one residue per
    axis) writes every ``stride``-th output of a row in NCHW and every ``stride``-th pixel's channels in
    channels_last; the depthwise kernel's phases in NCHW are (D, H) phases, each writing whole rows; the window
    variant (:func:`.workcount.runs_window`, or ``window`` to force it either way) writes every phase of its rows in one
    program, so its group is the whole output."""
    spatial = (1,) * (3 - layer.ndim) + tuple(layer.output_hw)
    strides3 = (1,) * (3 - layer.ndim) + tuple(layer.launch_stride)
    n, c = layer.n, layer.c_out
    if layout == "nchw":
        sd, sh, sw = spatial[1] * spatial[2], spatial[2], 1
        sc = spatial[0] * sd
        sn = c * sc
    else:
        sc, sw = 1, c
        sh, sd = spatial[2] * c, spatial[1] * spatial[2] * c
        sn = spatial[0] * sd
    if runs_window(layer, layout) if window is None else window:
        return sector_bytes(itemsize, [(n, sn), (c, sc), (spatial[0], sd), (spatial[1], sh), (spatial[2], sw)])
    if layout == "nchw" and is_depthwise(layer):  # whole rows: one residue along W, every output column
        strides3 = strides3[:2] + (1,)
    total = 0
    for residues in itertools.product(*(range(s) for s in strides3)):
        counts = [shapes.phase_count(o, s, r) for o, s, r in zip(spatial, strides3, residues)]
        if all(counts):
            dims = [(n, sn), (c, sc)] + [(q, s * st) for q, s, st in zip(counts, strides3, (sd, sh, sw))]
            total += sector_bytes(itemsize, dims, sum(r * st for r, st in zip(residues, (sd, sh, sw))))
    return total


def sector_traffic(layer: Layer, itemsize: int, layout: str, bias: bool = True,
                   window: bool | None = None) -> dict[str, int]:  # fmt: skip
    """Bytes to and from memory of one fused call of ``layer`` with input and output in ``layout``, counting the
    partial sectors of the output's writes (:func:`output_writes`, ``window`` as there); the reads (input, weight,
    bias) are whole tensors, each read once. ``minimum`` is :func:`traffic`'s fused figure (every byte once)."""
    moved = traffic(layer, itemsize, bias=bias, activation=False)["fused"]
    y = layer.n * layer.c_out * math.prod(layer.output_hw) * itemsize
    return {"sectors": moved - y + output_writes(layer, itemsize, layout, window), "minimum": moved}


def layout_report(dtype: torch.dtype) -> str:
    """A markdown table of :func:`sector_traffic` for :data:`LAYERS` in both layouts, NCHW over channels_last, and
    what NCHW would write through the GEMM kernel's phase path (one phase per program, as before the window
    variant)."""
    itemsize = torch.empty((), dtype=dtype).element_size()
    lines = [
        f"Bytes of a fused call counting the output's partial sectors, {str(dtype).split('.')[1]} (a model, not a "
        "measurement)", "",
        "| layer | kernel | minimum MB | channels_last MB | NCHW MB | NCHW / channels_last | NCHW, phase path MB "
        "| issued/useful MACs (sm90 pick), channels_last / NCHW |",
        "|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for spec in layers.load():
        cl, nchw = (sector_traffic(spec.layer, itemsize, layout, spec.bias) for layout in LAYOUTS)
        depthwise = is_depthwise(spec.layer)
        phase_path = (
            ""
            if depthwise
            else f"{sector_traffic(spec.layer, itemsize, 'nchw', spec.bias, False)['sectors'] / 1e6:.2f}"
        )
        macs = [
            work(spec.layer, launcher_config(spec.layer, dtype, "sm90", layout), layout).ratio for layout in LAYOUTS
        ]
        lines.append(f"| {spec.layer.name} | {'depthwise' if depthwise else 'GEMM'} | {cl['minimum'] / 1e6:.2f} "
                     f"| {cl['sectors'] / 1e6:.2f} | {nchw['sectors'] / 1e6:.2f} "
                     f"| {nchw['sectors'] / cl['sectors']:.2f} | {phase_path} "
                     f"| {macs[0]:.2f} / {macs[1]:.2f} |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m triton_convt.tools.layoutmodel",
                                     description="Print NCHW against channels_last on the report's layer set (model "
                                     "figures, not measurements).")  # fmt: skip
    parser.add_argument("--dtype", default="float16", choices=("float16", "bfloat16", "float32", "float64"))
    args = parser.parse_args(argv)
    print(layout_report(getattr(torch, args.dtype)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
