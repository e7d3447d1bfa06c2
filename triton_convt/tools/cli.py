"""What the command-line tools share: the ``--arch`` convention, and restarting under the Triton interpreter.

Every tool names a compile target the same way: ``sm80`` (A100), ``sm90`` (H100/H200), the names of the config
files in ``autotune_configs/`` (``sm_80`` and ``80`` are accepted as spellings of ``sm80``).
"""

from __future__ import annotations

import argparse
import os
import re
import sys

import torch

from ..launch import interpreter_active

#: Compile targets the tools know: ``--arch`` name -> CUDA compute capability as an integer.
ARCHS = {"sm80": 80, "sm90": 90}


def arch(text: str) -> int:
    """An ``--arch`` value (``sm90``; also ``sm_90`` or ``90``) as its compute capability (90); an argparse error
    naming the valid ones otherwise."""
    match = re.fullmatch(r"(?:sm_?)?(\d+)", text.strip().lower())
    name = f"sm{match.group(1)}" if match else text
    if name not in ARCHS:
        raise argparse.ArgumentTypeError(f"unknown arch {text!r}; choose from {', '.join(ARCHS)}")
    return ARCHS[name]


def arch_name(capability: int) -> str:
    """The ``--arch`` name of a compute capability (90 -> ``sm90``)."""
    return f"sm{capability}"


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
