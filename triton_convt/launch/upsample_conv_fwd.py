"""Launch planning of nearest-upsample + conv: fold the weight (one launch), then the transposed convolution's forward
with the folded weight (one launch), into an output allocated as torch's composition would give it.

No upsampled tensor is ever allocated, and the folded weight is computed on every call from the weight as it is
then (no cache: a write through ``.data`` or an inference-tensor update would leave a cached fold stale), unless the
user froze the module (:func:`triton_convt.freeze`), which keeps the fold as a buffer and passes it in.
"""

from __future__ import annotations

import torch
import triton
from torch._prims_common import suggest_memory_format

from ..activations import DEFAULT_NEGATIVE_SLOPE
from ..kernels.upsample_fold import upsample_fold_kernel
from . import configs
from .conv_transpose_fwd import conv_transpose_forward
from .kernel_plan import KernelPlan, numeric_constexprs, strides
from .upsample_shapes import UpsampleConvParams


def fold_constexprs(params: UpsampleConvParams) -> dict[str, int]:
    """The constexprs both fold kernels share: the conv's and the folded kernel sizes, and per axis the bit mask of
    which conv tap lands on which folded tap (:meth:`.upsample_shapes.AxisFold.lands_mask`)."""
    (kh, kw) = params.kernel
    fh, fw = params.folds()
    return dict(KH=kh, KW=kw, FKH=fh.folded, FKW=fw.folded, LANDS_H=fh.lands_mask(kh), LANDS_W=fw.lands_mask(kw))


def allocate_folded(weight: torch.Tensor, params: UpsampleConvParams) -> torch.Tensor:
    """The folded weight ``[C_in, C_out/groups, K'h, K'w]`` (the transposed convolution's layout), output channels
    innermost (channels_last strides): the layout the forward GEMM reads its weight tiles from."""
    c_out, c_in_g = weight.shape[:2]
    fh, fw = params.folds()
    shape = (c_in_g * params.groups, c_out // params.groups, fh.folded, fw.folded)
    return torch.empty(shape, dtype=weight.dtype, device=weight.device, memory_format=torch.channels_last)


def fold_plan(
    weight: torch.Tensor, folded: torch.Tensor, params: UpsampleConvParams, *, config: dict | None = None
) -> KernelPlan:
    """The launch that writes ``folded`` (:func:`allocate_folded`, or any strides) from the conv ``weight``."""
    c_in, c_out_g = folded.shape[:2]
    pairs = c_in * c_out_g
    if config is None:
        config = configs.config_for(
            "upsample_fold", weight.dtype, weight.device, {"BLOCK": pairs},
            lambda c: fold_plan(weight, folded, params, config=c),
        )  # fmt: skip
    args = dict(
        w_ptr=weight, wf_ptr=folded, C_IN=c_in, C_IN_G=c_in // params.groups, C_OUT_G=c_out_g,
        **strides("w", weight, dims="oihw"), **strides("f", folded, weight=True),
        **fold_constexprs(params), ACC_DTYPE=numeric_constexprs((weight,))["ACC_DTYPE"], BLOCK=config["BLOCK"],
    )  # fmt: skip
    grid = (triton.cdiv(pairs, config["BLOCK"]),)
    return KernelPlan(upsample_fold_kernel, grid, args, config["num_warps"], config["num_stages"])


def fold_weight(weight: torch.Tensor, params: UpsampleConvParams) -> torch.Tensor:
    """The folded weight of ``weight``, in one launch."""
    folded = allocate_folded(weight, params)
    fold_plan(weight, folded, params).launch()
    return folded


def allocate_output(x: torch.Tensor, weight: torch.Tensor, params: UpsampleConvParams) -> torch.Tensor:
    """The output, in the memory format torch's composition gives: channels_last when the input or the (conv) weight
    is. The folded weight is always channels_last, so the transposed convolution's own rule cannot decide it."""
    n, _, h, w = x.shape
    channels_last = torch.channels_last in (suggest_memory_format(x), suggest_memory_format(weight))
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return torch.empty((n, weight.shape[0], *params.output_hw((h, w))), dtype=x.dtype, device=x.device,
                       memory_format=fmt)  # fmt: skip


def upsample_conv2d_forward(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    params: UpsampleConvParams,
    activation: str = "none",
    negative_slope: float = DEFAULT_NEGATIVE_SLOPE,
    out: torch.Tensor | None = None,
    folded: torch.Tensor | None = None,
) -> torch.Tensor:
    """``act(conv2d(upsample_nearest(x), weight) + bias)`` (into ``out`` if given, already validated): the fold, then
    one transposed-convolution launch; none at all when the output is empty. ``folded``, when given, is
    ``weight``'s fold already made (:func:`triton_convt.freeze`): the call is then the one launch, and ``weight``
    only decides the output's layout."""
    y = allocate_output(x, weight, params) if out is None else out
    if y.numel():
        if folded is None:
            folded = fold_weight(weight, params)
        conv_transpose_forward(x, folded, bias, params.transposed(tuple(x.shape[2:])), activation,
                                 negative_slope, y)  # fmt: skip
    return y
