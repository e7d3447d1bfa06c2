"""Sample launches of every kernel, for compiling without a GPU: one problem per kernel key, any config.

Every kernel key of ``autotune_configs/`` has an entry in :data:`SAMPLE_PLANS` that builds its launch on a sample
problem with a given config (or the one the launcher picks); :mod:`.profile` compiles every shipped config through
it. The operands are CPU tensors with deterministic values (the launcher reads the weight to choose the kernel
variant, so uninitialised memory would make the build a matter of chance).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import torch

from ..functional.conv_pixel_shuffle import check_call as check_pixel_shuffle
from ..functional.conv_transpose import check_call
from ..launch import KernelPlan
from ..launch import conv_transpose_bwd as backward
from ..launch.conv_pixel_shuffle_bwd import unshuffle_plan
from ..launch.conv_pixel_shuffle_fwd import allocate_output as pixel_shuffle_output
from ..launch.conv_pixel_shuffle_fwd import forward_plan as pixel_shuffle_plan
from ..launch.conv_transpose_fwd import allocate_output, depthwise_plan, forward_plan
from ..launch.kernel_plan import spatial_3d
from ..launch.phase_gemm import repack_plan
from ..launch.upsample_conv_bwd import unfold_plan
from ..launch.upsample_conv_fwd import allocate_folded, fold_plan
from ..launch.upsample_shapes import UpsampleConvParams
from .layers import LayerSpec

#: The dtypes and ``tl.dot`` input precisions each dtype class of the config files is compiled with. fp32 runs
#: TF32 on a GPU by default (``torch.backends.cudnn.allow_tf32``) and the exact "ieee" path when it is switched off,
#: so a fp32 config must be sound for both.
DTYPE_VARIANTS = {
    "16bit": ((torch.float16, "ieee"), (torch.bfloat16, "ieee")),
    "fp32": ((torch.float32, "tf32"), (torch.float32, "ieee")),
    "fp64": ((torch.float64, "ieee"),),
}

LAYOUTS = ("channels_last", "nchw")

#: The input layouts each kernel key's configs serve (every key not listed serves both): the forward's candidates are
#: kept apart for channels_last and NCHW inputs (:func:`triton_convt.launch.phase_gemm.config_key`).
# fmt: off
KEY_LAYOUTS = {"conv_transpose2d_fwd": ("channels_last",), "conv_transpose2d_fwd_nchw": ("nchw",),
               "conv2d_pixel_shuffle": ("channels_last",), "conv2d_pixel_shuffle_nchw": ("nchw",),
               "conv_transpose2d_bwd_input": ("channels_last",), "conv_transpose2d_bwd_input_nchw": ("nchw",),
               # It copies a weight in torch's default layout whatever the input's: one build says it all.
               "weight_repack": ("nchw",)}
# fmt: on


def layouts_of(kernel: str) -> tuple[str, ...]:
    """The input layouts the configs of ``kernel`` (a key of ``autotune_configs/``) are built and checked in."""
    return KEY_LAYOUTS.get(kernel, LAYOUTS)


def _sample(*shape: int, dtype: torch.dtype, layout: str = "nchw") -> torch.Tensor:
    """A tensor of ``shape`` with the same values on every run (seeded normal values, in ``layout``)."""
    generator = torch.Generator().manual_seed(0)
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    return torch.randn(shape, generator=generator).to(dtype).contiguous(memory_format=fmt)


def _sample_problem(dtype: torch.dtype, layout: str):
    """A typical decoder layer (k4 s2 p1, 256 -> 256 channels) shrunk to CPU size: ``(x, w, b, params, y)``.

    Every extent is at least 256 and a multiple of 16, so that no config's tile is cut down and the JIT's
    divisibility hints are those of a real layer. The weight is channels_last: the layout the GEMM kernels read
    (the launcher brings any other weight into it first, :func:`triton_convt.launch.phase_gemm.gemm_weight`).
    """
    x = _sample(2, 256, 16, 16, dtype=dtype, layout=layout)
    w = _sample(256, 256, 4, 4, dtype=dtype, layout="channels_last")
    b = _sample(256, dtype=dtype)
    params = check_call(x, w, b, 2, 1, 0, 1, 1)
    return x, w, b, params, _output(x, w, params, layout)


def _output(x: torch.Tensor, w: torch.Tensor, params, layout: str) -> torch.Tensor:
    """The output of a sample call in the layout a model in ``layout`` gets: the input's (the modules own their
    weight channels_last, and that choice does not decide their output's layout: ``layout_from_weight=False``), so
    an NCHW model gets an NCHW output."""
    return allocate_output(x, w, params, layout_from_weight=False)


def _with_precision(plan: KernelPlan, precision: str) -> KernelPlan:
    if "DOT_PRECISION" not in plan.args:  # no tl.dot in this kernel
        return plan
    return dataclasses.replace(plan, args={**plan.args, "DOT_PRECISION": precision})


def forward_sample_plan(
    dtype: torch.dtype, layout: str, config: dict | None = None, precision: str = "ieee", index64: bool | None = None
) -> KernelPlan:
    """The forward launch on the sample problem. ``config`` None takes the launcher's own choice."""
    x, w, b, params, y = _sample_problem(dtype, layout)
    return _with_precision(forward_plan(x, w, b, y, params, config=config, index64=index64), precision)


