"""The functional op, its ``torch.library`` registration and its autograd.

:func:`conv_transpose2d` validates and normalises a call (torch's errors, unbatched input, ``output_size``), then
calls the custom op ``torch.ops.triton_convt.conv_transpose2d`` (or ``conv_transpose2d_out`` for ``out=``). The
custom op has a fake implementation (output shape from the formula), so meta tensors and ``torch.compile`` see
through it, and an autograd formula whose gradients come from the Triton backward kernels (:mod:`.backward`).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from . import activations, backward, launcher
from .validation import ConvParams, check_call, check_out, output_padding_from_size


def _runs_triton(device: torch.device) -> bool:
    # CUDA (and ROCm, which torch also calls "cuda") runs the compiled kernel; CPU tensors run it only under the
    # Triton interpreter. Other devices take torch's own implementation.
    if device.type == "cpu":
        return launcher.interpreter_active()
    return device.type == "cuda"


def _params(weight: torch.Tensor, stride, padding, output_padding, groups, dilation) -> ConvParams:
    return ConvParams(tuple(stride), tuple(padding), tuple(output_padding), tuple(dilation), groups,
                      tuple(weight.shape[2:]))


def _torch_result(x, weight, bias, params: ConvParams, activation: str, negative_slope: float) -> torch.Tensor:
    """torch's own ``act(conv_transpose2d(...))``: the fallback off CUDA without the interpreter."""
    y = F.conv_transpose2d(
        x, weight, bias, params.stride, params.padding, params.output_padding, params.groups, params.dilation
    )
    return activations.apply_torch(y, None if activation == "none" else activation, negative_slope)


def _forward(x, weight, bias, params, activation, negative_slope, out=None) -> torch.Tensor:
    if _runs_triton(x.device):
        return launcher.conv_transpose2d_forward(x, weight, bias, params, activation, negative_slope, out)
    y = _torch_result(x, weight, bias, params, activation, negative_slope)
    return y if out is None else out.copy_(y)


# The custom ops take validated, normalised, batched arguments: `conv_transpose2d` below prepares them.
@torch.library.custom_op("triton_convt::conv_transpose2d", mutates_args=())
def conv_transpose2d_op(
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
) -> torch.Tensor:
    """``act(conv_transpose2d(input, weight, bias))`` on 4-D input; activation "none" for none."""
    params = _params(weight, stride, padding, output_padding, groups, dilation)
    return _forward(input, weight, bias, params, activation, negative_slope)


@conv_transpose2d_op.register_fake
def _(input, weight, bias, stride, padding, output_padding, groups, dilation, activation, negative_slope):
    return launcher.allocate_output(input, weight, _params(weight, stride, padding, output_padding, groups, dilation))


