"""Argument normalisation and validation shared by the functional API's ops, before any launch.

Every call torch rejects is rejected with torch's exception type (TypeError for arguments of the wrong Python
type, RuntimeError for the rest, NotImplementedError (a RuntimeError) for a dtype the kernels do not implement), and
a message that names the op, the argument and the values. ``op`` is the function's name as torch's messages give it
(``"conv_transpose1d"``, ``"conv_transpose2d"`` or ``"conv_transpose3d"``).
"""

from __future__ import annotations

import operator

import torch

#: dtypes the Triton kernels implement. torch's CPU kernel also takes integer and complex tensors; cuDNN does not,
#: and neither do we.
SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def index(value, name: str, op: str) -> int:
    """An integer argument as torch's argument parser accepts it: int-like, but not bool, float or str."""
    if isinstance(value, bool) or isinstance(value, (float, str)):
        raise TypeError(f"{op}(): argument '{name}' must be int, not {type(value).__name__}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{op}(): argument '{name}' must be int, not {type(value).__name__}") from None


def as_tuple(value, name: str, op: str, ndim: int) -> tuple[int, ...]:
    """An int, or a sequence of 1 or ``ndim`` ints, as one int per spatial axis, the way torch's
    ``IntArrayRef[ndim]`` parses it (``ndim`` is 1, 2 or 3: ``conv_transpose1d``, ``2d`` or ``3d``)."""
    if isinstance(value, (list, tuple, torch.Size)):
        items = [index(v, name, op) for v in value]
        if len(items) == 1:
            return (items[0],) * ndim
        if len(items) != ndim:
            raise RuntimeError(
                f"expected {name} to be a single integer value or a list of {ndim} values to match the convolution "
                f"dimensions, but got {name}={items}"
            )
        return tuple(items)
    # torch's parser takes an integer tensor of one element (any rank) as that integer, and no other tensor.
    if isinstance(value, torch.Tensor) and (value.numel() != 1 or value.is_floating_point() or value.is_complex()):
        raise TypeError(f"{op}(): argument '{name}' must be tuple of ints, not Tensor")
    try:
        v = index(value.reshape(()) if isinstance(value, torch.Tensor) else value, name, op)
    except TypeError:
        raise TypeError(f"{op}(): argument '{name}' must be tuple of ints, not {type(value).__name__}") from None
    return (v,) * ndim


def check_dtypes_devices(input, weight, bias, op: str) -> None:
    """``input``, ``weight`` and ``bias`` (optional) agree on dtype and device, and the dtype has a kernel."""
    tensors = {"input": input, "weight": weight}
    if bias is not None:
        tensors["bias"] = bias
    # A mismatch is reported first, as torch does (RuntimeError): an int64 input with a float32 weight is a
    # mismatch in torch too; only operands that agree on a dtype without a kernel are NotImplementedError.
    for name, t in tensors.items():
        if t.dtype != input.dtype:
            raise RuntimeError(f"Input type ({input.dtype}) and {name} type ({t.dtype}) should be the same")
    if input.dtype not in SUPPORTED_DTYPES:
        raise NotImplementedError(
            f"triton_convt {op} is not implemented for tensors of dtype {input.dtype}; supported: "
            + ", ".join(str(d) for d in SUPPORTED_DTYPES)
        )
    for name, t in tensors.items():
        if t.device != input.device:
            raise RuntimeError(
                f"Expected all tensors to be on the same device, but got {name} on {t.device} and input on "
                f"{input.device}"
            )


def shares_memory(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether some element of ``a`` and some element of ``b`` are the same memory (exact, not a range test, so
    two channel slices of one concat buffer do not count as overlapping)."""
    if a.numel() == 0 or b.numel() == 0 or a.device != b.device:
        return False
    if a.device.type == "meta":
        # Meta tensors have no memory (every storage reports data pointer 0, which would read as one storage
        # below): nothing is shared, and torch's own out= takes them alike.
        return False
    if a.untyped_storage().data_ptr() != b.untyped_storage().data_ptr():
        return False
    size = a.element_size()
    spans = []
    for t in (a, b):
        first = t.storage_offset() * t.element_size()
        last = first + (sum((n - 1) * s for n, s in zip(t.shape, t.stride())) + 1) * t.element_size()
        spans.append((first, last))
    (a0, a1), (b0, b1) = spans
    if a1 <= b0 or b1 <= a0:
        return False
    if a.element_size() != b.element_size() or any(s % size for s in (a0, b0)):
        return True  # different element grids overlapping in range: assume the worst
    # Mark a's elements on a scratch grid over the common range, then look under b's. Only reached when the two
    # ranges intersect, which the usual calls (separate tensors, disjoint slices) never do.
    lo, hi = min(a0, b0) // size, max(a1, b1) // size
    # The scratch grid lives on the host whatever the tensors' device: only their strides matter, and a device
    # grid would have to be read back (a synchronisation) to answer.
    marks = torch.zeros(hi - lo, dtype=torch.bool)
    marks.as_strided(a.shape, a.stride(), a0 // size - lo).fill_(True)
    return bool(marks.as_strided(b.shape, b.stride(), b0 // size - lo).any())


def check_out(out, input, weight, bias, expected_shape, op: str) -> None:
    """``out=`` must be a tensor of the output's shape, dtype and device that shares no memory with an operand
    and has no two elements in one place. Like torch, ``out=`` does not take part in autograd."""
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"{op}(): argument 'out' must be Tensor, not {type(out).__name__}")
    if tuple(out.shape) != tuple(expected_shape):
        raise RuntimeError(f"out has shape {list(out.shape)}, but the output has shape {list(expected_shape)}")
    if out.dtype != input.dtype:
        raise RuntimeError(f"out has dtype {out.dtype}, but the output has dtype {input.dtype}")
    if out.device != input.device:
        raise RuntimeError(f"out is on {out.device}, but the output is on {input.device}")
    if torch._debug_has_internal_overlap(out) == 1:
        raise RuntimeError(
            "unsupported operation: more than one element of the written-to tensor (out) refers to a single memory "
            "location. Please clone() the tensor before performing the operation."
        )
    for name, t in (("input", input), ("weight", weight), ("bias", bias)):
        if t is not None and shares_memory(out, t):
            raise RuntimeError(
                f"unsupported operation: some elements of the {name} tensor and the written-to tensor (out) refer "
                f"to a single memory location"
            )
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (input, weight, bias, out)):
        raise RuntimeError(
            f"{op}(): functions with out=... arguments don't support automatic differentiation, but one "
            "of the arguments requires grad."
        )
