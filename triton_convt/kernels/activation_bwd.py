"""Backward of the fused activation: ``dz = dy * act'(.)``, elementwise.

relu, leaky_relu (positive slope), sigmoid and tanh take their derivative from the saved *output* ``y``, which
autograd keeps anyway; gelu, gelu_tanh and silu (and leaky_relu with a slope <= 0, whose output does not tell the
sign of its input) need the pre-activation ``z``, which the backward recomputes with one forward launch rather than
storing it: storing ``z`` would double the memory the layer holds for backward, and the layer's output is usually
its largest tensor. The caller passes ``dy`` and ``y`` (or ``z``) with identical strides and non-overlapping, dense
memory, so the kernel runs over flat storage.
"""

import triton
import triton.language as tl

from .epilogue import SQRT1_2, SQRT_2_OVER_PI, tanh_from_exp

_INV_SQRT_2PI = tl.constexpr(0.3989422804014327)  # 1/sqrt(2*pi), the normal density's constant


@triton.jit
def activation_grad(dy, v, ACTIVATION: tl.constexpr, NEGATIVE_SLOPE: tl.constexpr):
    """``dy * act'(z)`` where ``v`` is the output ``y`` or the pre-activation ``z`` (see the module docstring)."""
    if ACTIVATION == "relu":  # from y
        g = tl.where(v > 0, dy, 0.0)
    elif ACTIVATION == "leaky_relu":  # from y if NEGATIVE_SLOPE > 0, else from z: either way v > 0 <=> z > 0
        g = tl.where(v > 0, dy, dy * NEGATIVE_SLOPE)
    elif ACTIVATION == "sigmoid":  # from y
        g = dy * v * (1.0 - v)
    elif ACTIVATION == "tanh":  # from y
        g = dy * (1.0 - v * v)
    elif ACTIVATION == "gelu":  # from z: Phi(z) + z * phi(z)
        cdf = 0.5 * (1.0 + tl.erf(v * SQRT1_2))
        pdf = tl.exp(-0.5 * v * v) * _INV_SQRT_2PI
        g = dy * (cdf + v * pdf)
    elif ACTIVATION == "gelu_tanh":  # from z, torch's formula
        th = tanh_from_exp((v + 0.044715 * v * v * v) * SQRT_2_OVER_PI)
        inner_grad = (1.0 + 3.0 * 0.044715 * v * v) * SQRT_2_OVER_PI
        g = dy * (0.5 * (1.0 + th) + 0.5 * v * (1.0 - th * th) * inner_grad)
    else:  # silu, from z: s * (1 + z * (1 - s))
        tl.static_assert(ACTIVATION == "silu", "activation without a derivative")
        s = 1.0 / (1.0 + tl.exp(-v))
        g = dy * s * (1.0 + v * (1.0 - s))
    return g


@triton.jit
def activation_bwd_kernel(
    dy_ptr,
    v_ptr,
    dz_ptr,
    NUMEL,
    ACTIVATION: tl.constexpr,
    NEGATIVE_SLOPE: tl.constexpr,
    COMPUTE_DTYPE: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """``dz = dy * act'(v)`` over ``NUMEL`` elements of flat storage.

    Args:
        dy_ptr: gradient of the activation's output.
        v_ptr: the saved output ``y`` or the recomputed pre-activation ``z`` (see the module docstring).
        dz_ptr: gradient of the pre-activation, written here (same dtype as ``dy``).
        NUMEL: number of elements.
        ACTIVATION: the activation's name (never "none": the caller skips this kernel then).
        NEGATIVE_SLOPE: leaky_relu's slope.
        COMPUTE_DTYPE: fp32, or fp64 for fp64 tensors.
        BLOCK: elements per program.
    """
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < NUMEL
    dy = tl.load(dy_ptr + offs, mask=mask, other=0.0).to(COMPUTE_DTYPE)
    v = tl.load(v_ptr + offs, mask=mask, other=0.0).to(COMPUTE_DTYPE)
    g = activation_grad(dy, v, ACTIVATION, NEGATIVE_SLOPE)
    tl.store(dz_ptr + offs, g.to(dz_ptr.dtype.element_ty), mask=mask)
