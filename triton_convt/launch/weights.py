"""Weight handling before a launch: the layout the kernels read a weight in place, and which kernel variant a weight
needs.

**The kernel's layout** of a weight is dimension 1 innermost, then the kernel taps, then dimension 0 outermost: for a
transposed convolution's ``[C_in, C_out/g, *k]`` that is output channels innermost, dense in the order
``[C_in, *k, C_out/g]`` (channels_last for 2-D, channels_last_3d for 3-D, the same strides for 1-D, which has no
memory format of its own); for a convolution's ``[C_out, C_in/g, *k]`` it is input channels innermost (Conv2d's
channels_last). The GEMM kernel reads each tap's ``[C_in, C_out/g]`` box of such a weight with 16-byte loads, in
place; any other layout costs a copy per call (:func:`.phase_gemm.gemm_weight`). The modules keep their weight in it
(:class:`triton_convt.owned_layout.OwnsKernelLayout`): :func:`kernel_layout_strides`, :func:`has_kernel_layout` and
:func:`to_kernel_layout` are the one place that knows it.

The kernel variant is one question: whether each tap's product must be masked to its in-range rows. A gather kernel
multiplies an out-of-range tap's x = 0 by the weight; with an inf or NaN weight that makes NaN where torch's CPU
result has none (cuDNN does the same, pytorch#165744). Masking costs a select per tap in the hot loop, so only
non-finite weights get that variant, and knowing that means reading the weights' values on the host.

That read is made where it costs nothing: on CPU tensors (the Triton interpreter), every call, with no cache (a
cache keyed on ``weight._version`` misses writes through ``.data`` and fails on inference tensors, which have no
version counter). On CUDA tensors it is never made: reading a value back would synchronise the host with the GPU
at every call (a stall per layer per optimizer step) and break CUDA-graph capture, so CUDA keeps cuDNN's
behaviour for non-finite weights at the input's border (NaN there), and everything else as torch.
"""

from __future__ import annotations

import torch


def mask_products(weight: torch.Tensor) -> bool:
    """Whether the launch for ``weight`` takes the kernel variant that masks each tap's product to its in-range
    rows: on CPU tensors, when some weight is not finite (read on every call); on any other device, never (no
    host synchronisation; see the module docstring)."""
    if weight.device.type != "cpu":
        return False
    return not bool(torch.isfinite(weight).all())


def kernel_layout_strides(shape: tuple[int, ...], innermost: int = 1) -> tuple[int, ...]:
    """The dense strides of the kernel's layout for a weight of ``shape`` (2 dimensions or more): dimension
    ``innermost`` (1 or 0) innermost, then the last dimension to the third, then the other of dimensions 0 and 1 (see
    the module docstring). ``innermost=0`` is the layout of a convolution weight whose *output* channels the GEMM
    reads as columns (conv2d + pixel_shuffle: memory order ``[C_in/g, kH, kW, C_out]``)."""
    order = (1 - innermost, *range(2, len(shape)), innermost)  # outermost to innermost
    strides = [0] * len(shape)
    step = 1
    for d in reversed(order):
        strides[d] = step
        step *= max(shape[d], 1)
    return tuple(strides)


def has_kernel_layout(t: torch.Tensor, innermost: int = 1) -> bool:
    """Whether ``t`` is dense in the kernel's layout (:func:`kernel_layout_strides`). Dimensions of one element are left
    out of the comparison (their stride means nothing, as in ``is_contiguous(memory_format=...)``), so a weight with
    one output channel per group in torch's default layout already has it."""
    expected = kernel_layout_strides(tuple(t.shape), innermost)
    return all(size == 1 or st == ex for size, st, ex in zip(t.shape, t.stride(), expected))


def to_kernel_layout(t: torch.Tensor, innermost: int = 1) -> torch.Tensor:
    """``t`` itself when it has the kernel's layout, else a copy of it in that layout (same shape, dtype, device and
    values; strides only differ). Not a launch: torch's copy, made once by whoever keeps the result."""
    if has_kernel_layout(t, innermost):
        return t
    return torch.empty_strided(t.shape, kernel_layout_strides(tuple(t.shape), innermost), dtype=t.dtype,
                               device=t.device).copy_(t)  # fmt: skip
