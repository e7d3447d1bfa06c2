"""Launch planning of nearest-upsample + conv's backward: the transposed convolution's backward with the folded
weight, and the weight gradient unfolded back to the conv's taps.

With ``y = act(conv_transpose2d(x, W', b))`` and ``W' = fold(w)`` (:mod:`.upsample_conv_fwd`): ``dz = dy * act'``
(the transposed convolution's activation kernel), ``dx`` its input gradient with ``W'``, ``db`` its bias gradient,
and ``dw = unfold(dW')``, where the transposed convolution's weight-gradient kernel writes ``dW'`` as split partial
sums and :func:`unfold_plan`'s one launch adds them (in a fixed order, in the accumulator dtype) and distributes
them to the conv's taps. Every step is deterministic, so repeated backward calls are bitwise identical.
"""

from __future__ import annotations

import torch
import triton

from ..kernels.upsample_fold import upsample_unfold_kernel
from . import configs, conv_transpose_bwd
from .conv_transpose_fwd import conv_transpose_forward
from .kernel_plan import KernelPlan, numeric_constexprs, strides
from .upsample_conv_fwd import allocate_output, fold_constexprs, fold_weight
from .upsample_shapes import UpsampleConvParams


def unfold_plan(
    partial: torch.Tensor, dw: torch.Tensor, params: UpsampleConvParams, *, config: dict | None = None
) -> KernelPlan:
    """The launch that writes the conv weight's gradient ``dw`` (any strides) from the ``[splits, C_in,
    C_out/groups, K'h, K'w]`` partial sums of the folded weight's gradient."""
    splits, c_in, c_out_g = partial.shape[:3]
    pairs = c_in * c_out_g
    if config is None:
        config = configs.config_for(
            "upsample_unfold", dw.dtype, dw.device, {"BLOCK": pairs},
            lambda c: unfold_plan(partial, dw, params, config=c),
        )  # fmt: skip
    p_strides = dict(zip(("stride_ps", "stride_pi", "stride_po", "stride_ph", "stride_pw"), partial.stride()))
    args = dict(
        partial_ptr=partial, dw_ptr=dw, SPLITS=splits, C_IN=c_in, C_IN_G=c_in // params.groups, C_OUT_G=c_out_g,
        **p_strides, **strides("w", dw, dims="oihw"), **fold_constexprs(params),
        ACC_DTYPE=numeric_constexprs((dw,))["ACC_DTYPE"], BLOCK=config["BLOCK"],
    )  # fmt: skip
    grid = (triton.cdiv(pairs, config["BLOCK"]),)
    return KernelPlan(upsample_unfold_kernel, grid, args, config["num_warps"], config["num_stages"])


def upsample_conv2d_backward(
    dy: torch.Tensor,
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    output: torch.Tensor | None,
    params: UpsampleConvParams,
    activation: str,
    negative_slope: float,
    needs: tuple[bool, bool, bool],
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """Gradients ``(dx, dw, db)`` (None where ``needs`` says not needed) of
    ``act(conv2d(upsample_nearest(x), weight) + bias)``.

    ``output`` is the forward's output when the activation's derivative is read from it, else None (the
    pre-activation is then recomputed with one forward launch; see
    :func:`.conv_transpose_bwd.needs_preactivation`). The folded weight is computed again here (one launch), as the
    forward computed it: nothing was cached between the two.
    """
    folded = fold_weight(weight, params)
    tparams = params.transposed(tuple(x.shape[2:]))
    dz = dy
    if activation != "none":
        saved = output
        if conv_transpose_bwd.needs_preactivation(activation, negative_slope):
            # In the forward's layout (not the folded weight's channels_last), so dy needs no copy to match it.
            saved = conv_transpose_forward(x, folded, bias, tparams, out=allocate_output(x, weight, params))
        dz = conv_transpose_bwd.activation_grad(dy, saved, activation, negative_slope)
    dx, _, db = conv_transpose_bwd.conv_transpose_backward(
        dz, x, folded, bias is not None, None, tparams, "none", negative_slope, (needs[0], False, needs[2])
    )
    dw = None
    if needs[1]:
        if x.numel() == 0:
            dw = torch.zeros_like(weight)
        else:
            plan, partial = conv_transpose_bwd.weight_grad_plan(x, dz, folded, tparams)
            plan.launch()
            dw = torch.empty_like(weight)  # the weight's strides when it is dense, as torch's gradient has them
            unfold_plan(partial, dw, params).launch()
    return dx, dw, db
