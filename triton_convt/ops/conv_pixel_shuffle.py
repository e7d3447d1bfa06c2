"""The ``torch.library`` ops of conv2d + pixel_shuffle and their autograd.

``torch.ops.triton_convt.conv2d_pixel_shuffle`` (and ``conv2d_pixel_shuffle_out`` for ``out=``) take the validated,
normalised, batched arguments that :func:`triton_convt.functional.conv2d_pixel_shuffle` prepares: ``upscale`` r,
``stride`` (H, W), ``padding`` as ``[top, bottom, left, right]`` (``"same"`` may pad one more at the bottom/right),
``dilation`` (H, W), and last ``layout_from_weight`` (default True; False from a module that owns its weight in the
kernel's layout: the output's memory format is then decided by the input alone, as torch decides it for a
default-layout weight). The fake implementations give the output's shape and layout, so meta tensors and
``torch.compile`` see through them; the backward is a third op, ``conv2d_pixel_shuffle_backward``
(:mod:`triton_convt.launch.conv_pixel_shuffle_bwd`), so that the autograd formula stays traceable. All three are
registered by :func:`.family.register`. Off CUDA and without the Triton interpreter, every op computes torch's
own ``pixel_shuffle(conv2d(...))`` instead (:func:`.dispatch.runs_triton`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import activations
from ..launch import conv_pixel_shuffle_bwd, conv_pixel_shuffle_fwd
from ..launch.pixel_shuffle_shapes import ConvShuffleParams
from .family import OpFamily, register


def _params(weight: torch.Tensor, upscale, stride, padding, dilation, groups) -> ConvShuffleParams:
    pads = ((padding[0], padding[1]), (padding[2], padding[3]))
    return ConvShuffleParams(upscale, tuple(stride), pads, tuple(dilation), groups, tuple(weight.shape[2:]))


def _torch_result(x, weight, bias, params: ConvShuffleParams, activation: str, negative_slope: float):
    """torch's own ``act(pixel_shuffle(conv2d(pad(x))))``: the fallback off CUDA without the interpreter (it makes
    the ``r*r``-wide conv output; only the kernel avoids it)."""
    (ph_lo, ph_hi), (pw_lo, pw_hi) = params.padding
    z = F.conv2d(F.pad(x, (pw_lo, pw_hi, ph_lo, ph_hi)), weight, bias, params.stride, 0, params.dilation,
                 params.groups)  # fmt: skip
    y = activations.apply_torch(F.pixel_shuffle(z, params.upscale), None if activation == "none" else activation,
                                negative_slope)  # fmt: skip
    return y


def _allocate_output(x, weight, params: ConvShuffleParams, layout_from_weight: bool = True) -> torch.Tensor:
    return conv_pixel_shuffle_fwd.allocate_output(x, weight, params, layout_from_weight=layout_from_weight)


register(OpFamily(
    name="conv2d_pixel_shuffle",
    arguments=(("upscale", int), ("stride", list[int]), ("padding", list[int]), ("dilation", list[int]),
               ("groups", int)),
    params=_params,
    forward=conv_pixel_shuffle_fwd.conv2d_pixel_shuffle_forward,
    backward=conv_pixel_shuffle_bwd.conv2d_pixel_shuffle_backward,  # recomputes the pre-activation when it must
    torch_result=_torch_result,
    allocate_output=_allocate_output,
    weight_grad_contiguous=False,  # in the weight's strides (torch.empty_like)
    summary="act(pixel_shuffle(conv2d(input, weight, bias), upscale))",
    layout_option=True,  # PixelShuffleConv2d owns its weight's layout (:mod:`triton_convt.owned_layout`)
))  # fmt: skip
