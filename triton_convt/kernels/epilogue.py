"""The forward kernel's epilogue: bias on the accumulator, then one cast and one store.

Runs on the accumulator in registers, so the output is written exactly once and never read back.
"""

import triton
import triton.language as tl


@triton.jit
def bias_and_store(
    acc,
    bias_ptr,
    y_ptr,
    y_offsets,
    channels,
    channel_mask,
    store_mask,
    HAS_BIAS: tl.constexpr,
):
    """Add the bias of each output channel to ``acc`` and store it, cast to the output dtype.

    Args:
        acc: ``[BLOCK_M, BLOCK_N]`` accumulator (fp32, or fp64 for fp64 tensors).
        bias_ptr: bias of all output channels (ignored unless HAS_BIAS).
        y_ptr: the output tensor.
        y_offsets: ``[BLOCK_M, BLOCK_N]`` element offsets of the tile in the output.
        channels: ``[BLOCK_N]`` global output-channel index of each column.
        channel_mask: ``[BLOCK_N]`` which columns are real channels.
        store_mask: ``[BLOCK_M, BLOCK_N]`` which elements of the tile exist.
        HAS_BIAS: whether to add the bias.
    """
    if HAS_BIAS:
        bias = tl.load(bias_ptr + channels, mask=channel_mask, other=0.0)
        acc += bias.to(acc.dtype)[None, :]
    tl.store(y_ptr + y_offsets, acc.to(y_ptr.dtype.element_ty), mask=store_mask)
