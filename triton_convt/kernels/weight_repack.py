"""Bring a weight into the layout the phase GEMM reads in place: output channels innermost.

torch's transposed-convolution weight ``[C_in, C_out/groups, *kernel]`` strides a tap's ``[C_in, C_out/groups]``
box by the kernel size along output channels, which no 16-byte load (cp.async, TMA) can read. The same weight in
channels_last memory format has output channels innermost; any other layout is copied into that one by this
kernel, once per call (no cache: a cached copy would go stale on writes through ``.data`` and on inference
tensors, which have no version counter).
"""

import triton
import triton.language as tl


@triton.jit
def weight_repack_kernel(
    w_ptr,
    out_ptr,
    NUMEL,
    C_OUT_G,
    KD,
    KH,
    KW,
    stride_wi,
    stride_wo,
    stride_wd,
    stride_wh,
    stride_ww,
    INDEX_DTYPE: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """Copy ``w`` (``[C_in, C_OUT_G, KD, KH, KW]``, any strides) into ``out``, dense in the order
    ``[C_in, KD, KH, KW, C_OUT_G]`` (output channels innermost).

    Args:
        w_ptr: the weight, any strides.
        out_ptr: the dense destination, ``NUMEL`` elements.
        NUMEL: the weight's element count.
        C_OUT_G: output channels per group.
        KD, KH, KW: kernel size (1 for the unit axes of a 1-D or 2-D weight).
        stride_w*: the weight's element strides (input channel, output channel, kD, kH, kW).
        INDEX_DTYPE: tl.int32, or tl.int64 when the weight spans 2^31 elements.
        BLOCK: elements per program.
    """
    offs = tl.program_id(0).to(INDEX_DTYPE) * BLOCK + tl.arange(0, BLOCK).to(INDEX_DTYPE)
    mask = offs < NUMEL
    co = offs % C_OUT_G
    rest = offs // C_OUT_G
    kw = rest % KW
    rest = rest // KW
    kh = rest % KH
    rest = rest // KH
    kd = rest % KD
    ci = rest // KD
    src = ci * stride_wi + co * stride_wo + kd * stride_wd + kh * stride_wh + kw * stride_ww
    tl.store(out_ptr + offs, tl.load(w_ptr + src, mask=mask), mask=mask)
