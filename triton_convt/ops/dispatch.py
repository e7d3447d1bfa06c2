"""Where an op's work runs: the Triton kernels, or torch's own implementation.

CUDA tensors (and ROCm's, which torch also calls "cuda") run the compiled kernels; CPU tensors run the same kernels
under the Triton interpreter when ``TRITON_INTERPRET=1`` was set before triton_convt was imported. Anything else
(CPU without the interpreter, other devices) computes torch's own result so that a model still runs, and the first
such call in a process says so with a :class:`TorchFallbackWarning`: a user who meant to run the kernels should not
learn it from a timing.
"""

from __future__ import annotations

import warnings

import torch

from ..launch import interpreter_active


class TorchFallbackWarning(UserWarning):
    """An op ran torch's implementation instead of the Triton kernels (no CUDA device, no interpreter)."""


_warned = False


def runs_triton(device: torch.device) -> bool:
    """Whether work on ``device`` runs the Triton kernels; warns once per process when it does not."""
    if device.type == "cuda" or (device.type == "cpu" and interpreter_active()):
        return True
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(
            f"triton_convt: tensors on {device.type!r} run torch's own implementation, not the Triton kernels "
            "(those run on CUDA tensors, or on CPU tensors under the Triton interpreter when TRITON_INTERPRET=1 is "
            "set before triton_convt is imported). Results are torch's; this is said once per process.",
            TorchFallbackWarning,
            stacklevel=3,
        )
    return False
