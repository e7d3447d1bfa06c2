"""The ``torch.library`` ops of nearest-upsample + conv and their autograd.

``torch.ops.triton_convt.upsample_conv2d`` (and ``upsample_conv2d_out`` for ``out=``) take the validated, normalised,
batched arguments that :func:`triton_convt.functional.upsample_conv2d` prepares: ``scale`` (H, W), ``padding`` as
``[top, bottom, left, right]`` (``"same"`` may pad one more at the bottom/right), ``dilation`` (H, W). The fake
implementations give the output's shape and layout, so meta tensors and ``torch.compile`` see through them; the
backward is a third op, ``upsample_conv2d_backward`` (:mod:`triton_convt.launch.upsample_conv_bwd`), so that the
autograd formula stays traceable. ``upsample_conv2d_prefolded`` takes the folded weight made beforehand (by
:func:`triton_convt.freeze`, through :func:`fold`) and is the one launch of a frozen module's forward. Off CUDA and
without the Triton interpreter, every op computes torch's own composition instead (:func:`.dispatch.runs_triton`).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from .. import activations
from ..launch import conv_transpose_bwd, upsample_conv_bwd, upsample_conv_fwd
from ..launch.upsample_shapes import UpsampleConvParams
from .dispatch import runs_triton


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


def _forward(x, weight, bias, params, activation, negative_slope, out=None) -> torch.Tensor:
    if runs_triton(x.device):
        return upsample_conv_fwd.upsample_conv2d_forward(x, weight, bias, params, activation, negative_slope, out)
    y = _torch_result(x, weight, bias, params, activation, negative_slope)
    return y if out is None else out.copy_(y)


@torch.library.custom_op("triton_convt::upsample_conv2d", mutates_args=())
def upsample_conv2d_op(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor],
    scale: list[int],
    padding: list[int],
    dilation: list[int],
    groups: int,
    activation: str,
    negative_slope: float,
) -> torch.Tensor:
    """``act(conv2d(upsample_nearest(input, scale), weight, bias))`` on 4-D input; activation "none" for none."""
    params = _params(weight, scale, padding, dilation, groups)
    return _forward(input, weight, bias, params, activation, negative_slope)


@upsample_conv2d_op.register_fake
def _(input, weight, bias, scale, padding, dilation, groups, activation, negative_slope):
    return upsample_conv_fwd.allocate_output(input, weight, _params(weight, scale, padding, dilation, groups))


@torch.library.custom_op("triton_convt::upsample_conv2d_out", mutates_args=("out",))
def upsample_conv2d_out_op(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor],
    scale: list[int],
    padding: list[int],
    dilation: list[int],
    groups: int,
    activation: str,
    negative_slope: float,
    out: torch.Tensor,
) -> None:
    """:func:`upsample_conv2d_op` written into ``out`` (validated: right shape, dtype, device, no overlap)."""
    params = _params(weight, scale, padding, dilation, groups)
    _forward(input, weight, bias, params, activation, negative_slope, out)


def _setup_context(ctx, inputs, output):
    input, weight, bias, scale, padding, dilation, groups, activation, negative_slope = inputs
    ctx.args = (list(scale), list(padding), list(dilation), groups, activation, negative_slope)
    # As the transposed convolution: the output is kept only when the activation's derivative reads it.
    keeps_output = activation != "none" and not conv_transpose_bwd.needs_preactivation(activation, negative_slope)
    ctx.save_for_backward(input, weight, bias, output if keeps_output else None)


@torch.library.custom_op("triton_convt::upsample_conv2d_backward", mutates_args=())
def upsample_conv2d_backward_op(
    grad: torch.Tensor,
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor],
    output: Optional[torch.Tensor],
    scale: list[int],
    padding: list[int],
    dilation: list[int],
    groups: int,
    activation: str,
    negative_slope: float,
    needs: list[bool],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients (input, weight, bias) of :func:`upsample_conv2d_op`; an unneeded one is an empty tensor."""
    params = _params(weight, scale, padding, dilation, groups)
    if runs_triton(input.device):
        grads = upsample_conv_bwd.upsample_conv2d_backward(
            grad, input, weight, bias, output, params, activation, negative_slope, tuple(needs)
        )
    else:
        grads = _torch_backward(grad, input, weight, bias, params, activation, negative_slope)
    return tuple(g if n and g is not None else grad.new_empty(0) for g, n in zip(grads, needs))


@upsample_conv2d_backward_op.register_fake
def _(grad, input, weight, bias, output, scale, padding, dilation, groups, activation, negative_slope, needs):
    has = (True, True, bias is not None)
    likes = (torch.empty_like(input), torch.empty_like(weight), grad.new_empty(weight.shape[0]))
    return tuple(like if n and h else grad.new_empty(0) for like, n, h in zip(likes, needs, has))


def _backward(ctx, grad):
    x, weight, bias, y = ctx.saved_tensors
    needs = list(ctx.needs_input_grad[:3])
    grads = torch.ops.triton_convt.upsample_conv2d_backward(grad, x, weight, bias, y, *ctx.args, needs)
    grads = [g if n else None for g, n in zip(grads, needs)]
    if bias is None:
        grads[2] = None
    return (*grads, None, None, None, None, None, None)


def _torch_backward(grad, x, weight, bias, params, activation, slope):
    """The fallback's gradients, from torch's own autograd of :func:`_torch_result`."""
    primals = (x, weight) if bias is None else (x, weight, bias)
    _, vjp = torch.func.vjp(
        lambda *p: _torch_result(p[0], p[1], p[2] if len(p) > 2 else None, params, activation, slope), *primals
    )
    grads = vjp(grad)
    return grads[0], grads[1], grads[2] if bias is not None else None


upsample_conv2d_op.register_autograd(_backward, setup_context=_setup_context)


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
    bias: Optional[torch.Tensor],
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