def _channels_innermost(*shape: int, dtype: torch.dtype) -> torch.Tensor:
    """A sample tensor ``(N, C, *spatial)`` (or a weight ``(C_in, C_out/g, *kernel)``) with dimension 1 innermost:
    channels_last_3d for 5-D; for 3-D, which has no memory format of its own, an ``(N, L, C)`` tensor transposed."""
    t = _sample(shape[0], *shape[2:], shape[1], dtype=dtype)
    return t.movedim(-1, 1)


def _nd_forward(x_shape: tuple, w_shape: tuple, stride: int, padding: int, output_padding: int):
    """A builder of the forward launch on one 1-D or 3-D sample problem, operands channels innermost."""

    def build(dtype: torch.dtype, layout: str = "channels_last", config: dict | None = None, precision: str = "ieee",
              index64: bool | None = None) -> KernelPlan:  # fmt: skip
        x = _channels_innermost(*x_shape, dtype=dtype) if layout == "channels_last" else _sample(*x_shape, dtype=dtype)
        w = _channels_innermost(*w_shape, dtype=dtype)
        b = _sample(w_shape[1], dtype=dtype)
        params = check_call(x, w, b, stride, padding, output_padding, 1, 1)
        y = _output(x, w, params, layout)
        return _with_precision(forward_plan(x, w, b, y, params, config=config, index64=index64), precision)

    return build


#: Forward launches of the same GEMM kernel on 1-D and 3-D problems (issue 15), for the static profile's report
#: (``triton-convt-profile --picked`` and the report's profile build them with the launcher's pick, 16-bit, with
#: channels innermost and in NCL / NCDHW; they are reported, not held to the 2-D builds' hot-loop gate). Each extent
#: is a multiple of 16 and each phase has 256 rows or more, as the 2-D sample problem's, so that no tile is cut down.
ND_FORWARD_SAMPLES: dict[str, Callable[..., KernelPlan]] = {
    # HiFi-GAN's first upsampler (k16 s8 p4) at 256 channels: 2 taps per phase, 1024 outputs per sequence.
    "1d-k16s8": _nd_forward((2, 256, 128), (256, 256, 16), 8, 4, 0),
    # nnU-Net's decoder (k2 s2): one tap per phase, 8 phases.
    "3d-k2s2": _nd_forward((2, 256, 8, 8, 8), (256, 256, 2, 2, 2), 2, 0, 0),
    # MONAI UNet's up layer (k3 s2 p1 op1): 1 to 8 taps per phase.
    "3d-k3s2": _nd_forward((2, 256, 8, 8, 8), (256, 256, 3, 3, 3), 2, 1, 1),
}


