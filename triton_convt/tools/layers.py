"""The perf report's layer set, read from ``layers.json`` (data shipped inside the package).

Each entry is one upsampling transposed convolution of a real decoder at the size that model runs it (or an odd
shape that exercises the general path), with what follows it and where it comes from: ``ConvTranspose2d`` of image
decoders, ``ConvTranspose1d`` of vocoders and codecs, ``ConvTranspose3d`` of volumetric decoders. One geometry type
serves all three: every per-axis field is a tuple with one entry per spatial axis, (L), (H, W) or (D, H, W), as
torch orders them. :func:`load` returns them as
:class:`LayerSpec`, whose geometry is a :class:`Layer` (the work model's ``LAYERS`` is built from this file: one
source of truth). :meth:`LayerSpec.scaled` shrinks a layer to a
size the Triton interpreter runs in well under a second while keeping what decides the kernel's path: kernel,
stride, padding, output_padding, dilation, activation, bias, the groups structure (depthwise stays depthwise) and
the aspect of non-square inputs.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from dataclasses import dataclass
from importlib import resources

from ..activations import check_activation
from ..launch import shapes


@dataclass(frozen=True)
class Layer:
    """One transposed-convolution problem with 1 to 3 spatial axes. ``hw`` is the input's spatial size and every
    per-axis field has one entry per axis, in torch's order ((L), (H, W) or (D, H, W)); ``stride``, ``padding``,
    ``output_padding`` and ``dilation`` left out (None) are 1, 0, 0 and 1 on every axis."""

    name: str
    n: int
    c_in: int
    c_out: int
    hw: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...] | None = None
    padding: tuple[int, ...] | None = None
    output_padding: tuple[int, ...] | None = None
    dilation: tuple[int, ...] | None = None
    groups: int = 1

    def __post_init__(self):
        for field, default in _AXES.items():
            if getattr(self, field) is None:
                object.__setattr__(self, field, (default,) * len(self.hw))
        axes = {len(getattr(self, f)) for f in ("hw", *_AXES)}
        if len(axes) != 1 or not 1 <= len(self.hw) <= 3:
            raise ValueError(f"layer {self.name!r}: per-axis fields of different lengths or not 1 to 3 axes: "
                             f"{[getattr(self, f) for f in ('hw', *_AXES)]}")  # fmt: skip

    @property
    def ndim(self) -> int:
        """The number of spatial axes (1, 2 or 3)."""
        return len(self.hw)

    @property
    def output_hw(self) -> tuple[int, ...]:
        """The output's spatial size, one entry per axis."""
        return tuple(
            shapes.output_length(*args)
            for args in zip(self.hw, self.kernel, self.stride, self.padding, self.output_padding, self.dilation)
        )

    @property
    def launch_stride(self) -> tuple[int, ...]:
        """The stride the forward kernels run the layer with (:func:`triton_convt.launch.shapes.launch_stride`)."""
        return tuple(map(shapes.launch_stride, self.hw, self.kernel, self.stride, self.dilation))

    @property
    def c_in_g(self) -> int:
        return self.c_in // self.groups

    @property
    def c_out_g(self) -> int:
        return self.c_out // self.groups


#: Fields of the Layer geometry that have one entry per spatial axis, and the value of each entry when a
#: ``layers.json`` entry leaves the field out (``kernel`` is required).
_AXES = {"kernel": None, "stride": 1, "padding": 0, "output_padding": 0, "dilation": 1}


