"""The ``torch.library`` ops of nearest-upsample + conv and their autograd.

``torch.ops.triton_convt.upsample_conv2d`` (and ``upsample_conv2d_out`` for ``out=``) take the validated, normalised,
batched arguments that :func:`triton_convt.functional.upsample_conv2d` prepares: ``scale`` (H, W), ``padding`` as
``[top, bottom, left, right]`` (``"same"`` may pad one more at the bottom/right), ``dilation`` (H, W). The fake
implementations give the output's shape and layout, so meta tensors and ``torch.compile`` see through them; the
backward is a third op, ``upsample_conv2d_backward`` (:mod:`triton_convt.launch.upsample_conv_bwd`), so that the
autograd formula stays traceable. All three are registered by :func:`.family.register`.
``upsample_conv2d_prefolded`` takes the folded weight made beforehand (by :func:`triton_convt.freeze`, through
:func:`fold`) and is the one launch of a frozen module's forward. Off CUDA and without the Triton interpreter, every
op computes torch's own composition instead (:func:`.dispatch.runs_triton`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import activations
from ..launch import upsample_conv_bwd, upsample_conv_fwd
from ..launch.upsample_shapes import UpsampleConvParams
from .dispatch import runs_triton
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


def fold(weight: torch.Tensor, params: UpsampleConvParams) -> torch.Tensor:
    """``weight``'s folded weight ``[C_in, C_out/groups, K'h, K'w]`` in the kernel's layout (output channels
    innermost), made once by :func:`triton_convt.freeze`: one launch of the fold kernel where the kernels run, else
    the same sums in torch (:func:`_torch_fold`; meta tensors included)."""
    if weight.device.type != "meta" and runs_triton(weight.device):
        return upsample_conv_fwd.fold_weight(weight, params)
    return _torch_fold(weight, params)


def _torch_fold(weight: torch.Tensor, params: UpsampleConvParams) -> torch.Tensor:
    """The fold as torch computes it: per axis a 0/1 matrix ``[K', K]`` of which conv tap adds into which folded tap
    (:attr:`~triton_convt.launch.upsample_shapes.AxisFold.taps`), both applied in the accumulator dtype, then the
    groups' channels regrouped into the transposed convolution's ``[C_in, C_out/groups]``."""
    acc = torch.float64 if weight.dtype == torch.float64 else torch.float32
    lands = []
    for axis, k in zip(params.folds(), params.kernel):
        rows = [[1.0 if j in taps else 0.0 for j in range(k)] for taps in axis.taps]
        lands.append(torch.tensor(rows, dtype=acc, device=weight.device))
    f = torch.einsum("aj,bk,oijk->oiab", lands[0], lands[1], weight.to(acc))  # [C_out, C_in/g, K'h, K'w]
    g = params.groups
    c_out, c_in_g = weight.shape[:2]
    f = f.reshape(g, c_out // g, c_in_g, *f.shape[2:]).transpose(1, 2).reshape(g * c_in_g, c_out // g, *f.shape[2:])
    return upsample_conv_fwd.allocate_folded(weight, params).copy_(f)


@torch.library.custom_op("triton_convt::upsample_conv2d_prefolded", mutates_args=())
def upsample_conv2d_prefolded_op(
    input: torch.Tensor,
    weight: torch.Tensor,
    folded: torch.Tensor,
    bias: torch.Tensor | None,
    scale: list[int],
    padding: list[int],
    dilation: list[int],
    groups: int,
    activation: str,
    negative_slope: float,
) -> torch.Tensor:
    """:func:`upsample_conv2d_op` with ``weight``'s fold ``folded`` made beforehand (:func:`fold`, kept by
    :func:`triton_convt.freeze`): one launch. ``weight`` decides the output's layout (torch's composition's:
    channels_last when the input or the conv weight is), and the fallback off the Triton path computes torch's
    composition from it. No autograd: a frozen module refuses calls that need gradients."""
    params = _params(weight, scale, padding, dilation, groups)
    if runs_triton(input.device):
        return upsample_conv_fwd.upsample_conv2d_forward(input, weight, bias, params, activation, negative_slope,
                                                         folded=folded)  # fmt: skip
    return _torch_result(input, weight, bias, params, activation, negative_slope)


@upsample_conv2d_prefolded_op.register_fake
def _(input, weight, folded, bias, scale, padding, dilation, groups, activation, negative_slope):
    return upsample_conv_fwd.allocate_output(input, weight, _params(weight, scale, padding, dilation, groups))
