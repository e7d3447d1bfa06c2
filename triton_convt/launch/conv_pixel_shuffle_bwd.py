"""Launch planning of conv2d + pixel_shuffle's backward, deterministic.

With ``y = act(pixel_shuffle(conv2d(x, W) + b, r))``:

1. ``dz = pixel_unshuffle(dy * act'(.))``, the conv output's gradient, in one launch
   (:mod:`triton_convt.kernels.pixel_unshuffle_bwd`), in ``dy``'s memory format;
2. ``dx = conv_transpose2d(dz, W, stride, padding_lo, dilation, groups)`` at the input's size: the transposed
   convolution's forward launch (the conv's weight ``[C_out, C_in/g, ...]`` is a transposed convolution's
   ``[C_in, C_out/g, ...]``);
3. ``dW``: the transposed convolution's weight-gradient kernel with input and output swapped (its input is ``dz``,
   its output gradient is ``x``: ``dW[co, ci, k] = sum over (n, h, w) of dz[n, co, h, w] * x[n, ci, h*s - p + k*d]``),
   in fixed splits added in a fixed order;
4. ``db``: the channel sums of ``dz``, split the same way.

No atomics anywhere, so repeated backward calls are bitwise identical.
"""

from __future__ import annotations

import torch
import triton
from torch._prims_common import suggest_memory_format

from ..kernels.pixel_unshuffle_bwd import pixel_unshuffle_bwd_kernel
from . import configs, conv_transpose_bwd
from .conv_pixel_shuffle_fwd import conv2d_pixel_shuffle_forward
from .conv_transpose_fwd import conv_transpose_forward
from .kernel_plan import KernelPlan, numeric_constexprs, strides
from .pixel_shuffle_shapes import ConvShuffleParams


def unshuffle_plan(dy: torch.Tensor, saved: torch.Tensor | None, dz: torch.Tensor, upscale: int, activation: str,
                   negative_slope: float, *, config: dict | None = None) -> KernelPlan:  # fmt: skip
    """The launch that writes ``dz`` (``[N, C_out, H_conv, W_conv]``, any strides) from the shuffled ``dy`` and, for
    an activation, ``saved`` (the output, or the recomputed pre-activation; same shape as ``dy``, any strides)."""
    if config is None:
        config = configs.config_for(
            "pixel_unshuffle_bwd", dz.dtype, dz.device, {"BLOCK": dz.numel()},
            lambda c: unshuffle_plan(dy, saved, dz, upscale, activation, negative_slope, config=c),
        )  # fmt: skip
    v = dy if saved is None else saved
    numeric = numeric_constexprs((dz, dy, v))
    n, c, h, w = dz.shape
    args = dict(
        dy_ptr=dy, v_ptr=v, dz_ptr=dz, NUMEL=dz.numel(), C=c, H=h, W=w,
        **strides("dy", dy), **strides("v", v), **strides("dz", dz),
        SHUFFLE=upscale, CHANNELS_LAST=dz.stride(1) == 1 and c > 1, ACTIVATION=activation,
        NEGATIVE_SLOPE=float(negative_slope) if activation == "leaky_relu" else 0.0,
        COMPUTE_DTYPE=numeric["ACC_DTYPE"], INDEX_DTYPE=numeric["INDEX_DTYPE"], BLOCK=config["BLOCK"],
    )  # fmt: skip
    grid = (triton.cdiv(dz.numel(), config["BLOCK"]),)
    return KernelPlan(pixel_unshuffle_bwd_kernel, grid, args, config["num_warps"], config["num_stages"])


def unshuffled_gradient(dy: torch.Tensor, saved: torch.Tensor | None, weight: torch.Tensor, conv_hw: tuple[int, int],
                        upscale: int, activation: str, negative_slope: float) -> torch.Tensor:  # fmt: skip
    """``dz = pixel_unshuffle(dy * act'(saved))`` (``saved`` None for no activation), in ``dy``'s memory format."""
    dz = torch.empty((dy.shape[0], weight.shape[0], *conv_hw), dtype=dy.dtype, device=dy.device,
                     memory_format=suggest_memory_format(dy))  # fmt: skip
    unshuffle_plan(dy, saved, dz, upscale, activation, negative_slope).launch()
    return dz


def conv2d_pixel_shuffle_backward(
    dy: torch.Tensor,
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    output: torch.Tensor | None,
    params: ConvShuffleParams,
    activation: str,
    negative_slope: float,
    needs: tuple[bool, bool, bool],
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """Gradients ``(dx, dw, db)`` (None where ``needs`` says not needed) of
    ``act(pixel_shuffle(conv2d(x, weight) + bias, r))`` on 4-D ``x``.

    ``output`` is the forward's output when the activation's derivative is read from it, else None (then the
    pre-activation is recomputed with one forward launch; see :func:`.conv_transpose_bwd.needs_preactivation`).
    """
    if dy.numel() == 0:  # an empty batch, or no input channels (then no output channel either): zero gradients
        zeros = (torch.zeros_like(x), torch.zeros_like(weight), None if bias is None else torch.zeros_like(bias))
        return tuple(z if n else None for z, n in zip(zeros, needs))
    saved = None
    if activation != "none":
        saved = output
        if conv_transpose_bwd.needs_preactivation(activation, negative_slope):
            saved = conv2d_pixel_shuffle_forward(x, weight, bias, params)
    in_hw = tuple(x.shape[2:])
    dz = unshuffled_gradient(dy, saved, weight, params.conv_hw(in_hw), params.upscale, activation, negative_slope)
    tparams = params.transposed(in_hw)
    dx = dw = db = None
    if needs[0]:
        dx = torch.empty_like(x)  # x's strides when x is dense, its suggested memory format otherwise
        conv_transpose_forward(dz, weight, None, tparams, out=dx)
    if needs[1]:
        dw = torch.empty_like(weight)  # the weight's strides when it is dense, as torch's gradient has them
        plan, partial = conv_transpose_bwd.weight_grad_plan(dz, x, weight, tparams)
        plan.launch()
        dw.copy_(partial.sum(0))  # the splits added in a fixed order, then one cast
    if needs[2] and bias is not None:
        plan, partial = conv_transpose_bwd.bias_grad_plan(dz)
        plan.launch()
        db = partial.sum(0).to(dy.dtype)
    return dx, dw, db
