"""``PixelShuffleConv2d``: ``nn.Conv2d`` followed by ``nn.PixelShuffle`` (the sub-pixel convolution of ESPCN, EDSR,
SwinIR and MONAI's ``SubpixelUpsample``), as one module computed by :func:`triton_convt.conv2d_pixel_shuffle` in one
launch, and what :func:`triton_convt.convert` needs to fuse the pair."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import activations
from .functional.conv_pixel_shuffle import call, pixel_shuffle_factor
from .launch.conv_pixel_shuffle_fwd import is_kernel_layout, to_kernel_layout
from .owned_layout import OwnsKernelLayout


class PixelShuffleConv2d(OwnsKernelLayout, nn.Conv2d):
    """``nn.Conv2d(in_channels, out_channels, ...)`` then ``nn.PixelShuffle(upscale_factor)`` (then ``activation``).

    A subclass of ``nn.Conv2d`` for its parameters: ``weight`` ``(out_channels, in_channels/groups, kH, kW)`` with
    ``out_channels = C*r*r`` as in the original conv, ``bias``, ``nn.Conv2d``'s initialisation and ``state_dict``
    keys, so a checkpoint of the pair's conv loads into it and back. The module owns its weight in the kernel's
    layout (:meth:`is_kernel_layout`: output channels innermost) as the transposed convolutions do
    (:class:`~triton_convt.owned_layout.OwnsKernelLayout`: re-laid in place, ``weight.data``, at construction, after
    ``.to()``/``.half()``/``.to(memory_format=...)``, after ``load_state_dict(assign=True)`` and by
    :func:`triton_convt.freeze`), so every call is one launch; the output's memory format is the
    one torch gives for the default-layout weight (channels_last when the input is). ``padding_mode`` other than
    ``"zeros"`` pads the input first with ``F.pad``, as ``nn.Conv2d`` does.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, upscale_factor: int = 2, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros", device=None, dtype=None,
                 *, activation: str | None = None,
                 negative_slope: float = activations.DEFAULT_NEGATIVE_SLOPE):  # fmt: skip
        activations.check_activation(activation)
        r = pixel_shuffle_factor(upscale_factor)
        if out_channels % (r * r):
            raise ValueError(f"out_channels ({out_channels}) must be divisible by upscale_factor**2 ({r * r}): the "
                             "pixel shuffle would refuse the conv's output")  # fmt: skip
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode,
                         device=device, dtype=dtype)  # fmt: skip
        self.upscale_factor = r
        self.activation = activation
        self.negative_slope = negative_slope

    #: The kernel's layout of this module's weight (:mod:`triton_convt.launch.conv_pixel_shuffle_fwd`).
    to_kernel_layout = staticmethod(to_kernel_layout)

    @staticmethod
    def is_kernel_layout(weight: torch.Tensor) -> bool:
        """Whether ``weight`` is in the layout in which this module owns it, the one the kernel reads best: output
        channels innermost (memory order ``[C_in/groups, kH, kW, out_channels]``), so that the GEMM's weight tiles
        are dense along the output channels, as the transposed convolution's forward reads its own weight. No torch
        memory format names this order."""
        return is_kernel_layout(weight)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        padding = self.padding
        if self.padding_mode != "zeros":  # nn.Conv2d's own way: pad the input, then a conv without padding
            input = F.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            padding = 0
        return call(input, self.weight, self.bias, self.upscale_factor, self.stride, padding, self.dilation,
                    self.groups, self.activation, self.negative_slope, None, layout_from_weight=False)  # fmt: skip

    def extra_repr(self) -> str:
        described = activations.describe(self.activation, self.negative_slope)
        return f"upscale_factor={self.upscale_factor}, " + super().extra_repr() + described

    @classmethod
    def from_modules(cls, conv: nn.Conv2d, shuffle: nn.PixelShuffle, activation: str | None = None,
                     negative_slope: float = activations.DEFAULT_NEGATIVE_SLOPE) -> PixelShuffleConv2d:  # fmt: skip
        """The fused module computing ``shuffle(conv(x))`` (then ``activation``), sharing ``conv``'s parameters (whose
        weight is re-laid into the kernel's layout in place: same values, same Parameter).

        ValueError when the pair is not exactly an ``nn.Conv2d`` followed by an ``nn.PixelShuffle`` whose factor
        divides the conv's output channels (:func:`unfusable` says why).
        """
        why = unfusable(conv, shuffle)
        if why:
            raise ValueError(f"cannot fuse {conv} and {shuffle}: {why}")
        new = cls(
            conv.in_channels, conv.out_channels, conv.kernel_size, shuffle.upscale_factor, conv.stride, conv.padding,
            conv.dilation, conv.groups, conv.bias is not None, conv.padding_mode, device="meta",
            activation=activation, negative_slope=negative_slope,
        )  # fmt: skip
        new.weight = conv.weight
        new.bias = conv.bias
        new.own_layout()
        return new.train(conv.training)


def unfusable(conv: nn.Module, shuffle: nn.Module) -> str | None:
    """Why ``shuffle(conv(x))`` is not exactly a :class:`PixelShuffleConv2d`, or None when it is: ``conv`` an
    ``nn.Conv2d`` and ``shuffle`` an ``nn.PixelShuffle`` (exactly: a subclass may compute otherwise) whose factor is
    a positive int dividing ``r*r`` into the conv's output channels (otherwise torch's pair raises when it runs, and
    is left to do so)."""
    if type(conv) is not nn.Conv2d or type(shuffle) is not nn.PixelShuffle:
        return "not an nn.Conv2d followed by an nn.PixelShuffle"
    try:
        r = pixel_shuffle_factor(shuffle.upscale_factor)
    except (TypeError, RuntimeError):
        return f"upscale_factor {shuffle.upscale_factor!r} is not a positive int"
    if conv.out_channels % (r * r):
        return f"the conv's {conv.out_channels} output channels are not divisible by {r * r}"
    return None
