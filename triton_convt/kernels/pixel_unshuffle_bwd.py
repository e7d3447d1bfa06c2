"""Backward of the pixel shuffle and the fused activation in one pass: ``dz[n, c*r*r + i*r + j, h, w] =
dy[n, c, h*r + i, w*r + j] * act'(.)`` (the activation's derivative of :mod:`.activation_bwd`; a plain copy without
an activation).

``dz`` is the gradient of the conv's output, before the shuffle: the conv's weight, bias and input gradients
(a transposed convolution of it) read it with one channel stride, which a strided view of the shuffled ``dy``
cannot give. The elements are taken in ``dz``'s memory order, so its stores are contiguous.
"""

import triton
import triton.language as tl

from .activation_bwd import activation_grad


@triton.jit
def pixel_unshuffle_bwd_kernel(
    dy_ptr,
    v_ptr,
    dz_ptr,
    NUMEL,
    C,
    H,
    W,
    stride_dyn,
    stride_dyc,
    stride_dyh,
    stride_dyw,
    stride_vn,
    stride_vc,
    stride_vh,
    stride_vw,
    stride_dzn,
    stride_dzc,
    stride_dzh,
    stride_dzw,
    SHUFFLE: tl.constexpr,
    CHANNELS_LAST: tl.constexpr,
    ACTIVATION: tl.constexpr,
    NEGATIVE_SLOPE: tl.constexpr,
    COMPUTE_DTYPE: tl.constexpr,
    INDEX_DTYPE: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """Write ``dz`` (``[N, C, H, W]``, the conv's output gradient) from the shuffled ``dy``
    (``[N, C / r^2, r*H, r*W]``) and, for an activation, the saved output or recomputed pre-activation ``v`` (same
    shape as ``dy``).

    Args:
        dy_ptr: gradient of the shuffled output, any strides.
        v_ptr: the saved output ``y`` or the recomputed pre-activation ``z``, any strides (ignored for "none").
        dz_ptr: the unshuffled gradient, written here, ``NUMEL`` elements, any strides.
        NUMEL: ``dz``'s element count.
        C, H, W: ``dz``'s channels (the conv's output channels) and spatial size.
        stride_dy*, stride_v*, stride_dz*: element strides (n, c, h, w) of each tensor.
        SHUFFLE: the upscale factor ``r``.
        CHANNELS_LAST: take the elements channel fastest (``dz`` channels_last), else width fastest.
        ACTIVATION, NEGATIVE_SLOPE: the fused activation ("none": a copy) and leaky_relu's slope.
        COMPUTE_DTYPE: fp32, or fp64 for fp64 tensors.
        INDEX_DTYPE: tl.int32, or tl.int64 when a tensor spans 2^31 elements.
        BLOCK: elements per program.
    """
    offs = tl.program_id(0).to(INDEX_DTYPE) * BLOCK + tl.arange(0, BLOCK).to(INDEX_DTYPE)
    mask = offs < NUMEL
    if CHANNELS_LAST:
        co = offs % C
        rest = offs // C
        w = rest % W
        rest = rest // W
        h = rest % H
        n = rest // H
    else:
        w = offs % W
        rest = offs // W
        h = rest % H
        rest = rest // H
        co = rest % C
        n = rest // C
    sub = co % (SHUFFLE * SHUFFLE)
    c = co // (SHUFFLE * SHUFFLE)
    oh = h * SHUFFLE + sub // SHUFFLE
    ow = w * SHUFFLE + sub % SHUFFLE
    g = tl.load(dy_ptr + n * stride_dyn + c * stride_dyc + oh * stride_dyh + ow * stride_dyw, mask=mask, other=0.0)
    g = g.to(COMPUTE_DTYPE)
    if ACTIVATION != "none":
        v = tl.load(v_ptr + n * stride_vn + c * stride_vc + oh * stride_vh + ow * stride_vw, mask=mask, other=0.0)
        g = activation_grad(g, v.to(COMPUTE_DTYPE), ACTIVATION, NEGATIVE_SLOPE)
    dz = n * stride_dzn + co * stride_dzc + h * stride_dzh + w * stride_dzw
    tl.store(dz_ptr + dz, g.to(dz_ptr.dtype.element_ty), mask=mask)
