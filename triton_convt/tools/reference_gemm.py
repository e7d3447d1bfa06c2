"""The yardstick of the static profile's hot-loop columns: Triton's matmul tutorial loop, kept with the tools.

The hot loop of a build (:mod:`.hotloop`) is held against this plain GEMM compiled at the same ``BLOCK_M``,
``BLOCK_N``, ``BLOCK_K``, warps, stages, arch and dtype: it is the loop of
``python/tutorials/03-matrix-multiplication.py`` in triton-lang/triton (row-major ``A [M, K]`` and ``B [K, N]``,
pointers advanced by ``BLOCK_K``, masks on K, ``tl.dot`` accumulating in fp32 (fp64 for fp64), grouped program
order), so whatever the compiler does to it at a tile is what a GEMM costs at that tile, and what the forward kernel
adds on top is its own overhead. It is compiled
through :func:`.aot.compile_plan` with the JIT's specialisation of a sample launch (every extent a multiple of 16,
unit strides constant), exactly as the profiled builds are.

:func:`reference` compiles once per ``(tile, warps, stages, arch, dtype, precision)`` per process; the profile
compiles each distinct one once per run and reads them together (:func:`key_of`, :func:`compile_key`,
:func:`read_keys`, :func:`attach`).
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl

from ..launch import KernelPlan
from . import aot, hotloop


@triton.jit
def reference_matmul_kernel(
    a_ptr,  # A [M, K], row-major
    b_ptr,  # B [K, N], row-major
    c_ptr,  # C [M, N], row-major, in A's dtype
    M,  # rows of A and C
    N,  # columns of B and C
    K,  # the reduction extent
    stride_am,  # element strides of A, B and C (the unit ones become constants under the JIT's specialisation)
    stride_ak,
    stride_bk,
    stride_bn,
    stride_cm,
    stride_cn,
    BLOCK_M: tl.constexpr,  # the tile of C one program computes, and the K step of its loop
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr,  # programs along M that share B tiles (the tutorial's grouped order)
    DOT_PRECISION: tl.constexpr,  # tl.dot's input precision ("ieee" or "tf32"), as the profiled build's
    ACC_DTYPE: tl.constexpr,  # the accumulator: fp32, fp64 for fp64 operands (as the package's kernels)
):
    """One ``[BLOCK_M, BLOCK_N]`` tile of ``C = A @ B``; the K loop is the tutorial's, unchanged in structure."""
    pid = tl.program_id(0)
    num_pid_m = tl.cdiv(M, BLOCK_M)
    num_pid_n = tl.cdiv(N, BLOCK_N)
    in_group = GROUP_M * num_pid_n
    first_m = (pid // in_group) * GROUP_M
    group_rows = min(num_pid_m - first_m, GROUP_M)
    pid_m = first_m + ((pid % in_group) % group_rows)
    pid_n = (pid % in_group) // group_rows
    rows = (pid_m * BLOCK_M + tl.arange(0, BLOCK_M)) % M
    cols = (pid_n * BLOCK_N + tl.arange(0, BLOCK_N)) % N
    ks = tl.arange(0, BLOCK_K)
    a_ptrs = a_ptr + rows[:, None] * stride_am + ks[None, :] * stride_ak
    b_ptrs = b_ptr + ks[:, None] * stride_bk + cols[None, :] * stride_bn
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=ACC_DTYPE)
    for k in range(0, tl.cdiv(K, BLOCK_K)):
        a = tl.load(a_ptrs, mask=ks[None, :] < K - k * BLOCK_K, other=0.0)
        b = tl.load(b_ptrs, mask=ks[:, None] < K - k * BLOCK_K, other=0.0)
        acc = tl.dot(a, b, acc, input_precision=DOT_PRECISION, out_dtype=ACC_DTYPE)
        a_ptrs += BLOCK_K * stride_ak
        b_ptrs += BLOCK_K * stride_bk
    out_rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    out_cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    c_ptrs = c_ptr + out_rows[:, None] * stride_cm + out_cols[None, :] * stride_cn
    tl.store(c_ptrs, acc.to(c_ptr.dtype.element_ty), mask=(out_rows[:, None] < M) & (out_cols[None, :] < N))


#: The sample GEMM's extents: multiples of 16 (the divisibility hints of a real layer) and at least the largest
#: tile, so that no config's tile is cut down.
SAMPLE_SIZE = 512


