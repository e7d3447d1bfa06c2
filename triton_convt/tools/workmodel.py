"""A model of the work the forward kernel issues and the bytes a call moves, per layer and config (plain Python).

These are *model* figures, computed from shapes and tile sizes; nothing here is measured on a GPU.

MACs. Useful MACs are the definition of the operation: ``N * C_in * (C_out/groups) * H_in * W_in * kH * kW``
(every input pixel times every tap, cropped ones included). The kernel issues, per program, a
``[BLOCK_M, BLOCK_N]`` tile times ``ceil(C_in_g / BLOCK_K) * BLOCK_K`` input channels per tap of its phase; rows
whose tap reads outside the input are masked but still issued, and programs past the rows of their phase (the
grid is sized for the largest phase) exit without issuing anything. So
``issued / useful = tile padding (M, N, K) x masked taps / cropped taps``; :class:`Work` keeps the parts apart.
The depthwise kernel (one input channel per group) issues one multiply per tap for each of the ``BLOCK``
(pixel, channel) elements of its block: its only tile padding is the last block of each phase.

Bytes. A fused call reads the input, weight and bias once and writes the output once. The unfused chain a user
would otherwise run writes the conv output, reads and writes it again to add the bias (when the layer has one),
and again for the activation (when one follows): ``x + w + y`` then ``y + b + y`` then ``y + y`` (:func:`traffic`).

:data:`LAYERS` is the report's layer set (decoder layers, from ``layers.json``); ``python -m
triton_convt.tools.workmodel`` prints the model for it with the config the launcher would pick from each config
file.
"""

from __future__ import annotations

import argparse
import itertools
import math
from dataclasses import dataclass

import torch

from ..launch import configs, shapes
from ..launch.upsample_shapes import UpsampleConvParams
from . import layers
from .layers import Layer


#: The report's layer set: upsampling layers of real decoders at their usual sizes, read from
#: ``triton_convt/tools/layers.json`` (:mod:`.layers`, the one source of truth), geometry only.
LAYERS = tuple(spec.layer for spec in layers.load())


@dataclass(frozen=True)
class Work:
    """The forward kernel's work on one layer with one config (MACs counted per multiply-add)."""

    useful_macs: int  #: the operation's definition (see the module docstring)
    in_range_macs: int  #: MACs of taps whose input pixel exists, with no tile padding: the gather's own work
    issued_macs: int  #: what the programs issue: whole tiles, masked taps included
    programs: int  #: the grid size
    empty_programs: int  #: programs past the rows of their phase, which exit at once

    @property
    def ratio(self) -> float:
        """Issued over useful MACs (1.0 is no waste)."""
        return self.issued_macs / self.useful_macs


def _in_range(q_count: int, size: int, delta: int) -> int:
    """How many ``q`` in ``range(q_count)`` read an input ``q + delta`` inside ``[0, size)``."""
    return max(0, min(q_count, size - delta) - max(0, -delta))


def axis_taps(layer: Layer) -> list[list[list[tuple[int, int]]]]:
    """Per spatial axis, the ``(k, delta)`` taps of each residue of the axis's launch stride
    (:func:`triton_convt.launch.shapes.phase_taps`): a phase of the layer is one residue per axis, and its taps
    are every combination of its residues' taps."""
    return [shapes.phase_taps(k, s, p, d) for k, s, p, d in zip(layer.kernel, layer.launch_stride, layer.padding,
                                                                  layer.dilation)]  # fmt: skip


def phases(layer: Layer):
    """Every phase of the layer as the forward kernel runs it, in residue order: ``(rows, taps)`` per axis, each a
    tuple with one entry per axis (``rows``: output positions of the phase along the axis; ``taps``: its
    ``(k, delta)`` taps along it)."""
    per_axis = [[(shapes.phase_count(o, s, r), taps[r]) for r in range(s)]
                for o, s, taps in zip(layer.output_hw, layer.launch_stride, axis_taps(layer))]  # fmt: skip
    for combo in itertools.product(*per_axis):
        yield tuple(rows for rows, _ in combo), tuple(taps for _, taps in combo)


