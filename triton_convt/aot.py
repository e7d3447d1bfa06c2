"""Compile the kernels for real GPU targets without a GPU, and measure what the compiler produced.

A :class:`~triton_convt.launcher.KernelPlan` built from CPU tensors holds exactly the arguments a launch would pass.
:func:`compile_plan` hands them to ``triton.compile`` with the specialisation the JIT would apply on a GPU
(pointers and integers divisible by 16 marked so, integers equal to 1 turned into constants, which is how the
memory layout reaches the compiler), for ``GPUTarget("cuda", arch, 32)``. :func:`measure` compiles one plan and
reads registers, stack and local memory from the cubin (``cuobjdump``, shipped in the triton wheel), and shared
memory, tensor-core instructions and vector or asynchronous global loads from the metadata and PTX.

Every kernel key of ``autotune_configs/`` has an entry in :data:`SAMPLE_PLANS` that builds its launch on a sample
problem for any config; :mod:`triton_convt.profile` compiles every shipped config through it.

Run as ``python -m triton_convt.aot --arch 80 --arch 90``: compiles the forward kernel for each dtype and layout
with the config the launcher picks, and prints one JSON object per build. It must run without ``TRITON_INTERPRET``
(the interpreter's kernels cannot be compiled); the tests call it in a subprocess for that reason.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from typing import Callable

import torch
import triton
from triton._C.libtriton import native_specialize_impl
from triton.backends.compiler import GPUTarget
from triton.backends.nvidia.compiler import CUDABackend
from triton.compiler import ASTSource

from . import backward
from .launcher import KernelPlan, allocate_output, depthwise_plan, forward_plan
from .validation import check_call

#: Tensor-core instructions in the PTX of each target: mma.sync on sm_80, wgmma (or mma.sync for shapes and
#: dtypes wgmma does not take, such as fp64) on sm_90.
TENSOR_CORE_PTX = {80: ("mma.sync",), 90: ("wgmma.mma_async", "mma.sync")}

#: Shared memory one block may use (the opt-in maximum) on each target: A100 163 KB, H100 227 KB.
SHARED_LIMIT = {80: 163 * 1024, 90: 227 * 1024}

#: The dtypes and ``tl.dot`` input precisions each dtype class of the config files is compiled with. fp32 runs
#: TF32 on a GPU by default (``torch.backends.cudnn.allow_tf32``) and the exact "ieee" path when it is switched off,
#: so a fp32 config must be sound for both.
DTYPE_VARIANTS = {
    "16bit": ((torch.float16, "ieee"), (torch.bfloat16, "ieee")),
    "fp32": ((torch.float32, "tf32"), (torch.float32, "ieee")),
    "fp64": ((torch.float64, "ieee"),),
}

LAYOUTS = ("channels_last", "nchw")

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


def measure(plan: KernelPlan, arch: int) -> tuple[dict, bytes]:
    """Compile ``plan`` for ``sm_<arch>``; returns what the profile records about the build, and its cubin."""
    start = time.perf_counter()
    compiled = compile_plan(plan, arch)
    seconds = time.perf_counter() - start
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
        "compile_seconds": round(seconds, 2),
    }
    return record, cubin


def _sample_problem(dtype: torch.dtype, layout: str):
    """A typical decoder layer (k4 s2 p1, 128 -> 128 channels) shrunk to CPU size: ``(x, w, b, params, y)``.

    Every extent is at least 128 and a multiple of 16, so that no config's tile is cut down and the JIT's
    divisibility hints are those of a real layer.
    """
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    x = torch.empty(2, 128, 16, 16, dtype=dtype).to(memory_format=fmt)
    w = torch.empty(128, 128, 4, 4, dtype=dtype)
    b = torch.empty(128, dtype=dtype)
    params = check_call(x, w, b, 2, 1, 0, 1, 1)
    return x, w, b, params, allocate_output(x, w, params)


def _with_precision(plan: KernelPlan, precision: str) -> KernelPlan:
    if "DOT_PRECISION" not in plan.args:  # no tl.dot in this kernel
        return plan
    return dataclasses.replace(plan, args={**plan.args, "DOT_PRECISION": precision})


def forward_sample_plan(
    dtype: torch.dtype, layout: str, config: dict | None = None, precision: str = "ieee", index64: bool | None = None
) -> KernelPlan:
    """The forward launch on the sample problem. ``config`` None takes the launcher's own choice."""
    x, w, b, params, y = _sample_problem(dtype, layout)
    return _with_precision(forward_plan(x, w, b, y, params, config=config, index64=index64), precision)


