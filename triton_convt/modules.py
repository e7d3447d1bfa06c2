"""nn modules computed by triton_convt: subclasses of torch's modules that override ``forward`` (plus the fused
activation) and keep their weight in the kernel's layout (:class:`~triton_convt.owned_layout.OwnsKernelLayout`), so
constructors, initialisation and ``state_dict`` keys and values are torch's and every forward is one launch.
:mod:`triton_convt.converter` swaps them into existing models.

:class:`ConvTranspose1d`, :class:`ConvTranspose2d` and :class:`ConvTranspose3d` share one implementation,
:class:`TritonConvTranspose`; each names only the torch module it stands in for and its functional op.
"""

from __future__ import annotations

from torch import nn

from . import activations
from .functional import conv_transpose1d, conv_transpose2d, conv_transpose3d
from .owned_layout import OwnsKernelLayout


class TritonConvTranspose(OwnsKernelLayout):
    """What the three modules share: the constructor's ``activation`` and ``negative_slope`` (keyword-only, applied
    in the kernel's epilogue after the bias), ``forward``, ``extra_repr``, ``from_torch`` and ``adopt``. Mixed in
    before the torch module (``class ConvTranspose2d(TritonConvTranspose, nn.ConvTranspose2d)``), whose constructor,
    initialisation and ``state_dict`` keys it keeps.

    The weight ``[C_in, C_out/groups, *kernel]`` is kept with output channels innermost
    (:class:`~triton_convt.owned_layout.OwnsKernelLayout`), which the GEMM kernel reads in place: one launch per
    forward. The output's layout is the one torch's module gives with its default weight, decided by the input
    alone (an NCHW input gives an NCHW output), so the weight's layout is not visible in the results.
    """

    #: The functional op a subclass computes (``conv_transpose2d``, ...).
    _functional = None

    def __init__(
        self, *args, activation: str | None = None, negative_slope: float = activations.DEFAULT_NEGATIVE_SLOPE, **kwargs
    ):
        activations.check_activation(activation)
        super().__init__(*args, **kwargs)
        self.activation = activation
        self.negative_slope = negative_slope

    @classmethod
    def torch_type(cls) -> type:
        """The torch module this one stands in for (``nn.ConvTranspose2d``, ...): the torch base class."""
        return next(base for base in cls.__mro__ if base.__module__.startswith("torch.nn"))

    def forward(self, input, output_size=None):
        # torch's forward checks this (the constructor refuses other modes, but the attribute can be changed
        # afterwards); same exception, same message.
        if self.padding_mode != "zeros":
            raise ValueError(f"Only `zeros` padding mode is supported for {self.torch_type().__name__}")
        return type(self)._functional(
            input, self.weight, self.bias, self.stride, self.padding, self.output_padding, self.groups,
            self.dilation, output_size=output_size, activation=self.activation, negative_slope=self.negative_slope,
            layout_from_weight=False,
        )  # fmt: skip

    def extra_repr(self) -> str:
        return super().extra_repr() + activations.describe(self.activation, self.negative_slope)

    @classmethod
    def from_torch(
        cls,
        module: nn.Module,
        activation: str | None = None,
        negative_slope: float = activations.DEFAULT_NEGATIVE_SLOPE,
    ):
        """A triton_convt module computing ``module`` (a torch module of this dimensionality, then
        ``activation``), sharing its parameters: the weight Parameter is re-laid in place (``param.data``), so
        ``module`` and any optimizer holding it see the same Parameter, with output channels innermost."""
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
        new.own_layout()
        return new.train(module.training)

    @classmethod
    def adopt(
        cls,
        module: nn.Module,
        activation: str | None = None,
        negative_slope: float = activations.DEFAULT_NEGATIVE_SLOPE,
    ):
        """Turn ``module`` (exactly this class's torch module) into this class in place and return it: the same
        object, so its parameters, buffers, hooks and every reference to it (a parent, FSDP2's parameter
        management, a user's handle) stay valid; the weight is re-laid in place (``param.data``) as
        :meth:`from_torch` does. What :func:`triton_convt.convert` does to each layer."""
        activations.check_activation(activation)
        if type(module) is not cls.torch_type():
            raise TypeError(f"{cls.__name__}.adopt takes an {cls.torch_type().__name__}, not {type(module).__name__}")
        module.__class__ = cls
        module.activation = activation
        module.negative_slope = negative_slope
        module.own_layout()
        return module


class ConvTranspose1d(TritonConvTranspose, nn.ConvTranspose1d):
    """Drop-in ``torch.nn.ConvTranspose1d`` whose forward runs :func:`triton_convt.conv_transpose1d` (vocoders'
    and codecs' upsamplers); same constructor, initialisation and ``state_dict``, plus keyword-only
    ``activation`` and ``negative_slope`` as :class:`ConvTranspose2d`."""

    _functional = staticmethod(conv_transpose1d)


class ConvTranspose2d(TritonConvTranspose, nn.ConvTranspose2d):
    """Drop-in ``torch.nn.ConvTranspose2d`` whose forward runs :func:`triton_convt.conv_transpose2d`.

    Same constructor, parameter initialisation and ``state_dict`` keys as torch's module (checkpoints load both
    ways), plus keyword-only ``activation`` (None, "relu", "leaky_relu", "gelu", "gelu_tanh", "silu", "sigmoid",
    "tanh") and ``negative_slope``, applied in the kernel's epilogue after the bias.
    """

    _functional = staticmethod(conv_transpose2d)


class ConvTranspose3d(TritonConvTranspose, nn.ConvTranspose3d):
    """Drop-in ``torch.nn.ConvTranspose3d`` whose forward runs :func:`triton_convt.conv_transpose3d` (volumetric
    decoders); same constructor, initialisation and ``state_dict``, plus keyword-only ``activation`` and
    ``negative_slope`` as :class:`ConvTranspose2d`."""

    _functional = staticmethod(conv_transpose3d)


#: torch's module type -> ours, for :func:`triton_convt.convert` (exact types: a subclass may change forward).
FROM_TORCH = {module.torch_type(): module for module in (ConvTranspose1d, ConvTranspose2d, ConvTranspose3d)}