@torch.library.custom_op("triton_convt::conv_transpose2d_out", mutates_args=("out",))
def conv_transpose2d_out_op(
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
    """:func:`conv_transpose2d_op` written into ``out`` (validated: right shape, dtype, device, no overlap)."""
    params = _params(weight, stride, padding, output_padding, groups, dilation)
    _forward(input, weight, bias, params, activation, negative_slope, out)


def _setup_context(ctx, inputs, output):
    input, weight, bias, stride, padding, output_padding, groups, dilation, activation, negative_slope = inputs
    ctx.params = _params(weight, stride, padding, output_padding, groups, dilation)
    ctx.activation, ctx.negative_slope = activation, negative_slope
    # The output is saved only when the activation's derivative can be read from it; gelu, gelu_tanh and silu
    # recompute their pre-activation in backward instead of keeping a second output-sized tensor alive.
    keeps_output = activation != "none" and not backward.needs_preactivation(activation, negative_slope)
    ctx.save_for_backward(input, weight, bias, output if keeps_output else None)


@torch.library.custom_op("triton_convt::conv_transpose2d_backward", mutates_args=())
def conv_transpose2d_backward_op(
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
    """Gradients (input, weight, bias) of :func:`conv_transpose2d_op`; an unneeded one is an empty tensor.

    A custom op of its own so that the autograd formula stays traceable (fake tensors, ``torch.compile``): the
    Triton launches happen inside it. ``output`` is the forward's output when the activation's derivative is read
    from it, else None (the pre-activation is recomputed here).
    """
    params = _params(weight, stride, padding, output_padding, groups, dilation)
    if _runs_triton(input.device):
        saved = output
        if backward.needs_preactivation(activation, negative_slope):
            saved = launcher.conv_transpose2d_forward(input, weight, bias, params)
        grads = backward.conv_transpose2d_backward(
            grad, input, weight, bias is not None, saved, params, activation, negative_slope, tuple(needs)
        )
    else:
        grads = _torch_backward(grad, input, weight, bias, params, activation, negative_slope)
    return tuple(g if n and g is not None else grad.new_empty(0) for g, n in zip(grads, needs))


@conv_transpose2d_backward_op.register_fake
def _(grad, input, weight, bias, output, stride, padding, output_padding, groups, dilation, activation,
      negative_slope, needs):
    has = (True, True, bias is not None)
    likes = (torch.empty_like(input), weight.new_empty(weight.shape), grad.new_empty(weight.shape[1] * groups))
    return tuple(like if n and h else grad.new_empty(0) for like, n, h in zip(likes, needs, has))


def _backward(ctx, grad):
    x, weight, bias, y = ctx.saved_tensors
    p = ctx.params
    needs = list(ctx.needs_input_grad[:3])
    grads = torch.ops.triton_convt.conv_transpose2d_backward(
        grad, x, weight, bias, y, list(p.stride), list(p.padding), list(p.output_padding), p.groups,
        list(p.dilation), ctx.activation, ctx.negative_slope, needs,
    )  # fmt: skip
    grads = [g if n else None for g, n in zip(grads, needs)]
    if bias is None:
        grads[2] = None
    return (*grads, None, None, None, None, None, None, None)


def _torch_backward(grad, x, weight, bias, params, activation, slope):
    """The fallback's gradients, from torch's own autograd of :func:`_torch_result`."""
    primals = (x, weight) if bias is None else (x, weight, bias)
    _, vjp = torch.func.vjp(
        lambda *p: _torch_result(p[0], p[1], p[2] if len(p) > 2 else None, params, activation, slope), *primals
    )
    grads = vjp(grad)
    return grads[0], grads[1], grads[2] if bias is not None else None


conv_transpose2d_op.register_autograd(_backward, setup_context=_setup_context)


def conv_transpose2d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride=1,
    padding=0,
    output_padding=0,
    groups: int = 1,
    dilation=1,
    *,
    output_size=None,
    activation: str | None = None,
    negative_slope: float = activations.DEFAULT_NEGATIVE_SLOPE,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Transposed 2-D convolution with the semantics of ``torch.nn.functional.conv_transpose2d``.

    Args:
        input: ``(N, C_in, H, W)`` or unbatched ``(C_in, H, W)``; float16, bfloat16, float32 or float64; any
            strides (NCHW, channels_last and other views are read in place, not copied).
        weight: ``(C_in, C_out / groups, kH, kW)``, same dtype and device as ``input``.
        bias: optional ``(C_out,)``.
        stride, padding, output_padding, dilation: an int or an (H, W) pair, as in torch.
        groups: number of blocked connections from input to output channels.
        output_size: optional target size, (H, W) or the whole output shape, as ``nn.ConvTranspose2d.forward``
            takes it; it picks the output_padding (and overrides the ``output_padding`` argument). A size outside
            the reachable range raises ValueError.
        activation: None, "relu", "leaky_relu", "gelu" (erf), "gelu_tanh", "silu", "sigmoid" or "tanh", applied
            after the bias in the kernel's epilogue (in fp32, fp64 for fp64 tensors) before the one cast and store:
            the result equals ``act(F.conv_transpose2d(...))`` within the dtype's tolerance, in one launch.
        negative_slope: leaky_relu's slope for negative inputs. Each distinct slope compiles its own kernel.
        out: optional tensor to write the result into, with the output's shape, dtype and device and any strides
            (a channel slice of a concat buffer, say); nothing outside it is written. It must not share memory
            with an operand and, as with torch's ``out=``, autograd does not pass through it. Returned.

    Returns:
        ``(N, C_out, H_out, W_out)`` (unbatched input gives ``(C_out, H_out, W_out)``), with
        ``H_out = (H - 1)*stride - 2*padding + dilation*(kH - 1) + output_padding + 1`` (likewise W), in
        channels_last when the input or the weight is channels_last, as torch does.

    NaN and ±inf in the input, weight or bias land where torch's CPU result has them. That includes non-finite
    weights next to the input's border, where a gather kernel multiplying an out-of-range tap's x = 0 by an inf
    weight would make NaN (as cuDNN does, pytorch#165744): when the weights are not all finite, the kernel is built
    with each tap's product masked to its in-range rows. Finite weights run the plain kernel and pay nothing but
    the check, which is made once per version of the weight tensor (``weight._version``; on CUDA it waits for one
    reduction, so make the first call of each weight version outside CUDA-graph capture). A write through
    ``weight.data`` does not change the version, so it is not seen: weights made non-finite that way give NaN at
    the borders, as cuDNN does, until the weight's next in-place update. Repeated calls are bitwise identical
    (phases write disjoint outputs, no atomics).

    On CUDA tensors the Triton kernel computes the result in one launch; float32 follows
    ``torch.backends.cudnn.allow_tf32`` (TF32 tensor cores when it is on, which is torch's default for
    convolutions). On CPU tensors the same kernel runs under the Triton interpreter when ``TRITON_INTERPRET=1`` was
    set before triton_convt was imported; otherwise CPU tensors (and devices other than CUDA) fall back to
    torch's own ``conv_transpose2d`` so that a model still runs. Invalid calls raise torch's exception types on
    every path. Autograd: gradients of input, weight and bias (activation included) come from Triton backward
    kernels, deterministic (no atomics); ``torch.compile`` and meta tensors see the op through its
    ``torch.library`` registration (``torch.ops.triton_convt.conv_transpose2d``).
    """
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"conv_transpose2d(): argument 'input' must be Tensor, not {type(input).__name__}")
    if input.dim() not in (3, 4):
        raise RuntimeError(
            f"Expected 3D (unbatched) or 4D (batched) input to conv_transpose2d, but got input of size: "
            f"{list(input.shape)}"
        )
    if output_size is not None:
        output_padding = output_padding_from_size(input, weight, output_size, stride, padding, dilation)
    unbatched = input.dim() == 3
    x = input.unsqueeze(0) if unbatched else input
    params = check_call(x, weight, bias, stride, padding, output_padding, groups, dilation)
    kernel_activation = activations.check_activation(activation)
    if out is not None:
        shape = (weight.shape[1] * params.groups, *params.output_hw(tuple(x.shape[2:])))
        check_out(out, input, weight, bias, shape if unbatched else (x.shape[0], *shape))
    args = (x, weight, bias, list(params.stride), list(params.padding), list(params.output_padding),
            params.groups, list(params.dilation), kernel_activation, float(negative_slope))
    if out is not None:
        torch.ops.triton_convt.conv_transpose2d_out(*args, out.unsqueeze(0) if unbatched else out)
        return out
    y = torch.ops.triton_convt.conv_transpose2d(*args)
    return y.squeeze(0) if unbatched else y
