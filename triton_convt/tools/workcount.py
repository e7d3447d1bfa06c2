"""The counting half of the work model: the work the forward kernel issues and the bytes a call moves, per layer and
config (plain Python).

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

:data:`LAYERS` is the report's layer set (decoder layers, from ``layers.json``); :func:`upsampler_work` and
:func:`pixel_shuffle_work` count the fused nearest-upsample + conv and conv2d + pixel_shuffle layers against the op
chains torch runs. :mod:`.workmodel` turns these counts into modelled times and prints them.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch

from ..launch import configs, phase_table, shapes, window
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
    #: Loop iterations summed over the programs that run (each: its phase's taps times the channel blocks)
    iterations: int = 0
    #: Tiles each program computes one after the other: 1, or every (D, H) phase for the window variant
    passes: int = 1

    @property
    def active_programs(self) -> int:
        """Programs that run (the grid less those that exit at once)."""
        return self.programs - self.empty_programs

    @property
    def ratio(self) -> float:
        """Issued over useful MACs (1.0 is no waste)."""
        return self.issued_macs / self.useful_macs


def _ceil_pow2(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


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


def work(layer: Layer, config: dict, layout: str = "channels_last") -> Work:
    """The MACs and programs of one forward launch of ``layer`` with ``config`` with input and output in ``layout``
    (``channels_last`` or ``nchw``), on the path the launcher runs it (:func:`runs_window`): :func:`window_work` or
    :func:`phase_work`; the depthwise kernel's in NCHW, :func:`depthwise_rows_work`."""
    if runs_window(layer, layout):
        return window_work(layer, config)
    if layout == "nchw" and is_depthwise(layer):
        return depthwise_rows_work(layer, config)
    return phase_work(layer, config)


def runs_window(layer: Layer, layout: str = "channels_last") -> bool:
    """Whether the forward launcher runs ``layer`` with input and output in ``layout`` on the GEMM kernel's window
    variant, whose programs write every phase of their rows: in NCHW, and in every layout a layer of few output
    channels per group (:func:`triton_convt.launch.window.narrow`); never the depthwise kernel."""
    if is_depthwise(layer):
        return False
    return layout == "nchw" or window.narrow(layer.c_out_g, layer.kernel[-1])


def phase_work(layer: Layer, config: dict) -> Work:
    """The MACs and programs of one forward launch of ``layer`` with ``config`` on the phase path (as the kernel and
    launcher do it: one program per row tile of the largest phase, column tile, group and phase), for 1 to 3
    spatial axes."""
    if is_depthwise(layer):  # blocks of (pixel, channel) elements of all groups; one multiply per tap, no K tile
        bm, bn, n_tiles, k_issued, groups, per_row = config["BLOCK"], 1, 1, 1, 1, layer.c_out
    else:
        bm, bn, bk, groups, per_row = config["BLOCK_M"], config["BLOCK_N"], config["BLOCK_K"], layer.groups, 1
        n_tiles = math.ceil(layer.c_out_g / bn)
        k_issued = math.ceil(layer.c_in_g / bk) * bk
    k_blocks = k_issued // (1 if is_depthwise(layer) else config["BLOCK_K"])
    m_tiles = math.ceil(layer.n * problem_rows(layer) * per_row / bm)
    channel_macs = layer.c_in_g * layer.c_out_g * layer.groups
    issued = in_range = empty = iterations = 0
    for rows, taps in phases(layer):
        tiles = math.ceil(layer.n * math.prod(rows) * per_row / bm)
        empty += (m_tiles - tiles) * n_tiles * groups
        issued += tiles * n_tiles * groups * bm * bn * k_issued * math.prod(map(len, taps))
        iterations += tiles * n_tiles * groups * k_blocks * math.prod(map(len, taps))
        # A tap (one per axis) is in range for the outputs whose input exists along every axis.
        in_axis = [[_in_range(q, size, delta) for _, delta in axis] for q, size, axis in zip(rows, layer.hw, taps)]
        in_range += layer.n * math.prod(map(sum, in_axis)) * channel_macs
    useful = layer.n * layer.c_in * layer.c_out_g * math.prod(layer.hw) * math.prod(layer.kernel)
    programs = math.prod(layer.launch_stride) * groups * m_tiles * n_tiles
    return Work(useful, in_range, issued, programs, empty, iterations)


