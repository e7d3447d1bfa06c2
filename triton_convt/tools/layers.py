"""The perf report's layer set, read from ``layers.json`` (data shipped inside the package).

Each entry is one upsampling ``ConvTranspose2d`` of a real decoder at the size that model runs it (or an odd shape
that exercises the general path), with what follows it and where it comes from. :func:`load` returns them as
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
from dataclasses import dataclass
from importlib import resources

from ..activations import check_activation
from ..launch import shapes

@dataclass(frozen=True)
class Layer:
    """One ConvTranspose2d problem; every pair is (H, W)."""

    name: str
    n: int
    c_in: int
    c_out: int
    hw: tuple[int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    output_padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1

    @property
    def output_hw(self) -> tuple[int, int]:
        return tuple(
            shapes.output_length(*args)
            for args in zip(self.hw, self.kernel, self.stride, self.padding, self.output_padding, self.dilation)
        )

    @property
    def launch_stride(self) -> tuple[int, int]:
        """The stride the forward kernels run the layer with (:func:`triton_convt.launch.shapes.launch_stride`)."""
        return tuple(map(shapes.launch_stride, self.hw, self.kernel, self.stride, self.dilation))

    @property
    def c_in_g(self) -> int:
        return self.c_in // self.groups

    @property
    def c_out_g(self) -> int:
        return self.c_out // self.groups


#: Fields of the Layer geometry that are (H, W) pairs, and their value when an entry leaves them out.
_PAIRS = {"kernel": None, "stride": (1, 1), "padding": (0, 0), "output_padding": (0, 0), "dilation": (1, 1)}


@dataclass(frozen=True)
class LayerSpec:
    """One layer of the report: the call ``conv_transpose2d(x[N, C_in, H, W], w, b if bias, stride, padding,
    output_padding, groups, dilation, activation=activation)``. The geometry is the work model's Layer; its
    attributes (``n``, ``c_in``, ``hw``, ``kernel``, ``output_hw`` ...) read through."""

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
        """``(stride, padding, output_padding, groups, dilation)``, positional as ``F.conv_transpose2d`` takes them."""
        return self.stride, self.padding, self.output_padding, self.groups, self.dilation

    @property
    def flops(self) -> int:
        """Useful FLOPs: ``2 * N * C_in * (C_out/groups) * kH * kW * H_in * W_in`` (every input pixel times every
        tap, the definition the report's TFLOP/s use)."""
        pixels, taps = self.hw[0] * self.hw[1], self.kernel[0] * self.kernel[1]
        return 2 * self.n * self.c_in * (self.c_out // self.groups) * pixels * taps

    def scaled(self, pixels: int = 16, channels: int = 16, groups: int = 2) -> LayerSpec:
        """This layer shrunk for the interpreter: batch 1, at most ``pixels`` input pixels (aspect kept, each side
        at least 2), at most ``channels`` input and output channels per group, at most ``groups`` groups (a layer
        with one input channel per group keeps one)."""
        h, w = self.hw
        factor = min(1.0, (pixels / (h * w)) ** 0.5)
        hw = tuple(min(side, max(2, round(side * factor))) for side in (h, w))
        g = min(self.groups, groups)
        c_in_g = min(self.c_in // self.groups, channels)
        c_out_g = min(self.c_out // self.groups, channels)
        layer = dataclasses.replace(self.layer, n=1, hw=hw, c_in=c_in_g * g, c_out=c_out_g * g, groups=g)
        return dataclasses.replace(self, layer=layer)


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def parse(entry: dict) -> LayerSpec:
    """One entry of ``layers.json`` as a LayerSpec; ValueError naming the entry if it is not a valid call."""
    name = entry.get("name", "?")
    try:
        n, c_in, h, w = entry["input"]
        pairs = {k: _pair(entry.get(k, default)) for k, default in _PAIRS.items()}
        layer = Layer(name, n, c_in, entry["c_out"], (h, w), groups=entry.get("groups", 1), **pairs)
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