def reference_plan(config: dict, dtype: torch.dtype, precision: str = "ieee") -> KernelPlan:
    """The tutorial GEMM's launch at ``config``'s ``BLOCK_M``/``BLOCK_N``/``BLOCK_K``, warps and stages, on
    ``SAMPLE_SIZE``-square operands of ``dtype`` (CPU tensors: only their dtype, strides and alignment matter)."""
    m = n = k = SAMPLE_SIZE
    a, b, c = (torch.empty(shape, dtype=dtype) for shape in ((m, k), (k, n), (m, n)))
    bm, bn, bk = config["BLOCK_M"], config["BLOCK_N"], config["BLOCK_K"]
    args = dict(a_ptr=a, b_ptr=b, c_ptr=c, M=m, N=n, K=k, stride_am=a.stride(0), stride_ak=a.stride(1),
                stride_bk=b.stride(0), stride_bn=b.stride(1), stride_cm=c.stride(0), stride_cn=c.stride(1),
                BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, GROUP_M=8, DOT_PRECISION=precision,
                ACC_DTYPE=tl.float64 if dtype == torch.float64 else tl.float32)  # fmt: skip
    grid = (triton.cdiv(m, bm) * triton.cdiv(n, bn),)
    return KernelPlan(reference_matmul_kernel, grid, args, config["num_warps"], config["num_stages"])


def _cubin(bm: int, bn: int, bk: int, warps: int, stages: int, arch: int, dtype: str, precision: str) -> bytes:
    config = {"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk, "num_warps": warps, "num_stages": stages}
    return aot.compile_plan(reference_plan(config, getattr(torch, dtype), precision), arch).asm["cubin"]


@functools.cache
def _reference(bm: int, bn: int, bk: int, warps: int, stages: int, arch: int, dtype: str, precision: str) -> dict:
    return hotloop.hot_loop(aot.sass(_cubin(bm, bn, bk, warps, stages, arch, dtype, precision)))


def reference(config: dict, arch: int, dtype: str, precision: str = "ieee") -> dict:
    """The hot-loop figures (:func:`.hotloop.hot_loop`) of the tutorial GEMM at ``config``'s tile, warps and stages,
    compiled for CUDA ``arch`` in ``dtype`` (a torch dtype name) and ``tl.dot`` ``precision``; cached per process."""
    key = (config["BLOCK_M"], config["BLOCK_N"], config["BLOCK_K"], config["num_warps"], config["num_stages"])
    return dict(_reference(*key, arch, dtype, precision))


def key_of(record: dict) -> tuple | None:
    """What a profile record's reference GEMM is compiled with: ``(BLOCK_M, BLOCK_N, BLOCK_K, warps, stages, arch,
    dtype, precision)``; ``None`` for a build without a tensor-core loop or a ``BLOCK_M/N/K`` tile (nothing to
    hold it against)."""
    config = record.get("config") or {}
    if not record.get("hot_tensor_core") or not all(f"BLOCK_{d}" in config for d in "MNK"):
        return None
    return (config["BLOCK_M"], config["BLOCK_N"], config["BLOCK_K"], config["num_warps"], config["num_stages"],
            record["arch"], record["dtype"], record["precision"])  # fmt: skip


def compile_key(key: tuple) -> bytes | dict:
    """The cubin of the reference GEMM of a :func:`key_of` key, or ``{"reference_error": text}`` when it fails to
    compile (so that one failure does not hide the other figures; :func:`.hotloop.gate` fails a gated build
    without a ratio). :func:`read_keys` reads the cubins."""
    try:
        return _cubin(*key)
    except Exception as error:  # noqa: BLE001 - recorded on the builds it concerns
        return {"reference_error": f"{type(error).__name__}: {error}"}


def read_keys(compiled: dict[tuple, bytes | dict]) -> dict[tuple, dict]:
    """:func:`reference` for each key of ``compiled`` (key -> :func:`compile_key`'s answer), the cubins'
    SASS read in one batch (:func:`.aot.sass_many`); an error stays the key's answer."""
    keys = [k for k, c in compiled.items() if isinstance(c, bytes)]
    read = dict(zip(keys, map(hotloop.hot_loop, aot.sass_many([compiled[k] for k in keys]))))
    return {k: read[k] if k in read else dict(c) for k, c in compiled.items()}


def attach(records: list[dict], references: dict[tuple, dict]) -> list[dict]:
    """``records`` with the reference columns: ``reference_other_per_mma`` (the reference GEMM's non-tensor-core
    instructions per tensor-core instruction in its hot loop) and ``reference_ratio`` (:func:`.hotloop.ratio`),
    from ``references`` (:func:`key_of` -> :func:`read_keys`); records without a key get neither."""
    done = []
    for record in records:
        key = key_of(record)
        if key is None:
            done.append(record)
            continue
        ref = references[key]
        extra = {"reference_other_per_mma": hotloop.other_per_mma(ref), "reference_ratio": hotloop.ratio(record, ref)}
        if "reference_error" in ref:
            extra["reference_error"] = ref["reference_error"]
        done.append({**record, **extra})
    return done
