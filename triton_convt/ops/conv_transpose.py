"""The ``torch.library`` ops of the transposed convolution and their autograd, for 1, 2 and 3 spatial axes.

``torch.ops.triton_convt.conv_transpose{1,2,3}d`` (and ``..._out`` for ``out=``) take the validated, normalised,
batched arguments that :func:`triton_convt.functional.conv_transpose2d` (``1d``, ``3d``) prepares. Each has a fake
implementation (output shape and strides from :func:`~triton_convt.launch.conv_transpose_fwd.allocate_output`), so
meta tensors and ``torch.compile`` see through it, and the autograd formula's gradients come from the Triton
backward kernels through a third op, ``..._backward`` (:mod:`triton_convt.launch.conv_transpose_bwd`). The three
families are registered by one function, :func:`_register`, from one implementation: only the op names and the
rank of the tensors differ. Off CUDA and without the Triton interpreter, every op computes torch's own result
instead (:func:`.dispatch.runs_triton`).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from .. import activations
from ..launch import conv_transpose_bwd, conv_transpose_fwd
from ..launch.shapes import ConvParams
from .dispatch import runs_triton


def _params(weight: torch.Tensor, stride, padding, output_padding, groups, dilation) -> ConvParams:
    return ConvParams(tuple(stride), tuple(padding), tuple(output_padding), tuple(dilation), groups,
                      tuple(weight.shape[2:]))


def _torch_result(x, weight, bias, params: ConvParams, activation: str, negative_slope: float) -> torch.Tensor:
    """torch's own ``act(conv_transpose{1,2,3}d(...))``: the fallback off CUDA without the interpreter."""
    y = getattr(F, f"conv_transpose{params.ndim}d")(
        x, weight, bias, params.stride, params.padding, params.output_padding, params.groups, params.dilation
    )
    return activations.apply_torch(y, None if activation == "none" else activation, negative_slope)


def _forward(x, weight, bias, params, activation, negative_slope, out=None, layout_from_weight=True) -> torch.Tensor:
    if out is None:
        out = conv_transpose_fwd.allocate_output(x, weight, params, layout_from_weight)
    if runs_triton(x.device):
        return conv_transpose_fwd.conv_transpose_forward(x, weight, bias, params, activation, negative_slope, out)
    # torch's result follows its own rule (input or weight); copied into the layout the fake implementation gives.
    return out.copy_(_torch_result(x, weight, bias, params, activation, negative_slope))


def _torch_backward(grad, x, weight, bias, params, activation, slope):
    """The fallback's gradients, from torch's own autograd of :func:`_torch_result`."""
    primals = (x, weight) if bias is None else (x, weight, bias)
    _, vjp = torch.func.vjp(
        lambda *p: _torch_result(p[0], p[1], p[2] if len(p) > 2 else None, params, activation, slope), *primals
    )
    grads = vjp(grad)
    return grads[0], grads[1], grads[2] if bias is not None else None


def _laid_like(t: torch.Tensor | None, ref: torch.Tensor) -> torch.Tensor | None:
    """``t`` with ``empty_like(ref)``'s strides (the fake implementation's), copied only if they differ."""
    if t is None:
        return t
    like = torch.empty_like(ref)
    return t if t.stride() == like.stride() else like.copy_(t)