def work(layer: Layer, config: dict) -> Work:
    """The MACs and programs of one forward launch of ``layer`` with ``config`` (as the kernel and launcher do it:
    one program per row tile of the largest phase, column tile, group and phase), for 1 to 3 spatial axes."""
    if is_depthwise(layer):  # blocks of (pixel, channel) elements of all groups; one multiply per tap, no K tile
        bm, bn, n_tiles, k_issued, groups, per_row = config["BLOCK"], 1, 1, 1, 1, layer.c_out
    else:
        bm, bn, bk, groups, per_row = config["BLOCK_M"], config["BLOCK_N"], config["BLOCK_K"], layer.groups, 1
        n_tiles = math.ceil(layer.c_out_g / bn)
        k_issued = math.ceil(layer.c_in_g / bk) * bk
    m_tiles = math.ceil(layer.n * problem_rows(layer) * per_row / bm)
    channel_macs = layer.c_in_g * layer.c_out_g * layer.groups
    issued = in_range = empty = 0
    for rows, taps in phases(layer):
        tiles = math.ceil(layer.n * math.prod(rows) * per_row / bm)
        empty += (m_tiles - tiles) * n_tiles * groups
        issued += tiles * n_tiles * groups * bm * bn * k_issued * math.prod(map(len, taps))
        # A tap (one per axis) is in range for the outputs whose input exists along every axis.
        in_axis = [[_in_range(q, size, delta) for _, delta in axis] for q, size, axis in zip(rows, layer.hw, taps)]
        in_range += layer.n * math.prod(map(sum, in_axis)) * channel_macs
    useful = layer.n * layer.c_in * layer.c_out_g * math.prod(layer.hw) * math.prod(layer.kernel)
    programs = math.prod(layer.launch_stride) * groups * m_tiles * n_tiles
    return Work(useful, in_range, issued, programs, empty)


