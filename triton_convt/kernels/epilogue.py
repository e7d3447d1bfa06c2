"""The forward kernel's epilogue: bias, activation, one cast and one store.

Runs on the accumulator in registers (fp32, fp64 for fp64 tensors), so the output is written exactly once and never
read back: the unfused chain (conv, then bias, then activation) would read and write the layer's largest tensor
twice more.
"""

import triton
import triton.language as tl

# Python float constants are materialised in the dtype of the tensor they meet, so fp64 keeps full precision.
SQRT1_2 = tl.constexpr(0.7071067811865476)  # 1/sqrt(2), for the erf GELU
SQRT_2_OVER_PI = tl.constexpr(0.7978845608028654)  # sqrt(2/pi), for the tanh GELU


@triton.jit
def tanh_from_exp(x):
    """tanh from exp alone (libdevice's tanh has no interpreter implementation): exp(-2|x|) never overflows,
    and the absolute error stays at the dtype's epsilon."""
    e = tl.exp(-2.0 * tl.abs(x))
    t = (1.0 - e) / (1.0 + e)
    return tl.where(x < 0, -t, t)


@triton.jit
def activation(x, ACTIVATION: tl.constexpr, NEGATIVE_SLOPE: tl.constexpr):
    """Apply ``ACTIVATION`` (a name from :data:`triton_convt.activations.ACTIVATIONS`, or "none") elementwise.

    Args:
        x: the biased accumulator tile.
        ACTIVATION: the activation's name.
        NEGATIVE_SLOPE: slope of leaky_relu for x < 0 (a constexpr, so fp64 keeps it exactly).
    """
    if ACTIVATION == "relu":
        # x < 0 rather than max(x, 0) so that NaN stays NaN, as in torch.
        x = tl.where(x < 0, 0.0, x)
    elif ACTIVATION == "leaky_relu":
        x = tl.where(x < 0, x * NEGATIVE_SLOPE, x)
    elif ACTIVATION == "gelu":
        x = 0.5 * x * (1.0 + tl.erf(x * SQRT1_2))
    elif ACTIVATION == "gelu_tanh":
        x = 0.5 * x * (1.0 + tanh_from_exp((x + 0.044715 * x * x * x) * SQRT_2_OVER_PI))
    elif ACTIVATION == "silu":
        x = x / (1.0 + tl.exp(-x))
    elif ACTIVATION == "sigmoid":
        x = 1.0 / (1.0 + tl.exp(-x))
    elif ACTIVATION == "tanh":
        x = tanh_from_exp(x)
    else:
        tl.static_assert(ACTIVATION == "none", "unknown activation")
    return x


@triton.jit
def epilogue_values(
    acc,
    bias_ptr,
    stride_b,
    channels,
    channel_mask,
    HAS_BIAS: tl.constexpr,
    ACTIVATION: tl.constexpr,
    NEGATIVE_SLOPE: tl.constexpr,
):
    """Bias, then activation, on ``acc`` (in its dtype): the values :func:`epilogue_store` writes (arguments as
    there), for a caller that rearranges the tile before its store (a pixel shuffle, :mod:`.phase_gemm`)."""
    if HAS_BIAS:
        bias = tl.load(bias_ptr + channels * stride_b, mask=channel_mask, other=0.0).to(acc.dtype)
        if len(acc.shape) == 1:
            acc += bias
        else:
            acc += bias[None, :]
    return activation(acc, ACTIVATION, NEGATIVE_SLOPE)


@triton.jit
def epilogue_store(
    acc,
    bias_ptr,
    stride_b,
    y_ptr,
    y_offsets,
    channels,
    channel_mask,
    store_mask,
    HAS_BIAS: tl.constexpr,
    ACTIVATION: tl.constexpr,
    NEGATIVE_SLOPE: tl.constexpr,
):
    """Bias, then activation, on ``acc``; then one cast to the output dtype and one store.

    Args:
        acc: the accumulator (fp32, or fp64 for fp64 tensors): a ``[BLOCK_M, BLOCK_N]`` tile of pixels x channels,
            or a 1-D block of (pixel, channel) elements.
        bias_ptr: bias of all output channels (ignored unless HAS_BIAS).
        stride_b: the bias's element stride: a bias may be a view (every other element of a buffer, or one value
            expanded to every channel, stride 0), read in place.
        y_ptr: the output tensor.
        y_offsets: element offsets of ``acc`` in the output (its shape).
        channels: global output-channel index of each column (``[BLOCK_N]``) or, for a 1-D block, of each element.
        channel_mask: which of ``channels`` are real (its shape).
        store_mask: which elements of ``acc`` exist (its shape).
        HAS_BIAS: whether to add the bias.
        ACTIVATION, NEGATIVE_SLOPE: see :func:`activation`.
    """
    acc = epilogue_values(acc, bias_ptr, stride_b, channels, channel_mask, HAS_BIAS, ACTIVATION, NEGATIVE_SLOPE)
    tl.store(y_ptr + y_offsets, acc.to(y_ptr.dtype.element_ty), mask=store_mask)
