"""Weight handling before a launch: which kernel variant a weight needs.

Today that is one question: whether each tap's product must be masked to its in-range rows. A gather kernel
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
