"""Compile the kernels for real GPU targets without a GPU, and read what the compiler produced.

A :class:`~triton_convt.launch.KernelPlan` built from CPU tensors holds exactly the arguments a launch would pass.
:func:`compile_plan` hands them to ``triton.compile`` with the specialisation the JIT would apply on a GPU
(pointers and integers divisible by 16 marked so, integers equal to 1 turned into constants, which is how the
memory layout reaches the compiler), for ``GPUTarget("cuda", arch, 32)``. :func:`measure` compiles one plan and
reads registers, stack and local memory from the cubin (``cuobjdump``, shipped in the triton wheel), and shared
memory, tensor-core instructions and vector or asynchronous global loads from the metadata and PTX.

The plans come from :mod:`.samples` (a sample problem per kernel key); :mod:`.profile` is the command that
compiles them. Compiling needs a process without ``TRITON_INTERPRET`` (the interpreter's kernels cannot be
compiled).
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile

import triton
from triton._C.libtriton import native_specialize_impl
from triton.backends.compiler import GPUTarget
from triton.backends.nvidia.compiler import CUDABackend
from triton.compiler import ASTSource

from ..launch import KernelPlan

#: Tensor-core instructions in the PTX of each target: mma.sync on sm_80, wgmma (or mma.sync for shapes and
#: dtypes wgmma does not take, such as fp64) on sm_90.
TENSOR_CORE_PTX = {80: ("mma.sync",), 90: ("wgmma.mma_async", "mma.sync")}

#: Shared memory one block may use (the opt-in maximum) on each target: A100 163 KB, H100 227 KB.
SHARED_LIMIT = {80: 163 * 1024, 90: 227 * 1024}

_BIN = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin")


def jit_specialization(plan: KernelPlan) -> tuple[dict, dict, dict]:
    """``(signature, constexprs, attrs)`` for ``ASTSource``, as the JIT derives them from the launch arguments."""
    signature, constexprs, attrs = {}, {}, {}
    for i, param in enumerate(plan.kernel.params):
        value = plan.args[param.name]
        if param.is_constexpr:
            signature[param.name] = "constexpr"
            constexprs[param.name] = value
            continue
        ty, key = native_specialize_impl(CUDABackend, value, False, True, True)
        signature[param.name] = ty
        if ty == "constexpr":  # an integer equal to 1, or None
            constexprs[param.name] = value
        elif key == "D":  # divisible by 16 (an integer, or a pointer aligned to 16 bytes)
            attrs[(i,)] = [["tt.divisibility", 16]]
    return signature, constexprs, attrs


def compile_plan(plan: KernelPlan, arch: int):
    """Compile ``plan`` for ``sm_<arch>``; returns triton's CompiledKernel (``.asm`` holds ptx and cubin)."""
    signature, constexprs, attrs = jit_specialization(plan)
    source = ASTSource(fn=plan.kernel, signature=signature, constexprs=constexprs, attrs=attrs)
    options = {"num_warps": plan.num_warps, "num_stages": plan.num_stages}
    return triton.compile(source, target=GPUTarget("cuda", arch, 32), options=options)


def tensor_core_instructions(compiled, arch: int) -> int:
    """How many tensor-core instructions the PTX of ``compiled`` holds."""
    ptx = compiled.asm["ptx"]
    return sum(ptx.count(op) for op in TENSOR_CORE_PTX[arch])


def vector_global_loads(ptx: str) -> int:
    """128-bit global loads (``ld.global[.qualifiers].v4.b32`` and the like) in ``ptx``."""
    return len(re.findall(r"\bld\.global(?:\.[a-z0-9_:]+)*\.v4\.(?:b|u|s|f)32\b", ptx))


def async_copies(ptx: str) -> int:
    """Asynchronous global-to-shared copies in ``ptx``: ``cp.async.{ca,cg}`` (sm_80+) and bulk/TMA copies."""
    return len(re.findall(r"\bcp\.async\.(?:ca|cg|bulk)\.shared", ptx))


def _cuobjdump(flag: str, cubin: bytes) -> str:
    """``cuobjdump <flag>`` on ``cubin`` (written to a temporary file, removed afterwards)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "kernel.cubin")
        with open(path, "wb") as f:
            f.write(cubin)
        done = subprocess.run([os.path.join(_BIN, "cuobjdump"), flag, path], capture_output=True, text=True, check=True)
    return done.stdout


def resource_usage(cubin: bytes) -> dict[str, int]:
    """Registers per thread, stack and local bytes, and static shared bytes of the (single) kernel in ``cubin``.

    Triton kernels call no functions and keep no per-thread arrays, so any stack or local memory is register
    spilling.
    """
    line = re.search(r"REG:(\d+) STACK:(\d+) SHARED:(\d+) LOCAL:(\d+)", _cuobjdump("--dump-resource-usage", cubin))
    registers, stack, shared, local = map(int, line.groups())
    return {"registers": registers, "stack_bytes": stack, "local_bytes": local, "static_shared_bytes": shared}


def local_memory_instructions(cubin: bytes) -> int:
    """SASS loads and stores of local memory (``STL``/``LDL``): the spill traffic itself."""
    return len(re.findall(r"\b(?:STL|LDL)(?:\.\w+)*\s", _cuobjdump("--dump-sass", cubin)))


def sass(cubin: bytes) -> str:
    """The SASS of ``cubin`` (``cuobjdump --dump-sass``)."""
    return _cuobjdump("--dump-sass", cubin)


def local_memory_in_loops(sass: str) -> int:
    """Loads and stores of local memory in ``sass`` (:func:`sass`) that lie inside a loop (between a backward
    branch and its target): spill traffic paid per iteration. A spill outside every loop is one save and one
    restore per thread."""
    code = [(int(a, 16), text) for a, text in re.findall(r"/\*([0-9a-f]{4,})\*/\s+([^;]*);", sass)]
    loops = []
    for addr, text in code:
        if re.search(r"\bBRA\b", text):
            target = re.search(r"\bBRA(?:\.\w+)*\s+0x([0-9a-f]+)", text)
            if target is None:  # a form this parser does not read must not pass as "no loop"
                raise ValueError(f"unreadable branch in SASS: {text!r}")
            if int(target.group(1), 16) <= addr:
                loops.append((int(target.group(1), 16), addr))
    local = [addr for addr, text in code if re.search(r"\b(?:STL|LDL)(?:\.\w+)*\s", text + " ")]
    return sum(any(start <= addr <= end for start, end in loops) for addr in local)


def measure(plan: KernelPlan, arch: int) -> tuple[dict, bytes]:
    """Compile ``plan`` for ``sm_<arch>``; returns what the profile records about the build, and its cubin."""
    compiled = compile_plan(plan, arch)
    ptx, cubin = compiled.asm["ptx"], compiled.asm["cubin"]
    usage = resource_usage(cubin)
    record = {
        **usage,
        "spill_bytes": usage["stack_bytes"] + usage["local_bytes"],
        "local_memory_instructions": local_memory_instructions(cubin),
        "shared_bytes": compiled.metadata.shared,
        "tensor_core_instructions": tensor_core_instructions(compiled, arch),
        "vector_global_loads": vector_global_loads(ptx),
        "async_copies": async_copies(ptx),
    }
    return record, cubin