def _empty_channels_innermost(*shape: int, dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised ``(N, C, *spatial)`` tensor with channels innermost (as :func:`_channels_innermost`): memory
    that is reserved, never written or read (a compile needs the tensor's shape, strides and dtype only)."""
    return torch.empty(shape[0], *shape[2:], shape[1], dtype=dtype).movedim(-1, 1)


def layer_plan(spec: LayerSpec, dtype: torch.dtype, config: dict | None = None, precision: str = "ieee") -> KernelPlan:
    """The forward GEMM launch of one layer of the report's set (:mod:`.layers`) at its full size, as a call with
    channels-innermost operands runs it: input, weight and output channels innermost (the report's channels_last
    layout; a weight in any other layout reaches the kernel in that order after its copy), the layer's bias and
    activation. ``config`` None takes the launcher's untuned pick.

    The static profile's layer builds and the work model's issue term (:mod:`.workmodel`) compile it, so that the
    SASS they read has the layer's own column count, taps, channel blocks, epilogue and index width. The input and
    output are allocated but never touched (:func:`_empty_channels_innermost`): a compile reads shapes, strides and
    the weight's values (the launcher checks them for non-finite entries) only.
    """
    if spec.c_in // spec.groups == 1:
        raise ValueError(f"{spec.name} has one input channel per group: the depthwise kernel runs it, not the GEMM")
    x = _empty_channels_innermost(spec.n, spec.c_in, *spec.hw, dtype=dtype)
    w = _channels_innermost(spec.c_in, spec.c_out // spec.groups, *spec.kernel, dtype=dtype)
    b = _sample(spec.c_out, dtype=dtype) if spec.bias else None
    params = check_call(x, w, b, *spec.conv_args)
    y = allocate_output(x, w, params)
    plan = forward_plan(x, w, b, y, params, activation=spec.activation or "none", config=config)
    return _with_precision(plan, precision)


def pixel_shuffle_sample_plan(dtype: torch.dtype, layout: str, config: dict | None = None, precision: str = "ieee",
                              index64: bool | None = None) -> KernelPlan:  # fmt: skip
    """The conv2d + pixel_shuffle launch (the phase GEMM with ``SHUFFLE = 2``) on EDSR's x2 upsampler shrunk to CPU
    size: a 3x3 conv from 256 to 4*256 channels, padding 1, then pixel shuffle by 2; the weight in the kernel's
    layout (output channels innermost, as :class:`triton_convt.PixelShuffleConv2d` owns it), 512 rows, every
    extent a multiple of 16 as in :func:`_sample_problem`."""
    x = _sample(2, 256, 16, 16, dtype=dtype, layout=layout)
    w = _sample(256, 3, 3, 1024, dtype=dtype).permute(3, 0, 1, 2)
    b = _sample(1024, dtype=dtype)
    params = check_pixel_shuffle(x, w, b, 2, 1, 1, 1, 1)
    y = pixel_shuffle_output(x, w, params)
    return _with_precision(pixel_shuffle_plan(x, w, b, y, params, config=config, index64=index64), precision)


def depthwise_sample_plan(dtype: torch.dtype, layout: str, config: dict | None = None, precision: str = "ieee"):
    """The depthwise launch on FCN's upsampling shape (k4 s2 p1, groups = channels = 128) at CPU size."""
    x = _sample(2, 128, 16, 16, dtype=dtype, layout=layout)
    w = _sample(128, 1, 4, 4, dtype=dtype)
    params = check_call(x, w, None, 2, 1, 0, 128, 1)
    return depthwise_plan(x, w, None, allocate_output(x, w, params), params, config=config)


def bwd_input_sample_plan(dtype: torch.dtype, layout: str, config: dict | None = None, precision: str = "ieee"):
    """The input-gradient launch on the sample problem (``dz`` in the output's layout)."""
    x, w, _, params, dz = _sample_problem(dtype, layout)
    return _with_precision(backward.input_grad_plan(dz, w, torch.empty_like(x), params, config=config), precision)


def bwd_weight_sample_plan(dtype: torch.dtype, layout: str, config: dict | None = None, precision: str = "ieee"):
    """The weight-gradient launch on the sample problem."""
    x, w, _, params, dz = _sample_problem(dtype, layout)
    return _with_precision(backward.weight_grad_plan(x, dz, w, params, config=config)[0], precision)


def weight_repack_sample_plan(
    dtype: torch.dtype, layout: str, config: dict | None = None, precision: str = "ieee"
) -> KernelPlan:
    """The launch that brings the sample problem's weight, in torch's default layout, into channels_last order."""
    w = _sample(256, 256, 4, 4, dtype=dtype)
    return repack_plan(spatial_3d(w), config=config)[0]


def pixel_unshuffle_bwd_sample_plan(dtype: torch.dtype, layout: str, config: dict | None = None,
                                    precision: str = "ieee") -> KernelPlan:  # fmt: skip
    """The backward's unshuffle with gelu's derivative (the longest formula) on :func:`pixel_shuffle_sample_plan`'s
    output gradient (``layout``): the ``[2, 1024, 16, 16]`` conv output gradient, in the same layout."""
    plan = pixel_shuffle_sample_plan(dtype, layout)
    dy = plan.args["y_ptr"].squeeze(2)
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    dz = torch.empty((2, 1024, 16, 16), dtype=dtype, memory_format=fmt)
    return unshuffle_plan(dy, dy, dz, 2, "gelu", 0.01, config=config)


def channel_sum_sample_plan(dtype: torch.dtype, layout: str, config: dict | None = None, precision: str = "ieee"):
    """The bias-gradient launch on the sample problem's output gradient."""
    return backward.bias_grad_plan(_sample_problem(dtype, layout)[4], config=config)[0]


def activation_bwd_sample_plan(dtype: torch.dtype, layout: str, config: dict | None = None, precision: str = "ieee"):
    """The activation-derivative launch (gelu, the longest formula) on the sample problem's output."""
    y = _sample_problem(dtype, layout)[4]
    return backward.activation_grad_plan(y, y, torch.empty_like(y), "gelu", 0.01, config=config)


#: The VAE decoder's upsampler (nearest x2, 3x3, padding 1) at 128 -> 128 channels: what the fold kernels sample.
_UPSAMPLER = UpsampleConvParams(scale=(2, 2), padding=((1, 1), (1, 1)), dilation=(1, 1), groups=1, kernel=(3, 3))


def upsample_fold_sample_plan(dtype: torch.dtype, layout: str, config: dict | None = None, precision: str = "ieee"):
    """The weight fold of the VAE upsampler (a conv weight in ``layout``) into its 4x4 transposed-conv weight."""
    w = _sample(128, 128, 3, 3, dtype=dtype, layout=layout)
    return fold_plan(w, allocate_folded(w, _UPSAMPLER), _UPSAMPLER, config=config)


def upsample_unfold_sample_plan(dtype: torch.dtype, layout: str, config: dict | None = None,
                                precision: str = "ieee"):  # fmt: skip
    """The weight gradient's unfold of the VAE upsampler, from 4 split partial sums (fp32; fp64 for fp64)."""
    dw = _sample(128, 128, 3, 3, dtype=dtype, layout=layout)
    partial = _sample(4, 128, 128, 4, 4, dtype=torch.float64 if dtype == torch.float64 else torch.float32)
    return unfold_plan(partial, dw, _UPSAMPLER, config=config)


#: Kernel key of ``autotune_configs/`` -> ``(dtype, layout, config, precision) -> KernelPlan`` on a sample problem.
#: A kernel whose configs are shipped registers its builder here, so that the profile and the tests compile them.
SAMPLE_PLANS: dict[str, Callable[..., KernelPlan]] = {
    "conv_transpose2d_fwd": forward_sample_plan,
    "conv_transpose2d_fwd_nchw": forward_sample_plan,
    "conv2d_pixel_shuffle": pixel_shuffle_sample_plan,
    "conv2d_pixel_shuffle_nchw": pixel_shuffle_sample_plan,
    "conv_transpose2d_fwd_depthwise": depthwise_sample_plan,
    "conv_transpose2d_bwd_input": bwd_input_sample_plan,
    "conv_transpose2d_bwd_input_nchw": bwd_input_sample_plan,
    "conv_transpose2d_bwd_weight": bwd_weight_sample_plan,
    "channel_sum": channel_sum_sample_plan,
    "activation_bwd": activation_bwd_sample_plan,
    "weight_repack": weight_repack_sample_plan,
    "pixel_unshuffle_bwd": pixel_unshuffle_bwd_sample_plan,
    "upsample_fold": upsample_fold_sample_plan,
    "upsample_unfold": upsample_unfold_sample_plan,
}


#: Kernel key -> ``(dtype, layout, config, precision, index64) -> KernelPlan``: the launches ``triton-convt-profile
#: --picked`` builds with the launcher's own config, each in the layouts its key serves (:func:`layouts_of`).
PICKED_PLANS: dict[str, Callable[..., KernelPlan]] = {
    "conv_transpose2d_fwd": forward_sample_plan,
    "conv_transpose2d_fwd_nchw": forward_sample_plan,
    "conv2d_pixel_shuffle": pixel_shuffle_sample_plan,
    "conv2d_pixel_shuffle_nchw": pixel_shuffle_sample_plan,
}


@functools.cache
def uses_dot(kernel: str) -> bool:
    """Whether ``kernel``'s launch multiplies with ``tl.dot`` (its plan takes a ``DOT_PRECISION``); the elementwise
    and reduction kernels do not."""
    # Built on one thread: the profile forks its compile processes after asking, and a process forked from one that
    # had run a parallel torch op waits forever on the intra-op threads it did not inherit.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return "DOT_PRECISION" in SAMPLE_PLANS[kernel](torch.float32, layouts_of(kernel)[0]).args
    finally:
        torch.set_num_threads(threads)


def dtype_variants(kernel: str, cls: str) -> tuple[tuple[torch.dtype, str], ...]:
    """The ``(dtype, precision)`` builds of ``kernel`` for dtype class ``cls``: :data:`DTYPE_VARIANTS`, except that
    a kernel without ``tl.dot`` compiles one code for both fp32 precisions, so it is built once (as "ieee")."""
    if uses_dot(kernel):
        return DTYPE_VARIANTS[cls]
    return tuple(dict.fromkeys((dtype, "ieee") for dtype, _ in DTYPE_VARIANTS[cls]))


def forward_variants() -> list[tuple[dict, KernelPlan]]:
    """Plans of the forward kernel for each dtype, layout and fp32 precision, with the config the launcher picks
    for the sample problem, plus the int64 index path."""
    variants = []
    for variants_of_class in DTYPE_VARIANTS.values():
        for dtype, precision in variants_of_class:
            for layout in LAYOUTS:
                label = {"dtype": str(dtype).split(".")[1], "layout": layout, "precision": precision}
                variants.append((label, forward_sample_plan(dtype, layout, precision=precision)))
    plan = forward_sample_plan(torch.float16, "channels_last", index64=True)
    variants.append(({"dtype": "float16", "layout": "channels_last", "precision": "ieee", "index": "int64"}, plan))
    return variants


def plan_config(plan: KernelPlan) -> dict:
    """The config a plan was built with: its ``BLOCK_*`` constexprs, warps and stages."""
    blocks = {k: v for k, v in plan.args.items() if k.startswith("BLOCK")}
    return blocks | {"num_warps": plan.num_warps, "num_stages": plan.num_stages}
