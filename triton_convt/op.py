"""The functional op: argument handling around the launcher, and the CPU fallback."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import activations, launcher
from .validation import check_call, check_out, output_padding_from_size


def _runs_triton(device: torch.device) -> bool:
    # CUDA (and ROCm, which torch also calls "cuda") runs the compiled kernel; CPU tensors run it only under the
    # Triton interpreter. Other devices take torch's own implementation.
    if device.type == "cpu":
        return launcher.interpreter_active()
    return device.type == "cuda"


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
    weight would make NaN (as cuDNN does, pytorch#165744): a tile whose accumulator holds a NaN is recomputed with
    each tap masked to its in-range rows, a path finite operands never take. Repeated calls are bitwise identical
    (phases write disjoint outputs, no atomics).

    On CUDA tensors the Triton kernel computes the result in one launch; float32 follows
    ``torch.backends.cudnn.allow_tf32`` (TF32 tensor cores when it is on, which is torch's default for
    convolutions). On CPU tensors the same kernel runs under the Triton interpreter when ``TRITON_INTERPRET=1`` was
    set before triton_convt was imported; otherwise CPU tensors (and devices other than CUDA) fall back to
    torch's own ``conv_transpose2d`` so that a model still runs. Invalid calls raise torch's exception types on
    every path. Autograd: only the fallback records gradients for now.
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
    out4 = None if out is None else (out.unsqueeze(0) if unbatched else out)
    if _runs_triton(x.device):
        y = launcher.conv_transpose2d_forward(x, weight, bias, params, kernel_activation, negative_slope, out4)
    else:
        y = F.conv_transpose2d(
            x, weight, bias, params.stride, params.padding, params.output_padding, params.groups, params.dilation
        )
        y = activations.apply_torch(y, activation, negative_slope)
        if out4 is not None:
            y = out4.copy_(y)
    if out is not None:
        return out
    return y.squeeze(0) if unbatched else y
