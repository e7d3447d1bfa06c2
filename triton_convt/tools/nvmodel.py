"""A second yardstick for the report's model: NVIDIA's analytic GEMM model (``nvidia-matmul-heuristics``).

The roofline bound (:mod:`.report.cpu`) says what no kernel can beat; this says what a *tuned Triton GEMM* of the
same work would take by NVIDIA's own performance model of its GPUs (``nvMatmulHeuristics``, run on the CPU: it
models, it does not measure). The forward kernel is one implicit GEMM per phase ``(r_h, r_w)`` of the stride: its
output pixels ``M = N * Q_h * Q_w`` times ``C_out/groups`` columns, reducing over ``K = C_in/groups * taps`` (the
phase's taps), for each group. :func:`layer_estimate_ms` sums the model's estimate over the phases (phases without
taps or outputs issue no GEMM), each the fastest of the model's candidate Triton configs for the problem, as a
tuner guided by the model would pick. Phases of the same shape (all four of a k4 s2 layer) and the groups are
modelled as one batched GEMM, because the model charges every GEMM a fixed latency of 10-13 us (launch and
pipeline fill), which the forward kernel, running every phase and group in one launch, pays once: summed per phase,
FCN's 64-phase upscore8 would be charged 64 launches.

The package is an optional extra (``pip install "triton_convt[heuristics]"``, Linux x86-64 only, under NVIDIA's
license); without it :func:`available` is False and the estimates are ``None``.
"""

from __future__ import annotations

import functools
import math

from .layers import Layer
from .workmodel import phases

#: nvMatmulHeuristics precision strings (A/B, compute, C/D) of the report's dtypes: fp16 and bf16 with fp32
#: accumulation, fp32 as TF32 on the tensor cores (torch's default for convolutions, as the roofline's fp32 peak),
#: fp64 as DMMA.
PRECISION = {"float16": "HSH", "bfloat16": "TST", "float32": "SFS", "float64": "DDD"}

#: How many candidate configs the model is asked for; the estimate is the fastest of them.
CANDIDATES = 16


def available() -> bool:
    """Whether ``nvidia-matmul-heuristics`` can be imported and loaded."""
    return _module() is not None


@functools.cache
def _module():
    try:
        import nvMatmulHeuristics
    except (ImportError, OSError):  # not installed, or its shared library does not load on this platform
        return None
    return nvMatmulHeuristics


@functools.cache
def _interface(gpu: str):
    """The model's Triton target for one of its predefined GPUs (``H100_SXM``, ``A100_SXM_80GB``, ...)."""
    nv = _module()
    return nv.NvMatmulHeuristicsInterfaceEx(
        backend=nv.NvMatmulHeuristicsTarget.TRITON, gpu=nv.NvMatmulHeuristicsNvidiaGpu[gpu],
        flags=nv.NvMatmulHeuristicsFlags.PERF_MODEL_BASED_AUTO_TUNING,
    )  # fmt: skip


def phase_gemms(layer: Layer) -> list[tuple[int, int, int, int]]:
    """``(M, N, K, groups)`` of each phase's GEMM with work to do, as the forward kernel runs the layer (its launch
    stride, :func:`triton_convt.tools.workmodel.phases`; 1 to 3 spatial axes): ``M = N * prod(Q)`` (the phase's
    output pixels), ``N = C_out/groups``, ``K = C_in/groups * taps``, one such GEMM per group."""
    gemms = []
    for rows, taps in phases(layer):
        m = layer.n * math.prod(rows)
        k = layer.c_in_g * math.prod(map(len, taps))
        if m and k:
            gemms.append((m, layer.c_out_g, k, layer.groups))
    return gemms


def batched_gemms(layer: Layer) -> list[tuple[int, int, int, int]]:
    """:func:`phase_gemms` with the phases of one shape merged: ``(M, N, K, batch)``, ``batch`` = phases x groups,
    in order of first appearance."""
    batches: dict[tuple[int, int, int], int] = {}
    for m, n, k, groups in phase_gemms(layer):
        batches[(m, n, k)] = batches.get((m, n, k), 0) + groups
    return [(*shape, batch) for shape, batch in batches.items()]


def gemm_estimate_s(m: int, n: int, k: int, batch: int, dtype: str, gpu: str) -> float | None:
    """The model's runtime in seconds of the fastest candidate Triton GEMM ``[M, K] @ [K, N]`` (row-major, as
    channels_last activations and output-channel-contiguous weights), ``batch`` times over, in ``dtype`` on
    ``gpu``; ``None`` when the package is absent or the model offers no config."""
    if not available():
        return None
    nv, model = _module(), _interface(gpu)
    problem = model.makeNvMatmulHeuristicsProblem(m, n, k, nv.NvMatmulHeuristicsMatmulLayout.NN_ROW_MAJOR, batch)
    runtimes = [c["runtime"] for c in model.get(problem, CANDIDATES, precision=PRECISION[dtype]) if c["runtime"] > 0]
    return min(runtimes) if runtimes else None


def layer_estimate_ms(layer: Layer, dtype: str, gpu: str) -> float | None:
    """NVIDIA's model of ``layer``'s forward pass as tuned Triton GEMMs, in ms: the sum over its phases, those of
    one shape batched (:func:`batched_gemms`), of :func:`gemm_estimate_s` (a model figure, not a measurement);
    ``None`` without the package or when a phase gets no estimate."""
    total = 0.0
    for gemm in batched_gemms(layer):
        seconds = gemm_estimate_s(*gemm, dtype, gpu)
        if seconds is None:
            return None
        total += seconds
    return total * 1e3