def window_work(layer: Layer, config: dict) -> Work:
    """:func:`work` on the GEMM kernel's window variant (NCHW inputs, narrow layers in every layout)
    (:mod:`triton_convt.launch.window`): one program per (row tile, window, column tile, group) runs every (D, H)
    phase of its rows; its rows are ``BLOCK_M / WINDOW_W`` rows of the largest (D, H) phase times a window of input
    columns (past the row's end, and the windows' overlap on rows wider than one, issued too); its columns are the
    kernel's W taps in two products of a power of two blocks each, times ``BLOCK_N / next_pow2(kW)`` channels. The
    layers the launcher runs on the phase path after all (no window layout, or a tile narrower than the taps) are
    :func:`phase_work`'s. Each program's loop runs, per (D, H) phase, that phase's taps times the channel blocks."""
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
    win = window.plan_window(axis, iw, spatial[2], rows, config["BLOCK_M"])
    if win is None or config["BLOCK_N"] < taps_n:
        return phase_work(layer, config)
    channels = config["BLOCK_N"] // taps_n
    taps_a = 1 << (kw.bit_length() - 1)
    blocks = taps_a + (0 if kw == taps_a else _ceil_pow2(kw - taps_a))
    m_tiles = math.ceil(rows / (config["BLOCK_M"] // win.block_w)) * win.tiles
    n_tiles = math.ceil(layer.c_out_g / channels)
    k_blocks = math.ceil(layer.c_in_g / config["BLOCK_K"])
    phases_dh = list(itertools.product(*axis_taps_dh(layer)))
    taps_dh = sum(len(td) * len(th) for td, th in phases_dh)
    programs = layer.groups * m_tiles * n_tiles
    issued = programs * config["BLOCK_M"] * blocks * channels * k_blocks * config["BLOCK_K"] * taps_dh
    base = phase_work(layer, config)
    return Work(
        base.useful_macs, base.in_range_macs, issued, programs, 0, programs * k_blocks * taps_dh, len(phases_dh)
    )


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
    base = phase_work(layer, config)
    return Work(base.useful_macs, base.in_range_macs, issued, len(per_axis[0]) * len(per_axis[1]) * m_tiles, empty)


def axis_taps_dh(layer: Layer) -> list[list[list[tuple[int, int]]]]:
    """:func:`axis_taps` of the D and H axes (one residue of no tap along a unit axis), the window variant's loop."""
    taps = axis_taps(layer)
    return ([[[(0, 0)]]] * (3 - layer.ndim) + taps)[:2]


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
    cores' tile (3 RGB output channels would issue 8 columns on NVIDIA GPUs, 16 on gfx942: :func:`mma_minimum` of
    ``target``). A layer on the window variant (:func:`runs_window`) is held to that variant's structure: every
    input column once (no window overlap, no row padding), the W taps' column blocks, the (D, H) phases of the
    largest one's rows, the finest K step, and the fewest channels whose taps fill the finest column tile."""
    finest = {**mma_minimum(target, configs.dtype_class(dtype)), "BLOCK_M": 1, "BLOCK": 1}
    if not runs_window(layer):
        return phase_work(layer, finest).ratio
    kw = layer.kernel[-1]
    taps_a = 1 << (kw.bit_length() - 1)
    blocks = taps_a + (0 if kw == taps_a else _ceil_pow2(kw - taps_a))
    channels = max(1, finest["BLOCK_N"] // _ceil_pow2(kw))
    spatial = (1,) * (3 - layer.ndim) + tuple(layer.output_hw)
    strides3 = (1,) * (3 - layer.ndim) + tuple(layer.launch_stride)
    rows = layer.n * math.prod(shapes.phase_count(o, s, 0) for o, s in zip(spatial[:2], strides3[:2]))
    taps_dh = sum(len(td) * len(th) for td, th in itertools.product(*axis_taps_dh(layer)))
    issued = (layer.groups * rows * layer.hw[-1] * blocks * math.ceil(layer.c_out_g / channels) * channels
              * math.ceil(layer.c_in_g / finest["BLOCK_K"]) * finest["BLOCK_K"] * taps_dh)  # fmt: skip
    return issued / phase_work(layer, finest).useful_macs


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


def is_depthwise(layer: Layer) -> bool:
    """Whether the launcher runs ``layer`` on the one-input-channel-per-group kernel (no tl.dot)."""
    return layer.c_in_g == 1


def kernel_of(layer: Layer, layout: str = "channels_last") -> str:
    """The config key of the forward kernel the launcher runs for ``layer`` in ``layout``: the window variant's
    (``_nchw``, :func:`runs_window`), the phase path's, or the depthwise kernel's."""
    if is_depthwise(layer):
        return "conv_transpose2d_fwd_depthwise"
    return "conv_transpose2d_fwd" + ("_nchw" if runs_window(layer, layout) else "")


def problem_rows(layer: Layer) -> int:
    """Output pixels of the largest phase (residue 0 on every axis) per image."""
    return math.prod(shapes.phase_count(o, s, 0) for o, s in zip(layer.output_hw, layer.launch_stride))


def problem_sizes(layer: Layer, layout: str = "channels_last") -> dict[str, int]:
    """The extents the forward launcher fits tiles to: rows of the largest phase, and output and input channels per
    group (the GEMM kernel's phase path); input columns of the largest (D, H) phase's rows, W taps times output
    channels, and input channels (its window variant, :func:`runs_window`); or (pixel, channel) elements of the
    largest phase (the depthwise kernel; in NCHW, of whole output rows of the largest (D, H) phase)."""
    if runs_window(layer, layout) or (layout == "nchw" and is_depthwise(layer)):
        spatial = (1,) * (3 - layer.ndim) + tuple(layer.output_hw)
        strides3 = (1,) * (3 - layer.ndim) + tuple(layer.launch_stride)
        rows = layer.n * math.prod(shapes.phase_count(o, s, 0) for o, s in zip(spatial[:2], strides3[:2]))
        if is_depthwise(layer):
            return {"BLOCK": rows * spatial[2] * layer.c_out}
        return {"BLOCK_M": rows * layer.hw[-1], "BLOCK_N": layer.c_out_g * _ceil_pow2(layer.kernel[-1]),
                "BLOCK_K": layer.c_in_g}  # fmt: skip
    rows = layer.n * problem_rows(layer)
    if is_depthwise(layer):
        return {"BLOCK": rows * layer.c_out}
    return {"BLOCK_M": rows, "BLOCK_N": layer.c_out_g, "BLOCK_K": layer.c_in_g}


def shipped_floor(layer: Layer, dtype: torch.dtype, target: str = "default") -> float:
    """Issued over useful MACs that no config of ``target``'s file can go below: the best of its candidates for the
    kernel the launcher runs (:func:`kernel_of`). Higher than :func:`floor` where a file leaves out narrow tiles on
    purpose (hot loops more than 15% over the matmul tutorial's)."""
    kernel = kernel_of(layer)
    candidates = configs.usable(configs.source(kernel, target), kernel, configs.dtype_class(dtype))
    return min(work(layer, c).ratio for c in candidates)


def launcher_config(layer: Layer, dtype: torch.dtype, target: str = "default", layout: str = "channels_last") -> dict:
    """The config the launcher picks for ``layer`` in ``layout`` from ``autotune_configs/<target>.json``
    (``default.json`` when that file does not list the kernel) without tuning
    (:func:`triton_convt.launch.configs.choose`; on a GPU the tuner chooses among the fitting ones)."""
    kernel = kernel_of(layer, layout)
    return configs.choose(kernel, dtype, problem_sizes(layer, layout), configs.source(kernel, target))


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


#: The config key the conv2d + pixel_shuffle launch takes its tiles from (channels_last inputs).
PIXEL_SHUFFLE_KERNEL = "conv2d_pixel_shuffle"


def pixel_shuffle_work(spec: layers.PixelShuffleSpec, dtype: torch.dtype, target: str = "default") -> dict[str, int]:
    """MACs and bytes of a conv2d + pixel_shuffle layer, fused (:func:`triton_convt.conv2d_pixel_shuffle`) against the
    chain torch runs (a model, plain arithmetic).

    MACs: both compute the conv's useful MACs (:attr:`.layers.PixelShuffleSpec.macs`); the fused launch issues whole
    tiles of the config the launcher picks from ``target``'s file (rows = the conv's output pixels, columns = its
    output channels per group, K = input channels per group per tap, every tap issued, border taps masked).
    Bytes: the chain's conv reads ``x``, ``w`` and ``b`` and writes the ``r*r``-wide conv output ``z``, the shuffle
    reads ``z`` and writes ``y`` (as large), and an activation, when one follows, reads and writes ``y`` again; the
    fused call reads ``x``, ``w`` and ``b`` once and writes ``y`` once (the weight in a layout the kernel reads in
    place, as :class:`triton_convt.PixelShuffleConv2d` owns it; a default-layout weight adds one read and write of
    ``w``).
    """
    itemsize = torch.empty((), dtype=dtype).element_size()
    c_in_g, c_out_g = spec.c_in // spec.groups, spec.c_out // spec.groups
    rows = spec.n * math.prod(spec.conv_hw)
    config = configs.choose(PIXEL_SHUFFLE_KERNEL, dtype, {"BLOCK_M": rows, "BLOCK_N": c_out_g, "BLOCK_K": c_in_g},
                            configs.source(PIXEL_SHUFFLE_KERNEL, target))  # fmt: skip
    tiles = {name: math.ceil(extent / config[name]) * config[name]
             for name, extent in (("BLOCK_M", rows), ("BLOCK_N", c_out_g), ("BLOCK_K", c_in_g))}  # fmt: skip
    issued = spec.groups * tiles["BLOCK_M"] * tiles["BLOCK_N"] * tiles["BLOCK_K"] * math.prod(spec.kernel)
    x = spec.n * spec.c_in * math.prod(spec.hw) * itemsize
    w = spec.c_out * c_in_g * math.prod(spec.kernel) * itemsize
    b = spec.c_out * itemsize if spec.bias else 0
    y = spec.n * spec.c_out * math.prod(spec.conv_hw) * itemsize  # = the conv output z: the shuffle moves, not adds
    chain = (x + w + b + y) + (y + y) + ((y + y) if spec.activation else 0)
    return dict(useful_macs=spec.macs, issued_macs=issued, chain_bytes=chain, fused_bytes=x + w + b + y,
                chain_launches=2 + (spec.activation is not None), fused_launches=1, config=config)  # fmt: skip
