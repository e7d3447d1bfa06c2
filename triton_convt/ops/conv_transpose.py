"""The ``torch.library`` ops of the transposed convolution and their autograd, for 1, 2 and 3 spatial axes.

``torch.ops.triton_convt.conv_transpose{1,2,3}d`` (and ``..._out`` for ``out=``) take the validated, normalised,
batched arguments that :func:`triton_convt.functional.conv_transpose2d` (``1d``, ``3d``) prepares. Each has a fake
implementation (output shape and strides from :func:`~triton_convt.launch.conv_transpose_fwd.allocate_output`), so
meta tensors and ``torch.compile`` see through it, and the autograd formula's gradients come from the Triton
backward kernels through a third op, ``..._backward`` (:mod:`triton_convt.launch.conv_transpose_bwd`). The three
families are registered by :func:`.family.register` from one description each: only the op names and the rank of
the tensors differ. The forward op's last argument, ``layout_from_weight`` (default True, torch's rule: the output
is channels_last when the input or the weight is), is False from the modules, whose weight is in the kernel's
layout whatever the user's was (:attr:`.family.OpFamily.layout_option`). Off CUDA and without the Triton
interpreter, every op computes torch's own result instead (:func:`.dispatch.runs_triton`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import activations
from ..launch import conv_transpose_bwd, conv_transpose_fwd
from ..launch.shapes import ConvParams
from .family import OpFamily, register


def _params(weight: torch.Tensor, stride, padding, output_padding, groups, dilation) -> ConvParams:
    return ConvParams(
        tuple(stride), tuple(padding), tuple(output_padding), tuple(dilation), groups, tuple(weight.shape[2:])
    )


def _torch_result(x, weight, bias, params: ConvParams, activation: str, negative_slope: float) -> torch.Tensor:
    """torch's own ``act(conv_transpose{1,2,3}d(...))``: the fallback off CUDA without the interpreter."""
    y = getattr(F, f"conv_transpose{params.ndim}d")(
        x, weight, bias, params.stride, params.padding, params.output_padding, params.groups, params.dilation
    )
    return activations.apply_torch(y, None if activation == "none" else activation, negative_slope)


def _backward(grad, x, weight, bias, output, params: ConvParams, activation: str, negative_slope: float, needs):
    """The Triton gradients; the pre-activation is recomputed (one forward launch) when the activation's derivative
    cannot be read from the saved output."""
    saved = output
    if conv_transpose_bwd.needs_preactivation(activation, negative_slope):
        saved = conv_transpose_fwd.conv_transpose_forward(x, weight, bias, params)
    return conv_transpose_bwd.conv_transpose_backward(
        grad, x, weight, bias is not None, saved, params, activation, negative_slope, needs
    )


for _ndim in (1, 2, 3):
    register(OpFamily(
        name=f"conv_transpose{_ndim}d",
        arguments=(("stride", list[int]), ("padding", list[int]), ("output_padding", list[int]), ("groups", int),
                   ("dilation", list[int])),
        params=_params,
        forward=conv_transpose_fwd.conv_transpose_forward,
        backward=_backward,
        torch_result=_torch_result,
        allocate_output=conv_transpose_fwd.allocate_output,
        weight_grad_contiguous=False,  # in the weight's strides: AccumulateGrad and DDP's buckets take it as it is
        summary=f"act(conv_transpose{_ndim}d(input, weight, bias))",
        layout_option=True,  # the modules own their weight's layout (:mod:`triton_convt.owned_layout`)
    ))  # fmt: skip