def _ceil_pow2(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


def window_work(layer: Layer, config: dict) -> Work:
    """:func:`work` for an NCHW input, which runs the GEMM kernel's window variant
    (:mod:`triton_convt.launch.window`): one program per (row tile, window, column tile, group) runs every (D, H)
    phase of its rows; its rows are ``BLOCK_M / WINDOW_W`` rows of the largest (D, H) phase times a window of input
    columns (past the row's end, and the windows' overlap on rows wider than one, issued too); its columns are the
    kernel's W taps in two products of a power of two blocks each, times ``BLOCK_N / next_pow2(kW)`` channels. The
    layers the launcher runs otherwise (no window layout) are :func:`work`'s; the depthwise kernel's, which in NCHW
    runs whole output rows (every W residue) per (D, H) phase, are :func:`depthwise_rows_work`'s."""
    from ..launch import phase_table
    from ..launch.window import plan_window

    if is_depthwise(layer):
        return depthwise_rows_work(layer, config)
    spatial = (1,) * (3 - layer.ndim) + tuple(layer.output_hw)
    strides3 = (1,) * (3 - layer.ndim) + tuple(layer.launch_stride)
    kernel3 = (1,) * (3 - layer.ndim) + tuple(layer.kernel)
    pad3 = (0,) * (3 - layer.ndim) + tuple(layer.padding)
    dil3 = (1,) * (3 - layer.ndim) + tuple(layer.dilation)
    iw = layer.hw[-1]
    axis = phase_table.forward_axis(iw, spatial[2], kernel3[2], strides3[2], pad3[2], dil3[2])
    rows = layer.n * math.prod(shapes.phase_count(o, s, 0) for o, s in zip(spatial[:2], strides3[:2]))
    kw = kernel3[2]
    taps_n = _ceil_pow2(kw)
    window = plan_window(axis, iw, spatial[2], rows, config["BLOCK_M"])
    if window is None or config["BLOCK_N"] < taps_n:
        return work(layer, config)
    channels = config["BLOCK_N"] // taps_n
    taps_a = 1 << (kw.bit_length() - 1)
    blocks = taps_a + (0 if kw == taps_a else _ceil_pow2(kw - taps_a))
    m_tiles = math.ceil(rows / (config["BLOCK_M"] // window.block_w)) * window.tiles
    n_tiles = math.ceil(layer.c_out_g / channels)
    k_issued = math.ceil(layer.c_in_g / config["BLOCK_K"]) * config["BLOCK_K"]
    taps_dh = sum(len(td) * len(th) for td, th in itertools.product(*axis_taps_dh(layer)))
    programs = layer.groups * m_tiles * n_tiles
    issued = programs * config["BLOCK_M"] * blocks * channels * k_issued * taps_dh
    base = work(layer, config)
    return Work(base.useful_macs, base.in_range_macs, issued, programs, 0)


def depthwise_rows_work(layer: Layer, config: dict) -> Work:
    """:func:`work` of the depthwise kernel in NCHW: blocks of (pixel, channel) elements of one (D, H) phase over
    whole output rows, each element issuing its W residue's taps, the most any residue has (a static loop)."""
    spatial = (1,) * (3 - layer.ndim) + tuple(layer.output_hw)
    taps_dh = axis_taps_dh(layer)
    per_axis = [[(shapes.phase_count(o, s, r), len(t)) for r, t in enumerate(taps)]
                for o, s, taps in zip(spatial[:2], ((1,) * (3 - layer.ndim) + tuple(layer.launch_stride))[:2],
                                      taps_dh)]  # fmt: skip
    max_t_w = max(map(len, axis_taps(layer)[-1]))
    block, ow = config["BLOCK"], spatial[2]
    m_tiles = math.ceil(layer.n * per_axis[0][0][0] * per_axis[1][0][0] * ow * layer.c_out / block)
    issued = empty = 0
    for (qd, td), (qh, th) in itertools.product(*per_axis):
        tiles = math.ceil(layer.n * qd * qh * ow * layer.c_out / block)
        empty += m_tiles - tiles
        issued += tiles * block * td * th * max_t_w
    base = work(layer, config)
    return Work(base.useful_macs, base.in_range_macs, issued, len(per_axis[0]) * len(per_axis[1]) * m_tiles, empty)


def axis_taps_dh(layer: Layer) -> list[list[list[tuple[int, int]]]]:
    """:func:`axis_taps` of the D and H axes (one residue of no tap along a unit axis), the window variant's loop."""
    taps = axis_taps(layer)
    return ([[[(0, 0)]]] * (3 - layer.ndim) + taps)[:2]


def nchw_config(layer: Layer, dtype: torch.dtype, target: str = "default") -> dict:
    """The config the launcher picks for ``layer`` with an NCHW input and output: from the ``_nchw`` key, fitted to
    the window variant's extents (input columns x rows, W taps x output channels, input channels), or for the
    depthwise kernel to the elements of whole output rows of the largest (D, H) phase."""
    spatial = (1,) * (3 - layer.ndim) + tuple(layer.output_hw)
    rows = layer.n * math.prod(shapes.phase_count(o, s, 0)
                               for o, s in zip(spatial[:2], ((1,) * (3 - layer.ndim) + tuple(layer.launch_stride))[:2]))
    if is_depthwise(layer):
        kernel, sizes = kernel_of(layer), {"BLOCK": rows * spatial[2] * layer.c_out}
    else:
        kernel = "conv_transpose2d_fwd_nchw"
        sizes = {"BLOCK_M": rows * layer.hw[-1], "BLOCK_N": layer.c_out_g * _ceil_pow2(layer.kernel[-1]),
                 "BLOCK_K": layer.c_in_g}  # fmt: skip
    return configs.choose(kernel, dtype, sizes, configs.source(kernel, target))


#: The finest GEMM tiles the tensor cores issue, per dtype class (the model counts whole tiles, so a config is held
#: to these minimums; a test checks the shipped ones): 16 rows (mma.m16), 8 columns (mma n8 and wgmma n8, the
#: narrowest: Triton pads a narrower tl.dot to it), and a K step of 16 for 16-bit operands, 8 for TF32, 4 for fp64
#: (also tl.dot's minimums in Triton 3.9).
MMA_MINIMUM = {
    "16bit": {"BLOCK_M": 16, "BLOCK_N": 8, "BLOCK_K": 16},
    "fp32": {"BLOCK_M": 16, "BLOCK_N": 8, "BLOCK_K": 8},
    "fp64": {"BLOCK_M": 16, "BLOCK_N": 8, "BLOCK_K": 4},
}

#: AMD's MI300 (gfx942), 64-lane wavefronts: tl.dot maps to v_mfma only from 16 columns on (a narrower tile falls
#: back to FMA), and gfx942.json ships no K step below 16 (its smallest compiled tile, 16x16x16, for every dtype).
#: So the floor on gfx942 counts that tile; it is the finest tile the shipped configs use, not a proof that a
#: smaller K step could not be compiled there.
MMA_MINIMUM_GFX942 = {cls: {"BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_K": 16} for cls in MMA_MINIMUM}


def mma_minimum(target: str, dtype_cls: str) -> dict[str, int]:
    """The finest GEMM tile of a config file's target (``gfx*``: AMD's; any other: NVIDIA's tensor cores)."""
    return (MMA_MINIMUM_GFX942 if target.startswith("gfx") else MMA_MINIMUM)[dtype_cls]


def floor(layer: Layer, dtype: torch.dtype, target: str = "default") -> float:
    """Issued over useful MACs that no config can go below: the kernel's own structure with the finest tiles (no
    row padding, :data:`MMA_MINIMUM` columns and K step; single elements for the depthwise kernel). Above 1.0 when
    taps are masked at the borders (a phase grid larger than the input: a ``k = 2s``, ``p = 0`` layer computes
    ``(H + 1)^2`` outputs per phase from ``H^2`` inputs) or when a GEMM extent is not a multiple of the tensor
    cores' tile (3 RGB output channels issue 8 columns on NVIDIA GPUs, 16 on gfx942: :func:`mma_minimum` of
    ``target``)."""
    finest = {**mma_minimum(target, configs.dtype_class(dtype)), "BLOCK_M": 1, "BLOCK": 1}
    return work(layer, finest).ratio


def traffic(layer: Layer, itemsize: int, bias: bool = True, activation: bool = True) -> dict[str, int]:
    """Bytes to and from memory of one call: ``fused`` (this kernel: input, weight and bias read once, the output
    written once) and ``unfused`` (the chain a user runs today: the conv writes the output, then a pass that reads
    and writes it to add the bias when there is one, then a pass that reads and writes it for the activation when
    there is one), counting each tensor once per pass. The one byte model of the package: the work model's table
    and the perf report both read it (:func:`spec_traffic` for a layer of the set)."""
    x = layer.n * layer.c_in * math.prod(layer.hw) * itemsize
    w = layer.c_in * layer.c_out_g * math.prod(layer.kernel) * itemsize
    b = layer.c_out * itemsize if bias else 0
    y = layer.n * layer.c_out * math.prod(layer.output_hw) * itemsize
    unfused = (x + w + y) + ((y + b + y) if bias else 0) + ((y + y) if activation else 0)
    return {"fused": x + w + b + y, "unfused": unfused}


def spec_traffic(spec: layers.LayerSpec, itemsize: int) -> dict[str, int]:
    """:func:`traffic` of a layer of the set, with its own bias and activation."""
    return traffic(spec.layer, itemsize, bias=spec.bias, activation=spec.activation is not None)


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


def window_path(layer: Layer, layout: str) -> bool:
    """Whether the forward launcher runs ``layer`` in ``layout`` on the GEMM kernel's window variant, whose programs
    write every phase of their rows: in NCHW (an input or output without channels innermost), unless depthwise."""
    return layout == "nchw" and not is_depthwise(layer)


def output_writes(layer: Layer, itemsize: int, layout: str, window: bool | None = None) -> int:
    """Bytes of the output's sectors as the forward kernel writes them, counting a sector once per group of
    programs that writes part of it: the programs of one phase (a grid runs phase after phase, so a sector two
    phases share is written twice unless it stays in L2 in between). A phase of the phase path (one residue per
    axis) writes every ``stride``-th output of a row in NCHW and every ``stride``-th pixel's channels in
    channels_last; the depthwise kernel's phases in NCHW are (D, H) phases, each writing whole rows; the window
    variant (:func:`window_path`, or ``window`` to force it either way) writes every phase of its rows in one
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
    if window_path(layer, layout) if window is None else window:
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


def is_depthwise(layer: Layer) -> bool:
    """Whether the launcher runs ``layer`` on the one-input-channel-per-group kernel (no tl.dot)."""
    return layer.c_in_g == 1


def kernel_of(layer: Layer) -> str:
    """The config key of the forward kernel the launcher runs for ``layer``."""
    return "conv_transpose2d_fwd_depthwise" if is_depthwise(layer) else "conv_transpose2d_fwd"


def problem_rows(layer: Layer) -> int:
    """Output pixels of the largest phase (residue 0 on every axis) per image."""
    return math.prod(shapes.phase_count(o, s, 0) for o, s in zip(layer.output_hw, layer.launch_stride))


def problem_sizes(layer: Layer) -> dict[str, int]:
    """The extents the forward launcher fits tiles to: rows of the largest phase, and output and input channels per
    group (the GEMM kernel), or (pixel, channel) elements of the largest phase (the depthwise kernel)."""
    rows = layer.n * problem_rows(layer)
    if is_depthwise(layer):
        return {"BLOCK": rows * layer.c_out}
    return {"BLOCK_M": rows, "BLOCK_N": layer.c_out_g, "BLOCK_K": layer.c_in_g}


def shipped_floor(layer: Layer, dtype: torch.dtype, target: str = "default") -> float:
    """Issued over useful MACs that no config of ``target``'s file can go below: the best of its candidates. Higher
    than :func:`floor` where a file leaves out narrow tiles on purpose: sm80's and sm90's 16-bit forward lists stop
    at 64 (sm80) and 16 (sm90) columns, 32 channels per K step and 64 rows, because narrower tiles' hot loops run
    more than 15% over the matmul tutorial's."""
    kernel = kernel_of(layer)
    candidates = configs.usable(configs.source(kernel, target), kernel, configs.dtype_class(dtype))
    return min(work(layer, c).ratio for c in candidates)


def launcher_config(layer: Layer, dtype: torch.dtype, target: str = "default") -> dict:
    """The config the launcher picks for ``layer`` from ``autotune_configs/<target>.json`` (``default.json`` when
    that file does not list the kernel) without tuning (:func:`triton_convt.launch.configs.choose`; on a GPU the tuner
    chooses among the fitting ones)."""
    kernel = kernel_of(layer)
    return configs.choose(kernel, dtype, problem_sizes(layer), configs.source(kernel, target))


def report(targets: list[str], dtype: torch.dtype) -> str:
    """A markdown table of the model for :data:`LAYERS` with each target's pick."""
    itemsize = torch.empty((), dtype=dtype).element_size()
    lines = [
        f"Work model for {str(dtype).split('.')[1]} (a model, not a measurement)",
        "",
        "| layer | target | config (M x N x K, warps, stages) | programs (empty) | issued/useful MACs "
        "| floor | in-range/useful | fused MB | unfused MB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for spec in layers.load():
        layer, moved = spec.layer, spec_traffic(spec, itemsize)
        for target in targets:
            c = launcher_config(layer, dtype, target)
            wk = work(layer, c)
            tile = f"{'x'.join(str(v) for k, v in c.items() if k.startswith('BLOCK'))}, {c['num_warps']}, " \
                   f"{c['num_stages']}"
            lines.append(
                f"| {layer.name} | {target} | {tile} | {wk.programs} ({wk.empty_programs}) | {wk.ratio:.3f} "
                f"| {floor(layer, dtype, target):.3f} | {wk.in_range_macs / wk.useful_macs:.3f} | {moved['fused'] / 1e6:.1f} "
                f"| {moved['unfused'] / 1e6:.1f} |"
            )
    return "\n".join(lines)


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
        phase_path = "" if depthwise else \
            f"{sector_traffic(spec.layer, itemsize, 'nchw', spec.bias, False)['sectors'] / 1e6:.2f}"
        macs = (work(spec.layer, launcher_config(spec.layer, dtype, "sm90")).ratio,
                window_work(spec.layer, nchw_config(spec.layer, dtype, "sm90")).ratio)
        lines.append(f"| {spec.layer.name} | {'depthwise' if depthwise else 'GEMM'} | {cl['minimum'] / 1e6:.2f} "
                     f"| {cl['sectors'] / 1e6:.2f} | {nchw['sectors'] / 1e6:.2f} "
                     f"| {nchw['sectors'] / cl['sectors']:.2f} | {phase_path} | {macs[0]:.2f} / {macs[1]:.2f} |")  # fmt: skip
    return "\n".join(lines)


def upsampler_work(spec: layers.UpsamplerSpec, itemsize: int) -> dict[str, int]:
    """MACs and bytes of a nearest-upsample + conv layer, fused (:func:`triton_convt.upsample_conv2d`) against the
    two-op chain ``conv2d(interpolate(x))`` (a model, plain arithmetic).

    MACs: the chain's conv issues every tap for every output, ``N*C_out*C_in*OH*OW*kH*kW``; the fold issues, per
    output phase, only the folded taps of that phase (taps reading the same input pixel were added into one:
    4 instead of 9 for nearest x2 + 3x3), border taps included. Bytes: the chain reads ``x`` and writes the
    upsampled ``u`` (``s_h*s_w`` times larger), then reads ``u``, ``w`` and ``b`` and writes ``y``; the fused call
    reads ``w`` and writes the folded ``W'`` (one small launch), then reads ``x``, ``W'`` and ``b`` and writes ``y``.
    """
    params = UpsampleConvParams(spec.scale, tuple((p, p) for p in spec.padding), (1, 1), 1, spec.kernel)
    (oh, ow), folds = spec.output_hw, params.folds()
    phase_taps = []
    for fold, out in zip(folds, (oh, ow)):
        per_phase = [sum(1 for k, taps in enumerate(fold.taps) if taps and (k - fold.pad) % fold.scale == r)
                     for r in range(fold.scale)]  # fmt: skip
        phase_taps.append(sum(shapes.phase_count(out, fold.scale, r) * t for r, t in enumerate(per_phase)))
    channels = spec.n * spec.c_out * spec.c_in
    x = spec.n * spec.c_in * spec.hw[0] * spec.hw[1] * itemsize
    u = x * spec.scale[0] * spec.scale[1]
    w = spec.c_out * spec.c_in * spec.kernel[0] * spec.kernel[1] * itemsize
    folded = spec.c_out * spec.c_in * folds[0].folded * folds[1].folded * itemsize
    b = spec.c_out * itemsize if spec.bias else 0
    y = spec.n * spec.c_out * oh * ow * itemsize
    return dict(chain_macs=channels * oh * ow * spec.kernel[0] * spec.kernel[1],
                fused_macs=channels * phase_taps[0] * phase_taps[1],
                chain_bytes=x + u + u + w + b + y, fused_bytes=w + folded + x + folded + b + y)  # fmt: skip


def upsampler_report(dtype: torch.dtype) -> str:
    """A markdown table of :func:`upsampler_work` for the report's nearest-upsample + conv layers."""
    itemsize = torch.empty((), dtype=dtype).element_size()
    lines = [
        f"Nearest-upsample + conv, fused vs interpolate + conv2d, {str(dtype).split('.')[1]} (a model, not a "
        "measurement)", "",
        "| layer | chain GMACs | fused GMACs | MAC ratio | chain MB | fused MB | byte ratio |",
        "|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for spec in layers.load_upsamplers():
        m = upsampler_work(spec, itemsize)
        lines.append(
            f"| {spec.name} | {m['chain_macs'] / 1e9:.2f} | {m['fused_macs'] / 1e9:.2f} "
            f"| {m['chain_macs'] / m['fused_macs']:.2f} | {m['chain_bytes'] / 1e6:.1f} | {m['fused_bytes'] / 1e6:.1f} "
            f"| {m['chain_bytes'] / m['fused_bytes']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="triton-convt-workmodel", description="Print the work model of the report's layer set (model figures, not measurements).")
    parser.add_argument("--dtype", default="float16", choices=("float16", "bfloat16", "float32", "float64"))
    args = parser.parse_args(argv)
    print(report(configs.available_targets(), getattr(torch, args.dtype)))
    print()
    print(layout_report(getattr(torch, args.dtype)))
    print()
    print(upsampler_report(getattr(torch, args.dtype)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
