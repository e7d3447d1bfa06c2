"""The ``torch.library`` ops of conv2d + pixel_shuffle and their autograd.

``torch.ops.triton_convt.conv2d_pixel_shuffle`` (and ``conv2d_pixel_shuffle_out`` for ``out=``) take the validated,
normalised, batched arguments that :func:`triton_convt.functional.conv2d_pixel_shuffle` prepares: ``upscale`` r,
``stride`` (H, W), ``padding`` as ``[top, bottom, left, right]`` (``"same"`` may pad one more at the bottom/right),
``dilation`` (H, W), and ``weight_sets_layout`` (False for a module that owns its weight in the kernel's layout: the
output's memory format is then decided by the input alone, as torch decides it for a default-layout weight). The
fake implementations give the output's shape and layout, so meta tensors and ``torch.compile`` see through them;
the backward is a third op, ``conv2d_pixel_shuffle_backward`` (:mod:`triton_convt.launch.conv_pixel_shuffle_bwd`),
so that the autograd formula stays traceable. Off CUDA and without the Triton interpreter, every op computes torch's
own ``pixel_shuffle(conv2d(...))`` instead (:func:`.dispatch.runs_triton`).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from .. import activations
from ..launch import conv_pixel_shuffle_bwd, conv_pixel_shuffle_fwd, conv_transpose_bwd
from ..launch.pixel_shuffle_shapes import ConvShuffleParams
from .dispatch import runs_triton


def _params(weight: torch.Tensor, upscale, stride, padding, dilation, groups) -> ConvShuffleParams:
    pads = ((padding[0], padding[1]), (padding[2], padding[3]))
    return ConvShuffleParams(upscale, tuple(stride), pads, tuple(dilation), groups, tuple(weight.shape[2:]))


def _torch_result(x, weight, bias, params: ConvShuffleParams, activation: str, negative_slope: float,
                  weight_sets_layout: bool):  # fmt: skip
    """torch's own ``act(pixel_shuffle(conv2d(pad(x))))``, in the layout the kernels give: the fallback off CUDA
    without the interpreter (it makes the ``r*r``-wide conv output; only the kernel avoids it)."""
    (ph_lo, ph_hi), (pw_lo, pw_hi) = params.padding
    z = F.conv2d(F.pad(x, (pw_lo, pw_hi, ph_lo, ph_hi)), weight, bias, params.stride, 0, params.dilation,
                 params.groups)  # fmt: skip
    y = activations.apply_torch(F.pixel_shuffle(z, params.upscale), None if activation == "none" else activation,
                                negative_slope)  # fmt: skip
    out = conv_pixel_shuffle_fwd.allocate_output(x, weight, params, weight_sets_layout=weight_sets_layout)
    return out.copy_(y)


def _forward(x, weight, bias, params, activation, negative_slope, weight_sets_layout, out=None) -> torch.Tensor:
    if runs_triton(x.device):
        return conv_pixel_shuffle_fwd.conv2d_pixel_shuffle_forward(
            x, weight, bias, params, activation, negative_slope, out, weight_sets_layout=weight_sets_layout
        )
    y = _torch_result(x, weight, bias, params, activation, negative_slope, weight_sets_layout)
    return y if out is None else out.copy_(y)


@torch.library.custom_op("triton_convt::conv2d_pixel_shuffle", mutates_args=())
def conv2d_pixel_shuffle_op(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor],
    upscale: int,
    stride: list[int],
    padding: list[int],
    dilation: list[int],
    groups: int,
    activation: str,
    negative_slope: float,
    weight_sets_layout: bool,
) -> torch.Tensor:
    """``act(pixel_shuffle(conv2d(input, weight, bias), upscale))`` on 4-D input; activation "none" for none."""
    params = _params(weight, upscale, stride, padding, dilation, groups)
    return _forward(input, weight, bias, params, activation, negative_slope, weight_sets_layout)


@conv2d_pixel_shuffle_op.register_fake
def _(input, weight, bias, upscale, stride, padding, dilation, groups, activation, negative_slope,
      weight_sets_layout):  # fmt: skip
    params = _params(weight, upscale, stride, padding, dilation, groups)
    return conv_pixel_shuffle_fwd.allocate_output(input, weight, params, weight_sets_layout=weight_sets_layout)


@torch.library.custom_op("triton_convt::conv2d_pixel_shuffle_out", mutates_args=("out",))
def conv2d_pixel_shuffle_out_op(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor],
    upscale: int,
    stride: list[int],
    padding: list[int],
    dilation: list[int],
    groups: int,
    activation: str,
    negative_slope: float,
    out: torch.Tensor,
) -> None:
    """:func:`conv2d_pixel_shuffle_op` written into ``out`` (validated: right shape, dtype, device, no overlap)."""
    params = _params(weight, upscale, stride, padding, dilation, groups)
    _forward(input, weight, bias, params, activation, negative_slope, True, out)


def _setup_context(ctx, inputs, output):
    input, weight, bias, upscale, stride, padding, dilation, groups, activation, negative_slope, _ = inputs
    ctx.args = (upscale, list(stride), list(padding), list(dilation), groups, activation, negative_slope)
    # As the transposed convolution: the output is kept only when the activation's derivative reads it.
    keeps_output = activation != "none" and not conv_transpose_bwd.needs_preactivation(activation, negative_slope)
    ctx.save_for_backward(input, weight, bias, output if keeps_output else None)


@torch.library.custom_op("triton_convt::conv2d_pixel_shuffle_backward", mutates_args=())
def conv2d_pixel_shuffle_backward_op(
    grad: torch.Tensor,
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor],
    output: Optional[torch.Tensor],
    upscale: int,
    stride: list[int],
    padding: list[int],
    dilation: list[int],
    groups: int,
    activation: str,
    negative_slope: float,
    needs: list[bool],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients (input, weight, bias) of :func:`conv2d_pixel_shuffle_op`; an unneeded one is an empty tensor.

    ``output`` is the forward's output when the activation's derivative is read from it, else None (the
    pre-activation is recomputed here)."""
    params = _params(weight, upscale, stride, padding, dilation, groups)
    if runs_triton(input.device):
        grads = conv_pixel_shuffle_bwd.conv2d_pixel_shuffle_backward(
            grad, input, weight, bias, output, params, activation, negative_slope, tuple(needs)
        )
    else:
        grads = _torch_backward(grad, input, weight, bias, params, activation, negative_slope)
    return tuple(g if n and g is not None else grad.new_empty(0) for g, n in zip(grads, needs))


