"""``nn.ConvTranspose2d`` computed by triton_convt, and a converter for whole models."""

from __future__ import annotations

from torch import nn

from . import activations
from .op import conv_transpose2d


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
            module.output_padding, module.groups, module.bias is not None, module.dilation, module.padding_mode,
            device="meta", activation=activation, negative_slope=negative_slope,
        )  # fmt: skip
        new.weight = module.weight
        new.bias = module.bias
        return new.train(module.training)


def convert(model: nn.Module) -> nn.Module:
    """Replace every ``nn.ConvTranspose2d`` of ``model`` (in place) by :class:`ConvTranspose2d`.

    Inside an ``nn.Sequential``, an ``nn.ReLU``, ``nn.LeakyReLU``, ``nn.GELU``, ``nn.SiLU``, ``nn.Sigmoid`` or
    ``nn.Tanh`` that immediately follows the layer is folded into its epilogue and becomes ``nn.Identity``.
    Parameters are shared, not copied. Subclasses of ``nn.ConvTranspose2d`` other than ours are left alone (their
    forward may differ). Returns ``model`` (or, if ``model`` itself is an ``nn.ConvTranspose2d``, its replacement).
    """
    if type(model) is nn.ConvTranspose2d:
        return ConvTranspose2d.from_torch(model)
    for parent in list(model.modules()):
        names = list(parent._modules)
        for i, name in enumerate(names):
            layer = parent._modules[name]
            if type(layer) is nn.ConvTranspose2d:
                layer = parent._modules[name] = ConvTranspose2d.from_torch(layer)
            if not isinstance(layer, ConvTranspose2d) or layer.activation is not None:
                continue
            if isinstance(parent, nn.Sequential) and i + 1 < len(names):
                folded = activations.from_module(parent._modules[names[i + 1]])
                if folded is not None:
                    layer.activation, layer.negative_slope = folded
                    parent._modules[names[i + 1]] = nn.Identity()
    return model
