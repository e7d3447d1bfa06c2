"""``convert``: swap triton_convt's modules into an existing model, folding a following activation."""

from __future__ import annotations

from torch import nn

from . import activations
from .modules import FROM_TORCH, TritonConvTranspose
from .pixel_shuffle_modules import PixelShuffleConv2d
from .pixel_shuffle_modules import unfusable as shuffle_unfusable
from .upsample_modules import FusedUpsample2D, UpsampleConv2d, is_diffusers_upsample2d, unfusable


def convert(model: nn.Module) -> nn.Module:
    """Replace, in place, what triton_convt computes in one launch:

    * every ``nn.ConvTranspose1d``, ``nn.ConvTranspose2d`` and ``nn.ConvTranspose3d`` becomes triton_convt's module
      of the same dimensionality (:mod:`triton_convt.modules`), in place (``adopt``: the same object, so hooks and
      references to it, FSDP2's included, stay valid), its weight re-laid with output channels innermost through
      ``param.data`` (the same Parameter, shape and values: optimizers holding it keep working) so that every
      forward is one launch;
    * inside a container that chains its children (:func:`chains_children`), an ``nn.Upsample`` by an integer
      ``scale_factor`` in mode ``"nearest"`` or ``"nearest-exact"`` immediately followed by an ``nn.Conv2d`` with
      stride 1 and zero padding mode, by :class:`UpsampleConv2d` in the conv's slot (the Upsample's becomes
      ``nn.Identity``);
    * every diffusers ``Upsample2D`` that interpolates and convolves (``use_conv``, not ``use_conv_transpose``), by
      :class:`FusedUpsample2D` (recognised by its class name and attributes; diffusers is not imported);
    * inside a container that chains its children, an ``nn.Conv2d`` immediately followed by an ``nn.PixelShuffle``
      whose factor divides its output channels, by :class:`PixelShuffleConv2d` in the conv's slot (the shuffle's
      becomes ``nn.Identity``), with a foldable activation right after the shuffle, or between the two (the
      activations are elementwise, so they commute with the shuffle), folded into it; the conv's weight is re-laid
      into the kernel's layout in place (same values, same Parameter).

    In such a container an ``nn.ReLU``, ``nn.LeakyReLU``, ``nn.GELU``, ``nn.SiLU``, ``nn.Sigmoid`` or ``nn.Tanh``
    that immediately follows a converted layer is folded into its epilogue and becomes ``nn.Identity``. Parameters
    are shared, not copied, and outputs are unchanged. What cannot be computed exactly is left alone: subclasses
    of the torch modules (their forward may differ), bilinear upsampling, ``size=``, non-integer scales, strided or
    reflect-padded convs before an upsampling, a pixel shuffle whose factor does not divide the conv's channels
    (torch's pair raises when it runs). Returns ``model`` (or its replacement, if ``model`` itself is replaced).
    """
    if type(model) in FROM_TORCH:
        return FROM_TORCH[type(model)].adopt(model)
    if is_diffusers_upsample2d(model):
        return FusedUpsample2D(model)
    for parent in list(model.modules()):
        names = list(parent._modules)
        chained = chains_children(parent)
        for i, name in enumerate(names):
            layer = parent._modules[name]
            following = parent._modules[names[i + 1]] if chained and i + 1 < len(names) else None
            if type(layer) in FROM_TORCH:
                layer = FROM_TORCH[type(layer)].adopt(layer)
            elif is_diffusers_upsample2d(layer):
                parent._modules[name] = FusedUpsample2D(layer)
            elif following is not None and unfusable(layer, following) is None:
                parent._modules[names[i + 1]] = UpsampleConv2d.from_modules(layer, following)
                parent._modules[name] = nn.Identity()
                continue  # the fused module's turn comes next, and may fold the activation after it
            elif chained and _fuse_pixel_shuffle(parent, names, i):
                continue
            if not isinstance(layer, (TritonConvTranspose, UpsampleConv2d)) or layer.activation is not None:
                continue
            folded = None if following is None else activations.from_module(following)
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


def _fuse_pixel_shuffle(parent: nn.Module, names: list[str], i: int) -> bool:
    """In the chaining container ``parent``, replace the ``nn.Conv2d`` at ``names[i]`` and the ``nn.PixelShuffle``
    after it (directly, or after an activation, which commutes with the shuffle since it is elementwise) by a
    :class:`PixelShuffleConv2d` with that activation, or else with the one right after the shuffle; the modules
    folded in become ``nn.Identity``. Whether it did."""
    at = [parent._modules[n] for n in names[i : i + 3]] + [None, None]
    if shuffle_unfusable(at[0], at[1]) is None:  # conv, shuffle[, activation]
        shuffle_at, act_at = 1, 2
    elif activations.from_module(at[1]) is not None and shuffle_unfusable(at[0], at[2]) is None:  # conv, act, shuffle
        shuffle_at, act_at = 2, 1
    else:
        return False
    folded = activations.from_module(at[act_at]) if at[act_at] is not None else None
    activation, slope = folded or (None, activations.DEFAULT_NEGATIVE_SLOPE)
    parent._modules[names[i]] = PixelShuffleConv2d.from_modules(at[0], at[shuffle_at], activation, slope)
    for j in (shuffle_at, act_at) if folded else (shuffle_at,):
        parent._modules[names[i + j]] = nn.Identity()
    return True
