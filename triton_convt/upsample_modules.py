"""``UpsampleConv2d``: nearest-neighbour upsampling then ``nn.Conv2d``, as one module computed by
:func:`triton_convt.upsample_conv2d` (the upsampled tensor is never made), and the module that replaces diffusers'
``Upsample2D`` in :func:`triton_convt.convert`. Both fold their weight on every call (two launches) unless frozen by
:func:`triton_convt.freeze` (one launch; :mod:`triton_convt.freezing`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import activations
from .freezing import FoldFreezable
from .functional.upsample_conv import scale_pair, upsample_conv2d, upsample_conv2d_prefolded

#: The nn.Upsample modes whose result equals nearest upsampling for an integer factor (nearest-exact samples
#: ``floor((o + 0.5)/s)``, which is ``floor(o/s)`` when ``s`` is an integer).
NEAREST_MODES = ("nearest", "nearest-exact")


class UpsampleConv2d(FoldFreezable, nn.Conv2d):
    """``nn.Upsample(scale_factor, mode="nearest")`` then ``nn.Conv2d(..., stride=1)`` (then ``activation``).

    A subclass of ``nn.Conv2d`` for its parameters only: ``weight`` ``(C_out, C_in/groups, kH, kW)`` and ``bias``
    with ``nn.Conv2d``'s initialisation and ``state_dict`` keys, so an ``nn.Conv2d`` checkpoint loads into it and
    back. ``padding`` takes an int, a pair, ``"same"`` or ``"valid"``; ``scale_factor`` a positive int or a pair.
    Each call folds the weight (two launches); frozen (:func:`triton_convt.freeze`), it keeps the fold and is one.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, scale_factor=2, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, device=None, dtype=None, *, activation: str | None = None,
                 negative_slope: float = activations.DEFAULT_NEGATIVE_SLOPE):  # fmt: skip
        activations.check_activation(activation)
        scale = scale_pair(scale_factor)
        super().__init__(in_channels, out_channels, kernel_size, 1, padding, dilation, groups, bias,
                         device=device, dtype=dtype)  # fmt: skip
        self.scale_factor = scale
        self.activation = activation
        self.negative_slope = negative_slope

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if self.padding_mode != "zeros":  # nn.Conv2d's other modes pad the upsampled tensor otherwise
            raise ValueError(f"UpsampleConv2d supports padding_mode='zeros' only, not {self.padding_mode!r}")
        folded = self.frozen_fold(input, self.bias, self.fold_source()[1])
        if folded is not None:
            return upsample_conv2d_prefolded(
                input, self.weight, folded, self.bias, self.scale_factor, self.padding, self.dilation, self.groups,
                activation=self.activation, negative_slope=self.negative_slope,
            )  # fmt: skip
        return upsample_conv2d(
            input, self.weight, self.bias, self.scale_factor, self.padding, self.dilation, self.groups,
            activation=self.activation, negative_slope=self.negative_slope,
        )  # fmt: skip

    def fold_source(self) -> tuple[torch.Tensor, tuple]:
        """The weight and the fold's arguments as this module holds them (:class:`~.freezing.FoldFreezable`)."""
        return self.weight, (self.scale_factor, self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        described = activations.describe(self.activation, self.negative_slope)
        return f"scale_factor={self.scale_factor}, " + super().extra_repr() + described

    @classmethod
    def from_modules(cls, upsample: nn.Upsample, conv: nn.Conv2d, activation: str | None = None,
                     negative_slope: float = activations.DEFAULT_NEGATIVE_SLOPE) -> UpsampleConv2d:  # fmt: skip
        """The fused module computing ``conv(upsample(x))`` (then ``activation``), sharing ``conv``'s parameters.

        ValueError when the pair is not exactly a nearest upsampling by an integer factor followed by a stride-1,
        zero-padded convolution (:func:`unfusable` says why).
        """
        why = unfusable(upsample, conv)
        if why:
            raise ValueError(f"cannot fuse {upsample} and {conv}: {why}")
        new = cls(
            conv.in_channels, conv.out_channels, conv.kernel_size, _scale(upsample.scale_factor), conv.padding,
            conv.dilation, conv.groups, conv.bias is not None, device="meta", activation=activation,
            negative_slope=negative_slope,
        )  # fmt: skip
        new.weight = conv.weight
        new.bias = conv.bias
        return new.train(conv.training)


def _scale(value):
    """An nn.Upsample's ``scale_factor`` as a pair of ints, or None if it is not an integer factor."""
    try:
        return scale_pair(value)
    except (TypeError, ValueError, RuntimeError):
        return None


def unfusable(upsample: nn.Module, conv: nn.Module) -> str | None:
    """Why ``conv(upsample(x))`` is not exactly an :class:`UpsampleConv2d`, or None when it is: ``upsample`` must be
    an ``nn.Upsample`` (exactly) with an integer ``scale_factor`` (not ``size``) and a nearest mode, ``conv`` an
    ``nn.Conv2d`` (exactly) with stride 1 and zero padding mode."""
    if type(upsample) is not nn.Upsample or type(conv) is not nn.Conv2d:
        return "not an nn.Upsample followed by an nn.Conv2d"
    if upsample.size is not None or upsample.scale_factor is None or _scale(upsample.scale_factor) is None:
        return "the upsampling is not by an integer scale_factor"
    if upsample.mode not in NEAREST_MODES:
        return f"mode {upsample.mode!r} is not nearest"
    return conv_unfusable(conv)


def conv_unfusable(conv: nn.Module) -> str | None:
    """Why ``conv`` is not the convolution of an :class:`UpsampleConv2d` (an ``nn.Conv2d``, exactly, with stride 1
    and zero padding mode), or None when it is."""
    if type(conv) is not nn.Conv2d:
        return "not an nn.Conv2d"
    if tuple(conv.stride) != (1, 1) or conv.padding_mode != "zeros":
        return "the convolution is strided or does not pad with zeros"
    return None


class FusedUpsample2D(FoldFreezable, nn.Module):
    """What :func:`triton_convt.convert` puts in place of diffusers' ``Upsample2D`` that interpolates with nearest
    and then convolves (``use_conv=True``, not ``use_conv_transpose``): the same outputs, without the upsampled tensor.

    It takes over the block's attributes and children (the conv under the block's ``name``, ``"conv"`` or
    ``"Conv2d_0"``, and the norm if any), so parameters are shared and ``state_dict`` keys are unchanged.
    ``forward(hidden_states, output_size=None)`` as diffusers': an ``output_size`` that is an integer multiple of the
    input size is fused as well; any other is computed as diffusers does (``F.interpolate(size=...)``, then the conv).
    Frozen (:func:`triton_convt.freeze`), it keeps the fold of the x2 scale: those calls are one launch, those of
    another ``output_size`` fold per call.
    """

    def __init__(self, block: nn.Module):
        super().__init__()
        self.channels, self.out_channels = block.channels, block.out_channels
        self.use_conv, self.use_conv_transpose = block.use_conv, block.use_conv_transpose
        self.name, self.interpolate = block.name, block.interpolate
        self.norm = block.norm
        setattr(self, self.name, getattr(block, self.name))
        self.train(block.training)

    def forward(self, hidden_states: torch.Tensor, output_size=None, *args, **kwargs) -> torch.Tensor:
        # diffusers' own check (an assert there too); a deprecated ``scale`` argument is ignored there as here.
        assert hidden_states.shape[1] == self.channels
        if self.norm is not None:
            hidden_states = self.norm(hidden_states.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        conv = getattr(self, self.name)
        scale = (2, 2) if output_size is None else _multiple(output_size, hidden_states.shape[-2:])
        if scale is None or conv_unfusable(conv):
            return conv(F.interpolate(hidden_states, size=output_size, scale_factor=None if output_size else 2.0,
                                      mode="nearest"))  # fmt: skip
        args = (scale, conv.padding, conv.dilation, conv.groups)
        folded = self.frozen_fold(hidden_states, conv.bias, args)
        if folded is not None:
            return upsample_conv2d_prefolded(hidden_states, conv.weight, folded, conv.bias, *args)
        return upsample_conv2d(hidden_states, conv.weight, conv.bias, *args)

    def fold_source(self) -> tuple[torch.Tensor, tuple] | None:
        """The conv's weight and the x2 fold's arguments (:class:`~.freezing.FoldFreezable`); None when the conv is
        not fusable (then computed as diffusers does, nothing to fold)."""
        conv = getattr(self, self.name)
        if conv_unfusable(conv):
            return None  # computed as diffusers does: nothing to fold
        return conv.weight, ((2, 2), conv.padding, conv.dilation, conv.groups)


def _multiple(output_size, input_hw) -> tuple[int, int] | None:
    """The integer factors by which ``output_size`` (H, W) multiplies ``input_hw``, or None if it does not."""
    factors = tuple(o // i if o % i == 0 else 0 for o, i in zip(output_size, input_hw))
    return factors if len(factors) == 2 and min(factors) > 0 else None


def is_diffusers_upsample2d(module: nn.Module) -> bool:
    """Whether ``module`` is a diffusers ``Upsample2D`` (recognised by class name and attributes, without importing
    diffusers) that :class:`FusedUpsample2D` computes exactly: it interpolates (``interpolate``) and convolves
    (``use_conv``, not ``use_conv_transpose``) with a plain stride-1, zero-padded ``nn.Conv2d``."""
    if type(module).__name__ != "Upsample2D":
        return False
    attrs = ("channels", "use_conv", "use_conv_transpose", "name", "interpolate", "norm")
    if not all(hasattr(module, a) for a in attrs) or not module.use_conv or module.use_conv_transpose:
        return False
    if not module.interpolate or module.name not in ("conv", "Conv2d_0"):
        return False
    return conv_unfusable(getattr(module, module.name, None)) is None
