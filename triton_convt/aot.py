"""Compile the kernels for real GPU targets without a GPU.

A :class:`~triton_convt.launcher.KernelPlan` built from CPU tensors holds exactly the arguments a launch would pass.
:func:`compile_plan` hands them to ``triton.compile`` with the specialisation the JIT would apply on a GPU
(pointers and integers divisible by 16 marked so, integers equal to 1 turned into constants, which is how the
memory layout reaches the compiler), for ``GPUTarget("cuda", arch, 32)``.

Run as ``python -m triton_convt.aot --arch 80 --arch 90``: compiles the forward kernel for each dtype and layout
and prints one JSON object per build. It must run without ``TRITON_INTERPRET`` (the interpreter's kernels cannot be
compiled); the tests call it in a subprocess for that reason.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time

import torch
import triton
from triton._C.libtriton import native_specialize_impl
from triton.backends.compiler import GPUTarget
from triton.backends.nvidia.compiler import CUDABackend
from triton.compiler import ASTSource

from .launcher import KernelPlan, allocate_output, forward_plan
from .validation import check_call

#: Tensor-core instructions in the PTX of each target: mma.sync on sm_80, wgmma (or mma.sync for shapes and
#: dtypes wgmma does not take, such as fp64) on sm_90.
TENSOR_CORE_PTX = {80: ("mma.sync",), 90: ("wgmma.mma_async", "mma.sync")}


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


def forward_variants() -> list[tuple[dict, KernelPlan]]:
    """Plans of the forward kernel for each dtype, layout and fp32 precision, plus the int64 index path.

    The problem is a typical decoder layer (k4 s2 p1, 64 -> 64 channels) shrunk to CPU size; its extents are large
    enough that the largest config of each dtype's list is chosen.
    """
    variants = []
    for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        for layout in ("nchw", "channels_last"):
            fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
            x = torch.empty(2, 128, 16, 16, dtype=dtype).to(memory_format=fmt)
            w = torch.empty(128, 128, 4, 4, dtype=dtype)
            b = torch.empty(128, dtype=dtype)
            params = check_call(x, w, b, 2, 1, 0, 1, 1)
            plan = forward_plan(x, w, b, allocate_output(x, w, params), params)
            precisions = ("tf32", "ieee") if dtype == torch.float32 else ("ieee",)
            for precision in precisions:
                p = dataclasses.replace(plan, args={**plan.args, "DOT_PRECISION": precision})
                variants.append(({"dtype": str(dtype).split(".")[1], "layout": layout, "precision": precision}, p))
            if dtype == torch.float16 and layout == "channels_last":
                p = forward_plan(x, w, b, allocate_output(x, w, params), params, index64=True)
                variants.append(({"dtype": "float16", "layout": layout, "precision": "ieee", "index": "int64"}, p))
    return variants


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", type=int, action="append", choices=sorted(TENSOR_CORE_PTX), required=True)
    parser.add_argument("--dtype", action="append", help="only these dtypes (float16, bfloat16, float32, float64)")
    parser.add_argument("--layout", action="append", choices=("nchw", "channels_last"), help="only these layouts")
    args = parser.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET") == "1":
        print("triton_convt.aot: unset TRITON_INTERPRET; interpreted kernels cannot be compiled", file=sys.stderr)
        return 2
    for arch in args.arch:
        for label, plan in forward_variants():
            if (args.dtype and label["dtype"] not in args.dtype) or (args.layout and label["layout"] not in args.layout):
                continue
            start = time.perf_counter()
            compiled = compile_plan(plan, arch)
            record = {
                "kernel": plan.kernel.__name__,
                "arch": arch,
                **label,
                "config": {k: plan.args[k] for k in ("BLOCK_M", "BLOCK_N", "BLOCK_K")}
                | {"num_warps": plan.num_warps, "num_stages": plan.num_stages},
                "shared_bytes": compiled.metadata.shared,
                "tensor_core_instructions": tensor_core_instructions(compiled, arch),
                "compile_seconds": round(time.perf_counter() - start, 2),
            }
            print(json.dumps(record), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