def _register(ndim: int) -> None:
    """Register ``triton_convt::conv_transpose{ndim}d``, its ``_out`` and ``_backward`` ops, their fake
    implementations and the autograd formula. The arguments are validated, normalised and batched by
    :mod:`triton_convt.functional.conv_transpose`."""
    name = f"conv_transpose{ndim}d"

    @torch.library.custom_op(f"triton_convt::{name}", mutates_args=())
    def forward_op(
        input: torch.Tensor,
        weight: torch.Tensor,
        bias: Optional[torch.Tensor],
        stride: list[int],
        padding: list[int],
        output_padding: list[int],
        groups: int,
        dilation: list[int],
        activation: str,
        negative_slope: float,
        layout_from_weight: bool = True,
    ) -> torch.Tensor:
        """``act(conv_transpose{ndim}d(input, weight, bias))`` on batched input; activation "none" for none. The
        output is channels_last when the input or, with ``layout_from_weight`` (torch's rule), the weight is; the
        modules pass False (:func:`~triton_convt.launch.conv_transpose_fwd.allocate_output`)."""
        params = _params(weight, stride, padding, output_padding, groups, dilation)
        return _forward(input, weight, bias, params, activation, negative_slope, layout_from_weight=layout_from_weight)

    @forward_op.register_fake
    def _(input, weight, bias, stride, padding, output_padding, groups, dilation, activation, negative_slope,
          layout_from_weight=True):  # fmt: skip
        params = _params(weight, stride, padding, output_padding, groups, dilation)
        return conv_transpose_fwd.allocate_output(input, weight, params, layout_from_weight)

    @torch.library.custom_op(f"triton_convt::{name}_out", mutates_args=("out",))
    def out_op(
        input: torch.Tensor,
        weight: torch.Tensor,
        bias: Optional[torch.Tensor],
        stride: list[int],
        padding: list[int],
        output_padding: list[int],
        groups: int,
        dilation: list[int],
        activation: str,
        negative_slope: float,
        out: torch.Tensor,
    ) -> None:
        """:func:`forward_op` written into ``out`` (validated: right shape, dtype, device, no overlap)."""
        params = _params(weight, stride, padding, output_padding, groups, dilation)
        _forward(input, weight, bias, params, activation, negative_slope, out)

    def _setup_context(ctx, inputs, output):
        input, weight, bias, stride, padding, output_padding, groups, dilation, activation, negative_slope = inputs[:10]
        ctx.params = _params(weight, stride, padding, output_padding, groups, dilation)
        ctx.activation, ctx.negative_slope = activation, negative_slope
        # The output is saved only when the activation's derivative can be read from it; gelu, gelu_tanh and silu
        # recompute their pre-activation in backward instead of keeping a second output-sized tensor alive.
        keeps_output = activation != "none" and not conv_transpose_bwd.needs_preactivation(activation,
                                                                                            negative_slope)
        ctx.save_for_backward(input, weight, bias, output if keeps_output else None)

    @torch.library.custom_op(f"triton_convt::{name}_backward", mutates_args=())
    def backward_op(
        grad: torch.Tensor,
        input: torch.Tensor,
        weight: torch.Tensor,
        bias: Optional[torch.Tensor],
        output: Optional[torch.Tensor],
        stride: list[int],
        padding: list[int],
        output_padding: list[int],
        groups: int,
        dilation: list[int],
        activation: str,
        negative_slope: float,
        needs: list[bool],
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Gradients (input, weight, bias) of :func:`forward_op`; an unneeded one is an empty tensor. The weight's
        gradient has the weight's strides (``empty_like``), so that AccumulateGrad and DDP's buckets, which expect a
        parameter's own layout, take it without a copy.

        A custom op of its own so that the autograd formula stays traceable (fake tensors, ``torch.compile``):
        the Triton launches happen inside it. ``output`` is the forward's output when the activation's derivative
        is read from it, else None (the pre-activation is recomputed here).
        """
        params = _params(weight, stride, padding, output_padding, groups, dilation)
        if runs_triton(input.device):
            saved = output
            if conv_transpose_bwd.needs_preactivation(activation, negative_slope):
                saved = conv_transpose_fwd.conv_transpose_forward(input, weight, bias, params)
            grads = conv_transpose_bwd.conv_transpose_backward(
                grad, input, weight, bias is not None, saved, params, activation, negative_slope, tuple(needs)
            )
        else:
            grads = _torch_backward(grad, input, weight, bias, params, activation, negative_slope)
            grads = (_laid_like(grads[0], input), _laid_like(grads[1], weight), grads[2])
        return tuple(g if n and g is not None else grad.new_empty(0) for g, n in zip(grads, needs))

    @backward_op.register_fake
    def _(grad, input, weight, bias, output, stride, padding, output_padding, groups, dilation, activation,
          negative_slope, needs):
        has = (True, True, bias is not None)
        likes = (torch.empty_like(input), torch.empty_like(weight), grad.new_empty(weight.shape[1] * groups))
        return tuple(like if n and h else grad.new_empty(0) for like, n, h in zip(likes, needs, has))

    def _backward(ctx, grad):
        x, weight, bias, y = ctx.saved_tensors
        p = ctx.params
        needs = list(ctx.needs_input_grad[:3])
        grads = getattr(torch.ops.triton_convt, f"{name}_backward")(
            grad, x, weight, bias, y, list(p.stride), list(p.padding), list(p.output_padding), p.groups,
            list(p.dilation), ctx.activation, ctx.negative_slope, needs,
        )  # fmt: skip
        grads = [g if n else None for g, n in zip(grads, needs)]
        if bias is None:
            grads[2] = None
        return (*grads, None, None, None, None, None, None, None, None)  # the 8 non-tensor arguments

    forward_op.register_autograd(_backward, setup_context=_setup_context)


for _ndim in (1, 2, 3):
    _register(_ndim)
