"""nn modules computed by triton_convt: subclasses of torch's modules that override ``forward`` only (plus the fused
activation), so constructors, initialisation and ``state_dict`` are torch's. :mod:`triton_convt.converter` swaps them
into existing models."""

from __future__ import annotations

from torch import nn

from . import activations
from .functional import conv_transpose2d


class ConvTranspose2d(nn.ConvTranspose2d):
    """Drop-in ``torch.nn.ConvTranspose2d`` whose forward runs :func:`triton_convt.conv_transpose2d`.

    Same constructor, parameter initialisation and ``state_dict`` keys as torch's module (checkpoints load both
    ways), plus keyword-only ``activation`` (None, "relu", "leaky_relu", "gelu", "gelu_tanh", "silu", "sigmoid",
    "tanh") and ``negative_slope``, applied in the kernel's epilogue after the bias.
    """

    def __init__(self, *args, activation: str | None = None,
                 negative_slope: float = activations.DEFAULT_NEGATIVE_SLOPE, **kwargs):
        activations.check_activation(activation)
        super().__init__(*args, **kwargs)
        self.activation = activation
        self.negative_slope = negative_slope

    def forward(self, input, output_size=None):
        # torch's forward checks this (the constructor refuses other modes, but the attribute can be changed
        # afterwards); same exception, same message.
        if self.padding_mode != "zeros":
            raise ValueError("Only `zeros` padding mode is supported for ConvTranspose2d")
        return conv_transpose2d(
            input, self.weight, self.bias, self.stride, self.padding, self.output_padding, self.groups,
            self.dilation, output_size=output_size, activation=self.activation, negative_slope=self.negative_slope,
        )  # fmt: skip

    def extra_repr(self) -> str:
        text = super().extra_repr()
        if self.activation is not None:
            text += f", activation={self.activation!r}"
            if self.activation == "leaky_relu":
                text += f", negative_slope={self.negative_slope}"
        return text

    @classmethod
    def from_torch(cls, module: nn.ConvTranspose2d, activation: str | None = None,
                   negative_slope: float = activations.DEFAULT_NEGATIVE_SLOPE) -> ConvTranspose2d:
        """A triton_convt module computing ``module`` (then ``activation``), sharing its parameters."""
        new = cls(
            module.in_channels, module.out_channels, module.kernel_size, module.stride, module.padding,
            module.output_padding, module.groups, module.bias is not None, module.dilation,
            device="meta", activation=activation, negative_slope=negative_slope,
        )  # fmt: skip
        # Copied after construction: a mode other than "zeros" set on torch's layer after its construction is
        # refused by forward, here as there, not by the constructor (which would make convert fail on a model
        # torch builds fine).
        new.padding_mode = module.padding_mode
        new.weight = module.weight
        new.bias = module.bias
        return new.train(module.training)
