"""The ``torch.library`` ops of nearest-upsample + conv and their autograd.

``torch.ops.triton_convt.upsample_conv2d`` (and ``upsample_conv2d_out`` for ``out=``) take the validated, normalised,
batched arguments that :func:`triton_convt.functional.upsample_conv2d` prepares: ``scale`` (H, W), ``padding`` as
``[top, bottom, left, right]`` (``"same"`` may pad one more at the bottom/right), ``dilation`` (H, W). The fake
implementations give the output's shape and layout, so meta tensors and ``torch.compile`` see through them; the
backward is a third op, ``upsample_conv2d_backward`` (:mod:`triton_convt.launch.upsample_conv_bwd`), so that the
autograd formula stays traceable. All three are registered by :func:`.family.register`. Off CUDA and without the
Triton interpreter, every op computes torch's own composition instead (:func:`.dispatch.runs_triton`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import activations
from ..launch import upsample_conv_bwd, upsample_conv_fwd
from ..launch.upsample_shapes import UpsampleConvParams
from .family import OpFamily, register


def _params(weight: torch.Tensor, scale, padding, dilation, groups) -> UpsampleConvParams:
    pads = ((padding[0], padding[1]), (padding[2], padding[3]))
    return UpsampleConvParams(tuple(scale), pads, tuple(dilation), groups, tuple(weight.shape[2:]))


def _torch_result(x, weight, bias, params: UpsampleConvParams, activation: str, negative_slope: float):
    """torch's own ``act(conv2d(pad(interpolate(x))))``, in the layout the kernels give: the fallback off CUDA
    without the interpreter (it makes the upsampled tensor; only the kernels avoid it)."""
    (ph_lo, ph_hi), (pw_lo, pw_hi) = params.padding
    u = F.pad(F.interpolate(x, scale_factor=params.scale, mode="nearest"), (pw_lo, pw_hi, ph_lo, ph_hi))
    y = F.conv2d(u, weight, bias, 1, 0, params.dilation, params.groups)
    y = activations.apply_torch(y, None if activation == "none" else activation, negative_slope)
    return upsample_conv_fwd.allocate_output(x, weight, params).copy_(y)


register(OpFamily(
    name="upsample_conv2d",
    arguments=(("scale", list[int]), ("padding", list[int]), ("dilation", list[int]), ("groups", int)),
    params=_params,
    forward=upsample_conv_fwd.upsample_conv2d_forward,
    backward=upsample_conv_bwd.upsample_conv2d_backward,  # recomputes the pre-activation itself when it must
    torch_result=_torch_result,
    allocate_output=upsample_conv_fwd.allocate_output,
    weight_grad_contiguous=False,  # unfolded into torch.empty_like(weight)
    summary="act(conv2d(upsample_nearest(input, scale), weight, bias))",
))  # fmt: skip
