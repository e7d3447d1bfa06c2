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


@triton.jit
def _store_shuffled_columns(values, y_ptr, y_rows, row_mask, co, col_mask, stride_yc, stride_yh, stride_yw,
                            SHUFFLE: tl.constexpr):  # fmt: skip
    """Store ``values`` (``[rows, columns]``), column ``co`` to sub-pixel ``(i, j)`` (the base-``SHUFFLE`` digits of
    ``co % SHUFFLE^2``) of channel ``co // SHUFFLE^2`` (``co >= 0``: ``//`` and ``%`` are exact)."""
    sub = co % (SHUFFLE * SHUFFLE)
    y_cols = (co // (SHUFFLE * SHUFFLE)) * stride_yc + (sub // SHUFFLE) * stride_yh + (sub % SHUFFLE) * stride_yw
    tl.store(y_ptr + (y_rows[:, None] + y_cols[None, :]), values.to(y_ptr.dtype.element_ty),
             mask=row_mask[:, None] & col_mask[None, :])  # fmt: skip


@triton.jit
def _split_columns(t, ROWS: tl.constexpr, COLUMNS: tl.constexpr):
    """The even and the odd columns of the ``[ROWS, COLUMNS]`` tile ``t`` (COLUMNS even)."""
    return tl.split(tl.reshape(t, (ROWS, COLUMNS // 2, 2)))


@triton.jit
def _split_vector(v, COLUMNS: tl.constexpr):
    """The even and the odd elements of the ``[COLUMNS]`` vector ``v`` (COLUMNS even)."""
    return tl.split(tl.reshape(v, (COLUMNS // 2, 2)))


@triton.jit
def shuffled_store(
    values,
    y_ptr,
    y_rows,
    row_mask,
    co,
    col_mask,
    first_channel,
    channels,
    stride_yc,
    stride_yh,
    stride_yw,
    SHUFFLE: tl.constexpr,
    BLOCKS: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    """Store a ``[BLOCK_M, BLOCK_N]`` tile of conv outputs pixel-shuffled by ``SHUFFLE`` (cast to the output dtype):
    column ``co`` (conv channel ``c*r^2 + i*r + j``) of row offset ``y_rows`` goes to channel ``c``, ``i`` rows and
    ``j`` columns further (the rows' offsets already step by ``r``).

    Args:
        values: the tile after bias and activation (:func:`epilogue_values`).
        y_ptr: the shuffled output.
        y_rows: ``[BLOCK_M]`` element offsets of each row's first sub-pixel (``(h*r, w*r)``, channel 0).
        row_mask: ``[BLOCK_M]``, the rows that exist.
        co: ``[BLOCK_N]``, each column's conv output channel (>= 0); col_mask: the columns that exist.
        first_channel, channels: with BLOCKS, the tile's first output channel (``co[0] / r^2``) and how many of its
            ``BLOCK_N / r^2`` output channels exist.
        stride_yc, stride_yh, stride_yw: the output's element strides.
        SHUFFLE: the upscale factor ``r`` (> 1).
        BLOCKS: the tile's columns are whole runs of ``r^2`` sub-pixels (``r^2`` a power of two dividing BLOCK_N and
            the columns of a group): the tile, rearranged to ``[rows, sub-pixel, channel]``, is stored as ``r^2``
            runs of consecutive channels of one output pixel each (contiguous in channels_last, as the transposed
            convolution's store is). Else column by column, in four slices of every fourth column, so that fewer
            64-bit addresses are live at once (a whole tile's would take twice its values' registers: sm_80's
            128x64 tile spilled).
    """
    SUB: tl.constexpr = SHUFFLE * SHUFFLE
    if BLOCKS:
        values = tl.permute(tl.reshape(values, (BLOCK_M, BLOCK_N // SUB, SUB)), (0, 2, 1))
        sub = tl.arange(0, SUB)
        chan = tl.arange(0, BLOCK_N // SUB)
        y_offsets = (y_rows[:, None, None] + ((sub // SHUFFLE) * stride_yh + (sub % SHUFFLE) * stride_yw)[None, :, None]
                     + ((first_channel + chan) * stride_yc)[None, None, :])  # fmt: skip
        tl.store(y_ptr + y_offsets, values.to(y_ptr.dtype.element_ty),
                 mask=row_mask[:, None, None] & (chan < channels)[None, None, :])  # fmt: skip
    else:
        HALF: tl.constexpr = BLOCK_N // 2
        even, odd = _split_columns(values, BLOCK_M, BLOCK_N)
        co_even, co_odd = _split_vector(co, BLOCK_N)
        m_even, m_odd = _split_vector(col_mask, BLOCK_N)
        v0, v2 = _split_columns(even, BLOCK_M, HALF)
        c0, c2 = _split_vector(co_even, HALF)
        m0, m2 = _split_vector(m_even, HALF)
        _store_shuffled_columns(v0, y_ptr, y_rows, row_mask, c0, m0, stride_yc, stride_yh, stride_yw, SHUFFLE)
        _store_shuffled_columns(v2, y_ptr, y_rows, row_mask, c2, m2, stride_yc, stride_yh, stride_yw, SHUFFLE)
        v1, v3 = _split_columns(odd, BLOCK_M, HALF)
        c1, c3 = _split_vector(co_odd, HALF)
        m1, m3 = _split_vector(m_odd, HALF)
        _store_shuffled_columns(v1, y_ptr, y_rows, row_mask, c1, m1, stride_yc, stride_yh, stride_yw, SHUFFLE)
        _store_shuffled_columns(v3, y_ptr, y_rows, row_mask, c3, m3, stride_yc, stride_yh, stride_yw, SHUFFLE)
