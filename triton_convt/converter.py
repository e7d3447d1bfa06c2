"""``convert``: swap triton_convt's modules into an existing model, folding a following activation."""

from __future__ import annotations

from torch import nn

from . import activations
from .modules import FROM_TORCH, TritonConvTranspose


def convert(model: nn.Module) -> nn.Module:
    """Replace every ``nn.ConvTranspose1d``, ``nn.ConvTranspose2d`` and ``nn.ConvTranspose3d`` of ``model`` (in
    place) by triton_convt's module of the same dimensionality (:mod:`triton_convt.modules`).

    Inside an ``nn.Sequential`` (or a subclass that keeps its ``forward``: :func:`chains_children`), an
    ``nn.ReLU``, ``nn.LeakyReLU``, ``nn.GELU``, ``nn.SiLU``, ``nn.Sigmoid`` or ``nn.Tanh`` that immediately
    follows the layer is folded into its epilogue and becomes ``nn.Identity``.
    Parameters are shared, not copied. Subclasses of torch's modules other than ours are left alone (their
    forward may differ). Returns ``model`` (or, if ``model`` itself is one of torch's modules, its replacement).
    """
    if type(model) in FROM_TORCH:
        return FROM_TORCH[type(model)].from_torch(model)
    for parent in list(model.modules()):
        names = list(parent._modules)
        for i, name in enumerate(names):
            layer = parent._modules[name]
            if type(layer) in FROM_TORCH:
                layer = parent._modules[name] = FROM_TORCH[type(layer)].from_torch(layer)
            if not isinstance(layer, TritonConvTranspose) or layer.activation is not None:
                continue
            if chains_children(parent) and i + 1 < len(names):
                folded = activations.from_module(parent._modules[names[i + 1]])
                if folded is not None:
                    layer.activation, layer.negative_slope = folded
                    parent._modules[names[i + 1]] = nn.Identity()
    return model


def chains_children(container: nn.Module) -> bool:
    """Whether ``container`` feeds each child the previous child's output, so that an activation child can be
    folded into the layer before it: ``nn.Sequential``, or a subclass that does not override ``forward``. A
    subclass may use its children otherwise (MONAI's ``DenseBlock`` feeds each one the running concatenation of
    all earlier outputs), and folding there would change the model's output."""
    return isinstance(container, nn.Sequential) and type(container).forward is nn.Sequential.forward