@conv2d_pixel_shuffle_backward_op.register_fake
def _(grad, input, weight, bias, output, upscale, stride, padding, dilation, groups, activation, negative_slope,
      needs):  # fmt: skip
    has = (True, True, bias is not None)
    likes = (torch.empty_like(input), torch.empty_like(weight), grad.new_empty(weight.shape[0]))
    return tuple(like if n and h else grad.new_empty(0) for like, n, h in zip(likes, needs, has))


def _backward(ctx, grad):
    x, weight, bias, y = ctx.saved_tensors
    needs = list(ctx.needs_input_grad[:3])
    grads = torch.ops.triton_convt.conv2d_pixel_shuffle_backward(grad, x, weight, bias, y, *ctx.args, needs)
    grads = [g if n else None for g, n in zip(grads, needs)]
    if bias is None:
        grads[2] = None
    return (*grads, None, None, None, None, None, None, None, None)


def _torch_backward(grad, x, weight, bias, params, activation, slope):
    """The fallback's gradients, from torch's own autograd of :func:`_torch_result`."""
    primals = (x, weight) if bias is None else (x, weight, bias)
    _, vjp = torch.func.vjp(
        lambda *p: _torch_result(p[0], p[1], p[2] if len(p) > 2 else None, params, activation, slope, True), *primals
    )
    grads = vjp(grad)
    return grads[0], grads[1], grads[2] if bias is not None else None


conv2d_pixel_shuffle_op.register_autograd(_backward, setup_context=_setup_context)
