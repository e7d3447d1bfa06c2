"""What the command-line tools share: the ``--arch`` convention, and restarting under the Triton interpreter.

Every tool names a compile target the same way: ``sm80`` (A100), ``sm90`` (H100/H200), ``gfx942`` (AMD MI300), the
names of the config files in ``autotune_configs/`` (``sm_80`` and ``80`` are accepted as spellings of ``sm80``).
Internally a target is what triton's ``GPUTarget`` calls its arch: the CUDA compute capability as an integer (80,
90) or the AMD processor name as a string ("gfx942"), so that profile records and file names of the CUDA targets
read as they always have, and each record names its target.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

import torch

from ..launch import interpreter_active

#: Compile targets the tools know: ``--arch`` name -> triton's arch of the target: the CUDA compute capability as
#: an integer, the AMD processor name as a string (ROCm torch calls the device "cuda"; triton's backend is "hip").
ARCHS: dict[str, int | str] = {"sm80": 80, "sm90": 90, "gfx942": "gfx942"}


def arch(text: str) -> int | str:
    """An ``--arch`` value (``sm90``, also ``sm_90`` or ``90``; ``gfx942``) as triton's arch (90, ``"gfx942"``); an
    argparse error naming the valid ones otherwise."""
    text_ = text.strip().lower()
    match = re.fullmatch(r"(?:sm_?)?(\d+)", text_)
    name = f"sm{match.group(1)}" if match else text_
    if name not in ARCHS:
        raise argparse.ArgumentTypeError(f"unknown arch {text!r}; choose from {', '.join(ARCHS)}")
    return ARCHS[name]


def arch_name(target: int | str) -> str:
    """The ``--arch`` name of a target (90 -> ``sm90``, ``"gfx942"`` -> ``gfx942``), which is also the name of its
    config file in ``autotune_configs/``."""
    return f"sm{target}" if is_cuda(target) else str(target)


def is_cuda(target: int | str) -> bool:
    """Whether a target is an NVIDIA GPU (an integer compute capability) rather than an AMD one (a gfx name)."""
    return isinstance(target, int)


def refuse_interpreter(tool: str) -> int | None:
    """2 (after saying why) when ``TRITON_INTERPRET=1``, under which kernels cannot be compiled; else None. Sets
    ``TRITON_DEFAULT_FP_FUSION`` explicitly (triton warns when it is unset)."""
    if os.environ.get("TRITON_INTERPRET") == "1":
        print(f"{tool}: unset TRITON_INTERPRET; interpreted kernels cannot be compiled", file=sys.stderr)
        return 2
    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    return None


def ensure_runnable(module: str) -> None:
    """Without a GPU and without the interpreter, restart ``python -m module`` (same arguments) with
    ``TRITON_INTERPRET=1``; otherwise return. The variable must be set before :mod:`triton_convt` defines its
    kernels, so setting it in a running process is too late. ``TRITON_DEFAULT_FP_FUSION`` is set explicitly
    (triton warns when it is not)."""
    if torch.cuda.is_available() or interpreter_active():
        return
    env = dict(os.environ, TRITON_INTERPRET="1")
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, "-m", module, *sys.argv[1:]], env)