@dataclass(frozen=True)
class LayerSpec:
    """One layer of the report: the call ``conv_transpose{1,2,3}d(x[N, C_in, *spatial], w, b if bias, stride,
    padding, output_padding, groups, dilation, activation=activation)``. The geometry is the work model's Layer;
    its attributes (``n``, ``c_in``, ``hw``, ``kernel``, ``output_hw``, ``ndim`` ...) read through."""

    layer: Layer  #: name and geometry
    source: str  #: the model and where in it
    after: str  #: what follows the conv in that model (and so whether the activation can be fused)
    bias: bool = True
    activation: str | None = None

    def __getattr__(self, name: str):
        if name == "layer":  # not set yet (copy, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.layer, name)

    @property
    def conv_args(self) -> tuple:
        """``(stride, padding, output_padding, groups, dilation)``, positional as ``F.conv_transpose{1,2,3}d`` take
        them."""
        return self.stride, self.padding, self.output_padding, self.groups, self.dilation

    @property
    def flops(self) -> int:
        """Useful FLOPs: ``2 * N * C_in * (C_out/groups) * prod(kernel) * prod(input size)`` (every input pixel
        times every tap, the definition the report's TFLOP/s use)."""
        pixels, taps = math.prod(self.hw), math.prod(self.kernel)
        return 2 * self.n * self.c_in * (self.c_out // self.groups) * pixels * taps

    def scaled(self, pixels: int = 16, channels: int = 16, groups: int = 2) -> LayerSpec:
        """This layer shrunk for the interpreter: batch 1, at most ``pixels`` input pixels (aspect kept, each side
        at least 2, so at most ``max(pixels, 2**ndim)``), at most ``channels`` input and output channels per
        group, at most ``groups`` groups (a layer with one input channel per group keeps one)."""
        factor = min(1.0, (pixels / math.prod(self.hw)) ** (1 / self.ndim))
        hw = [min(side, max(2, round(side * factor))) for side in self.hw]
        while math.prod(hw) > pixels and max(hw) > 2:  # rounding up on every axis of a volume overshoots
            hw[hw.index(max(hw))] -= 1
        hw = tuple(hw)
        g = min(self.groups, groups)
        c_in_g = min(self.c_in // self.groups, channels)
        c_out_g = min(self.c_out // self.groups, channels)
        layer = dataclasses.replace(self.layer, n=1, hw=hw, c_in=c_in_g * g, c_out=c_out_g * g, groups=g)
        return dataclasses.replace(self, layer=layer)


def _pair(value) -> tuple[int, int]:
    return _axes(value, 2)


def _axes(value, ndim: int) -> tuple[int, ...]:
    """A per-axis field of an entry: an int for every axis, or a list with one entry per axis."""
    if isinstance(value, int):
        return (value,) * ndim
    if len(value) != ndim:
        raise ValueError(f"{list(value)} does not have one entry per spatial axis ({ndim})")
    return tuple(value)


def parse(entry: dict) -> LayerSpec:
    """One entry of ``layers.json`` as a LayerSpec (``input`` is ``[N, C_in, *spatial]``, 1 to 3 spatial axes);
    ValueError naming the entry if it is not a valid call."""
    name = entry.get("name", "?")
    try:
        n, c_in, *spatial = entry["input"]
        axes = {k: _axes(entry[k] if k in entry or default is None else default, len(spatial))
                for k, default in _AXES.items()}  # fmt: skip
        layer = Layer(name, n, c_in, entry["c_out"], tuple(spatial), groups=entry.get("groups", 1), **axes)
        activation = check_activation(entry.get("activation")) if entry.get("activation") else None
        spec = LayerSpec(layer, entry["source"], entry.get("after", ""), entry.get("bias", True), activation)
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"layers.json: entry {name!r} is invalid: {e!r}") from e
    if spec.c_in % spec.groups or spec.c_out % spec.groups or min(spec.output_hw) <= 0:
        raise ValueError(f"layers.json: entry {name!r}: channels not divisible by groups, or an empty output")
    return spec


@functools.cache
def load() -> tuple[LayerSpec, ...]:
    """The layer set, in file order."""
    data = json.loads(resources.files(__package__).joinpath("layers.json").read_text())
    specs = tuple(parse(entry) for entry in data["layers"])
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"layers.json: duplicate layer names in {names}")
    return specs


def select(names: list[str] | None) -> tuple[LayerSpec, ...]:
    """The layers named in ``names`` (all when None or empty), in file order; KeyError for an unknown name."""
    specs = load()
    if not names:
        return specs
    unknown = set(names) - {s.name for s in specs}
    if unknown:
        raise KeyError(f"unknown layers {sorted(unknown)}; known: {', '.join(s.name for s in specs)}")
    return tuple(s for s in specs if s.name in names)


@dataclass(frozen=True)
class UpsamplerSpec:
    """One nearest-upsample + conv layer of the report (``layers.json``'s ``upsamplers``): the call
    ``upsample_conv2d(x[N, C_in, H, W], w[C_out, C_in, kH, kW], b if bias, scale, padding)``, stride 1, groups 1."""

    name: str
    source: str  #: the model and where in it
    after: str  #: what follows the layer in that model
    n: int
    c_in: int
    c_out: int
    hw: tuple[int, int]
    kernel: tuple[int, int]
    scale: tuple[int, int]
    padding: tuple[int, int]
    bias: bool = True

    @property
    def upsampled_hw(self) -> tuple[int, int]:
        """The size of the tensor the two-op chain materialises (and the fused call never does)."""
        return self.hw[0] * self.scale[0], self.hw[1] * self.scale[1]

    @property
    def output_hw(self) -> tuple[int, int]:
        return tuple(u + 2 * p - (k - 1) for u, p, k in zip(self.upsampled_hw, self.padding, self.kernel))

    def scaled(self, pixels: int = 9, channels: int = 8) -> UpsamplerSpec:
        """This layer shrunk for the interpreter (batch 1, at most ``pixels`` input pixels, ``channels`` channels)."""
        side = max(2, round(pixels**0.5))
        return dataclasses.replace(self, n=1, hw=(min(self.hw[0], side), min(self.hw[1], side)),
                                   c_in=min(self.c_in, channels), c_out=min(self.c_out, channels))  # fmt: skip


@functools.cache
def load_upsamplers() -> tuple[UpsamplerSpec, ...]:
    """The nearest-upsample + conv layers of the report, in file order."""
    data = json.loads(resources.files(__package__).joinpath("layers.json").read_text())
    specs = []
    for entry in data["upsamplers"]:
        n, c_in, h, w = entry["input"]
        specs.append(UpsamplerSpec(entry["name"], entry["source"], entry.get("after", ""), n, c_in, entry["c_out"],
                                   (h, w), _pair(entry["kernel"]), _pair(entry["scale"]), _pair(entry["padding"]),
                                   entry.get("bias", True)))  # fmt: skip
    return tuple(specs)


@dataclass(frozen=True)
class PixelShuffleSpec:
    """One conv2d + pixel_shuffle layer of the report (``layers.json``'s ``pixel_shuffles``): the call
    ``conv2d_pixel_shuffle(x[N, C_in, H, W], w[c_out, C_in/groups, kH, kW], b if bias, upscale, stride, padding,
    dilation, groups, activation=activation)``, ``c_out = C*upscale^2`` the conv's output channels."""

    name: str
    source: str  #: the model and where in it
    after: str  #: what follows the shuffle in that model
    n: int
    c_in: int
    c_out: int
    hw: tuple[int, int]
    kernel: tuple[int, int]
    upscale: int
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    bias: bool = True
    activation: str | None = None

    @property
    def conv_hw(self) -> tuple[int, int]:
        """The conv's output size, before the shuffle (the ``r*r``-wide tensor the two-op chain materialises)."""
        axes = zip(self.hw, self.kernel, self.stride, self.padding, self.dilation)
        return tuple((i + 2 * p - d * (k - 1) - 1) // s + 1 for i, k, s, p, d in axes)

    @property
    def output_hw(self) -> tuple[int, int]:
        return tuple(c * self.upscale for c in self.conv_hw)

    @property
    def macs(self) -> int:
        """Useful MACs: ``N * c_out * (C_in/groups) * kH * kW`` per conv output pixel."""
        return self.n * self.c_out * (self.c_in // self.groups) * math.prod(self.kernel) * math.prod(self.conv_hw)

    def scaled(self, pixels: int = 9, channels: int = 8) -> PixelShuffleSpec:
        """This layer shrunk for the interpreter: batch 1, at most ``pixels`` input pixels, at most ``channels``
        input channels and ``channels`` output channels after the shuffle (the upscale factor kept)."""
        side = max(2, round(pixels**0.5))
        per_pixel = self.upscale**2
        return dataclasses.replace(self, n=1, hw=(min(self.hw[0], side), min(self.hw[1], side)),
                                   c_in=min(self.c_in, channels),
                                   c_out=min(self.c_out // per_pixel, channels) * per_pixel)  # fmt: skip


@functools.cache
def load_pixel_shuffles() -> tuple[PixelShuffleSpec, ...]:
    """The conv2d + pixel_shuffle layers of the report, in file order."""
    data = json.loads(resources.files(__package__).joinpath("layers.json").read_text())
    specs = []
    for entry in data["pixel_shuffles"]:
        n, c_in, h, w = entry["input"]
        activation = check_activation(entry.get("activation")) if entry.get("activation") else None
        spec = PixelShuffleSpec(
            entry["name"], entry["source"], entry.get("after", ""), n, c_in, entry["c_out"], (h, w),
            _pair(entry["kernel"]), entry["upscale"], _pair(entry.get("stride", 1)), _pair(entry.get("padding", 0)),
            _pair(entry.get("dilation", 1)), entry.get("groups", 1), entry.get("bias", True), activation,
        )  # fmt: skip
        if spec.c_out % spec.upscale**2 or spec.c_in % spec.groups or spec.c_out % spec.groups:
            raise ValueError(f"layers.json: pixel shuffle {spec.name!r}: channels not divisible")
        specs.append(spec)
    return tuple(specs)
