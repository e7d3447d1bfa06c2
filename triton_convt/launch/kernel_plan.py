"""What every launch shares: the :class:`KernelPlan` a launcher builds, the launch counter, and the constexprs and
stride arguments that depend only on the operands (dtype, device, layout, index width).

A plan is data (kernel, grid, arguments by name, warps, stages) before it is a launch, so that the static profile
(:mod:`triton_convt.tools.aot`) compiles exactly the arguments a launch passes, and the tuner benchmarks them.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch
import triton.language as tl

from .. import compat
from ..kernels.phase_gemm import phase_gemm_kernel

_launches = 0


def launch_count() -> int:
    """How many kernels this process has launched through the Triton path (tests use it to tell it from the
    CPU fallback, and to count launches per call)."""
    return _launches


def interpreter_active() -> bool:
    """True when the kernels were built by the Triton interpreter (``TRITON_INTERPRET=1`` set before import)."""
    return isinstance(phase_gemm_kernel, compat.InterpretedFunction)


def device_guard(device: torch.device):
    """A context in which ``device`` is the current CUDA device (a no-op context for other devices).

    Triton launches on the *current* CUDA device and that device's current stream, not on the device of the
    tensors it is given: with tensors on ``cuda:1`` while ``cuda:0`` is current (any multi-GPU job that does not
    call ``torch.cuda.set_device``), an unguarded kernel would run on ``cuda:0`` and read ``cuda:1``'s memory
    through ``cuda:0``'s address space. Under this guard the launch runs on the tensors' device and on the stream
    torch has current there, so it is ordered with the caller's other work on that stream.
    """
    if device.type == "cuda":
        return torch.cuda.device(device)
    return contextlib.nullcontext()


@dataclass
class KernelPlan:
    """Everything one launch needs; ``args`` is ordered as the kernel's parameters."""

    kernel: Any
    grid: tuple[int, ...]
    args: dict[str, Any]
    num_warps: int
    num_stages: int

    @property
    def device(self) -> torch.device:
        """The device of the launch's tensors (the functional API has checked that they share one)."""
        return next(v.device for v in self.args.values() if isinstance(v, torch.Tensor))

    def launch(self) -> None:
        global _launches
        if interpreter_active() and compat.interpreter_error():
            raise RuntimeError(compat.interpreter_error())
        with device_guard(self.device):
            self.kernel[self.grid](**self.args, num_warps=self.num_warps, num_stages=self.num_stages)
        _launches += 1


def _spans_int32(t: torch.Tensor) -> bool:
    """Whether some element offset of ``t`` (including its storage offset) does not fit in int32."""
    last = t.storage_offset() + sum((size - 1) * stride for size, stride in zip(t.shape, t.stride()))
    return last >= 2**31


def numeric_constexprs(tensors: tuple[torch.Tensor, ...], index64: bool | None = None) -> dict[str, Any]:
    """The dtype-dependent constexprs every GEMM kernel of the package takes, for operands ``tensors`` (the first
    sets dtype and device): accumulator dtype, ``tl.dot`` precision, the interpreter's bf16 workaround, and the
    index dtype (int64 when some tensor spans 2^31 elements; ``index64`` forces it either way)."""
    dtype, device = tensors[0].dtype, tensors[0].device
    if index64 is None:
        index64 = any(_spans_int32(t) for t in tensors)
    # torch's CPU convolution never uses TF32; on a GPU, follow the switch cuDNN follows.
    tf32 = dtype == torch.float32 and device.type == "cuda" and torch.backends.cudnn.allow_tf32
    return dict(
        ACC_DTYPE=tl.float64 if dtype == torch.float64 else tl.float32,
        DOT_PRECISION="tf32" if tf32 else "ieee",
        DOT_IN_FP32=compat.dot_in_fp32(dtype, interpreter_active()),
        INDEX_DTYPE=tl.int64 if index64 else tl.int32,
    )


def spatial_3d(t: torch.Tensor) -> torch.Tensor:
    """A view of ``t`` (``(N, C, *spatial)`` with 1 to 3 spatial axes, or a weight ``(C_in, C_out/g, *kernel)``)
    with unit spatial axes inserted in front, up to three (D, H, W): the kernels are written for three axes, and
    a unit axis costs nothing (its index is 0 and its loops have one trip). No copy; strides are kept."""
    while t.dim() < 5:
        t = t.unsqueeze(2)
    return t


def strides(name: str, t: torch.Tensor, weight: bool = False, *, dims: str | None = None) -> dict[str, int]:
    """A tensor's element strides as the kernels name them: ``stride_<name><dim>`` (``stride_xn``, ``stride_xc``,
    then the spatial axes, the last ones of ``d``, ``h``, ``w``); a transposed convolution's weight (``weight``)
    has ``i`` (input channel) and ``o`` (output channel per group) first. ``dims`` names every dimension instead
    (``"oihw"`` for a Conv2d weight)."""
    if dims is None:
        dims = ("io" if weight else "nc") + "dhw"[5 - t.dim() :]
    if len(dims) != t.dim():
        raise ValueError(f"{len(dims)} stride names for a {t.dim()}-D tensor")
    return {f"stride_{name}{d}": st for d, st in zip(dims, t.stride())}