def depthwise_sample_plan(dtype: torch.dtype, layout: str, config: dict | None = None, precision: str = "ieee"):
    """The depthwise launch on FCN's upsampling shape (k4 s2 p1, groups = channels = 128) at CPU size."""
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    x = torch.empty(2, 128, 16, 16, dtype=dtype).to(memory_format=fmt)
    w = torch.empty(128, 1, 4, 4, dtype=dtype)
    params = check_call(x, w, None, 2, 1, 0, 128, 1)
    return depthwise_plan(x, w, None, allocate_output(x, w, params), params, config=config)


def bwd_input_sample_plan(dtype: torch.dtype, layout: str, config: dict | None = None, precision: str = "ieee"):
    """The input-gradient launch on the sample problem (``dz`` in the output's layout)."""
    x, w, _, params, dz = _sample_problem(dtype, layout)
    return _with_precision(backward.input_grad_plan(dz, w, torch.empty_like(x), params, config=config), precision)


def bwd_weight_sample_plan(dtype: torch.dtype, layout: str, config: dict | None = None, precision: str = "ieee"):
    """The weight-gradient launch on the sample problem."""
    x, w, _, params, dz = _sample_problem(dtype, layout)
    return _with_precision(backward.weight_grad_plan(x, dz, w, params, config=config)[0], precision)


def channel_sum_sample_plan(dtype: torch.dtype, layout: str, config: dict | None = None, precision: str = "ieee"):
    """The bias-gradient launch on the sample problem's output gradient."""
    return backward.bias_grad_plan(_sample_problem(dtype, layout)[4], config=config)[0]


def activation_bwd_sample_plan(dtype: torch.dtype, layout: str, config: dict | None = None, precision: str = "ieee"):
    """The activation-derivative launch (gelu, the longest formula) on the sample problem's output."""
    y = _sample_problem(dtype, layout)[4]
    return backward.activation_grad_plan(y, y, torch.empty_like(y), "gelu", 0.01, config=config)


#: Kernel key of ``autotune_configs/`` -> ``(dtype, layout, config, precision) -> KernelPlan`` on a sample problem.
#: A kernel whose configs are shipped registers its builder here, so that the profile and the tests compile them.
SAMPLE_PLANS: dict[str, Callable[..., KernelPlan]] = {
    "conv_transpose2d_fwd": forward_sample_plan,
    "conv_transpose2d_fwd_depthwise": depthwise_sample_plan,
    "conv_transpose2d_bwd_input": bwd_input_sample_plan,
    "conv_transpose2d_bwd_weight": bwd_weight_sample_plan,
    "channel_sum": channel_sum_sample_plan,
    "activation_bwd": activation_bwd_sample_plan,
}


def forward_variants() -> list[tuple[dict, KernelPlan]]:
    """Plans of the forward kernel for each dtype, layout and fp32 precision, with the config the launcher picks
    for the sample problem, plus the int64 index path."""
    variants = []
    for variants_of_class in DTYPE_VARIANTS.values():
        for dtype, precision in variants_of_class:
            for layout in LAYOUTS:
                label = {"dtype": str(dtype).split(".")[1], "layout": layout, "precision": precision}
                variants.append((label, forward_sample_plan(dtype, layout, precision=precision)))
    plan = forward_sample_plan(torch.float16, "channels_last", index64=True)
    variants.append(({"dtype": "float16", "layout": "channels_last", "precision": "ieee", "index": "int64"}, plan))
    return variants


def plan_config(plan: KernelPlan) -> dict:
    """The config a plan was built with: its ``BLOCK_*`` constexprs, warps and stages."""
    blocks = {k: v for k, v in plan.args.items() if k.startswith("BLOCK_")}
    return blocks | {"num_warps": plan.num_warps, "num_stages": plan.num_stages}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", type=int, action="append", choices=sorted(TENSOR_CORE_PTX), required=True)
    parser.add_argument("--dtype", action="append", help="only these dtypes (float16, bfloat16, float32, float64)")
    parser.add_argument("--layout", action="append", choices=LAYOUTS, help="only these layouts")
    args = parser.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET") == "1":
        print("triton_convt.aot: unset TRITON_INTERPRET; interpreted kernels cannot be compiled", file=sys.stderr)
        return 2
    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")  # triton warns (on stdout) when it is unset
    for arch in args.arch:
        for label, plan in forward_variants():
            if (args.dtype and label["dtype"] not in args.dtype) or (args.layout and label["layout"] not in args.layout):
                continue
            record, _ = measure(plan, arch)
            record = {"kernel": plan.kernel.__name__, "arch": arch, **label, "config": plan_config(plan), **record}
            print(json.dumps(record), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
