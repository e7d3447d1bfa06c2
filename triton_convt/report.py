"""The perf report: triton_convt against cuDNN on real decoder layers (a GPU), or its CPU evidence (no GPU).

``python -m triton_convt.report`` (console script ``triton-convt-report``); the layers are :mod:`triton_convt.layers`.

On a CUDA GPU (``perf_reports/<gpu>/``): every layer x dtype x layout is run by each implementation
(:func:`implementations`: triton_convt with the fused epilogue; cuDNN ``F.conv_transpose2d`` then the eager
activation, with ``cudnn.benchmark`` off and on; ``torch.compile`` of that chain; FlagGems when installed), each
output is checked against torch in fp64, and each correct one is timed with ``triton.testing.do_bench`` (median,
20% and 80% quantiles). :func:`measure_case` holds the checking and timing with the timer passed in, so the tests
run it on CPU with a fake timer.

Without a GPU (``perf_reports/cpu/``), three parts (``--only`` picks some):
``check``: every layer, shrunk by :meth:`~triton_convt.layers.LayerSpec.scaled`, through the Triton kernel under
the interpreter, against torch in fp64 (correctness only: interpreter time says nothing about GPU speed);
``model``: from the layer's full size, FLOPs, minimum bytes (fused) and the unfused chain's bytes, arithmetic
intensity, and the roofline bound on the published H100 and A100 peaks (:data:`PEAKS`), with the work model's
issued/useful MACs for the config each GPU's file gives; ``profile``: the static compile profile
(:mod:`triton_convt.profile`) of the forward kernel's shipped configs for sm_80 and sm_90, run in a child process
without the interpreter (compiled kernels and interpreted ones cannot share a process).

Output: ``results.csv`` (one tidy row per measurement, check or model figure; columns in :data:`COLUMNS`),
``results.json`` (the rows, the environment, the peaks and the static profile), PNG plots and ``summary.md``.
``--from-csv FILE`` renders the plots and summary again from a CSV measured elsewhere. perf_reports/README.md
explains every column and plot.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
import triton

from . import checking, configs, launcher, layers, workmodel
from .activations import apply_torch
from .layers import LayerSpec

DTYPES = ("bfloat16", "float16", "float32")
LAYOUTS = ("nchw", "channels_last")
#: The forward kernel: the report compares forward passes, so the static profile builds its configs only.
FORWARD = "conv_transpose2d_fwd"
#: The implementation every speedup is taken against: what a user runs today with torch's defaults.
BASELINE = "cudnn"

#: Published peaks the roofline uses: dense tensor-core TFLOP/s (no sparsity) per dtype (fp32 is TF32, torch's
#: default for convolutions), memory bandwidth in bytes/s, and the config file the work model reads for the part.
PEAKS = {
    "H100 SXM": {
        "tflops": {"bfloat16": 989.4, "float16": 989.4, "float32": 494.7},
        "bandwidth": 3.35e12,
        "target": "sm90",
        "source": "NVIDIA H100 Tensor Core GPU datasheet, H100 SXM5 80GB: BF16/FP16 989.4 and TF32 494.7 dense "
        "tensor TFLOP/s (half the 'with sparsity' figures), HBM3 3.35 TB/s",
    },
    "A100 SXM": {
        "tflops": {"bfloat16": 312.0, "float16": 312.0, "float32": 156.0},
        "bandwidth": 2.039e12,
        "target": "sm80",
        "source": "NVIDIA A100 Tensor Core GPU datasheet, A100 SXM4 80GB: BF16/FP16 312 and TF32 156 dense tensor "
        "TFLOP/s, HBM2e 2,039 GB/s",
    },
}

#: The CSV's columns, in order (perf_reports/README.md explains each). A row fills the ones its kind has.
COLUMNS = (
    "kind", "device", "layer", "dtype", "layout", "impl", "shape", "activation",
    "flops", "bytes", "median_ms", "q20_ms", "q80_ms", "tflops", "gbps", "speedup_vs_cudnn",
    "speedup_vs_best_torch", "max_rel_error", "tolerance", "ok",
    "intensity", "peak_tflops", "peak_gbps", "model_ms", "model_tflops", "bound", "fused_bytes",
    "unfused_bytes", "config", "issued_over_useful", "kernel_model_ms", "kernel_bound", "error",
)  # fmt: skip
#: The implementations that are torch's own (the "best torch" speedup is taken against the fastest of them).
TORCH_IMPLS = ("cudnn", "cudnn_benchmark", "torch_compile")
#: Columns that hold text (the others hold numbers, and ``ok`` a bool).
TEXT_COLUMNS = (
    "kind", "device", "layer", "dtype", "layout", "impl", "shape", "activation", "bound", "config", "kernel_bound",
    "error",
)  # fmt: skip
#: Values of the ``kind`` column. Only "measured" rows carry times, and only a GPU run writes them.
MEASURED, CHECK, MODEL = "measured", "interpreter-check", "model"
#: Values of the ``impl`` column of model rows.
FUSED, UNFUSED = "triton_convt (fused)", "unfused chain"


def describe(spec: LayerSpec) -> str:
    """The call as a short string: ``N x C_in x H x W -> C_out, k, s, p, op, g, d``."""
    pair = lambda p: f"{p[0]}x{p[1]}" if p[0] != p[1] else str(p[0])  # noqa: E731
    return (
        f"{spec.n}x{spec.c_in}x{spec.hw[0]}x{spec.hw[1]} -> {spec.c_out}x{spec.output_hw[0]}x{spec.output_hw[1]}"
        f" k{pair(spec.kernel)} s{pair(spec.stride)} p{pair(spec.padding)} op{pair(spec.output_padding)}"
        f" g{spec.groups} d{pair(spec.dilation)}"
    )


def make_inputs(spec: LayerSpec, dtype: torch.dtype, layout: str, device: str | torch.device):
    """Random input (in ``layout``), weight and bias (None for a layer without one) of ``spec``."""
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    x = torch.randn(spec.n, spec.c_in, *spec.hw, dtype=dtype, device=device).to(memory_format=fmt)
    w = torch.randn(spec.c_in, spec.c_out // spec.groups, *spec.kernel, dtype=dtype, device=device)
    b = torch.randn(spec.c_out, dtype=dtype, device=device) if spec.bias else None
    return x, w, b


def chain_bytes(spec: LayerSpec, itemsize: int) -> dict[str, int]:
    """Bytes moved by the fused call (input, weight, bias read once, output written once: the minimum) and by the
    unfused chain of this layer: the conv, then one read-and-write pass over the output for the bias when there is
    one and one for the activation when there is one. (:func:`triton_convt.workmodel.traffic` always counts both
    passes; the report follows each layer's real chain.)"""
    fused = workmodel.traffic(spec.layer, itemsize, bias=spec.bias)["fused"]
    y = spec.n * spec.c_out * spec.output_hw[0] * spec.output_hw[1] * itemsize
    passes = int(spec.bias) + int(spec.activation is not None)
    return {"fused": fused, "unfused": fused + 2 * y * passes}


# ---------------------------------------------------------------------------------------------------------------
# GPU: implementations, checking and timing
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Impl:
    """One way to compute a layer: ``fn()`` returns the output; ``cudnn_benchmark`` is the value of
    ``torch.backends.cudnn.benchmark`` while it is checked and timed (None: left as it is)."""

    name: str
    fn: Callable[[], torch.Tensor]
    cudnn_benchmark: bool | None = None


@contextlib.contextmanager
def cudnn_benchmark(value: bool | None):
    """Set ``torch.backends.cudnn.benchmark`` to ``value`` (unless None) and restore it.

    Through ``cudnn.flags``, which keeps every other flag as it is: plain assignment is refused once torch's test
    utilities have called ``torch.backends.disable_global_flags()``.
    """
    if value is None:
        yield
        return
    cudnn = torch.backends.cudnn
    with cudnn.flags(enabled=cudnn.enabled, benchmark=value, benchmark_limit=cudnn.benchmark_limit,
                     deterministic=cudnn.deterministic, allow_tf32=cudnn.allow_tf32):
        yield


def torch_chain(spec: LayerSpec) -> Callable:
    """What a user runs today: torch's conv (cuDNN on a GPU, bias included) then the eager activation."""

    def chain(x, w, b):
        return apply_torch(F.conv_transpose2d(x, w, b, *spec.conv_args), spec.activation, 0.01)

    return chain


def implementations(spec: LayerSpec, x, w, b, names: Iterable[str] | None = None) -> list[Impl]:
    """The report's implementations of ``spec`` on these operands (only ``names`` if given; FlagGems only if it is
    installed). ``torch.compile`` is reset first so that each layer compiles afresh instead of hitting dynamo's
    recompile limit."""
    from .op import conv_transpose2d

    chain = torch_chain(spec)
    makers = {
        "triton_convt": lambda: Impl(
            "triton_convt", lambda: conv_transpose2d(x, w, b, *spec.conv_args, activation=spec.activation)
        ),
        "cudnn": lambda: Impl("cudnn", lambda: chain(x, w, b), cudnn_benchmark=False),
        "cudnn_benchmark": lambda: Impl("cudnn_benchmark", lambda: chain(x, w, b), cudnn_benchmark=True),
        "torch_compile": _compiled_impl(chain, x, w, b),
        "flag_gems": _flag_gems_impl(chain, x, w, b),
    }  # fmt: skip
    wanted = list(makers) if names is None else list(names)
    return [impl for impl in (makers[name]() for name in wanted) if impl is not None]


def _compiled_impl(chain, x, w, b) -> Callable[[], Impl]:
    def make():
        torch._dynamo.reset()
        compiled = torch.compile(chain, dynamic=False)
        return Impl("torch_compile", lambda: compiled(x, w, b), cudnn_benchmark=True)

    return make


def _flag_gems_impl(chain, x, w, b) -> Callable[[], Impl | None]:
    def make():
        try:
            import flag_gems
        except ImportError:
            return None

        def run():
            with flag_gems.use_gems():  # FlagGems replaces aten ops (its Triton conv_transpose2d) inside this block
                return chain(x, w, b)

        return Impl("flag_gems", run)

    return make


def do_bench_timer(fn: Callable[[], torch.Tensor]) -> tuple[float, float, float]:
    """``triton.testing.do_bench``'s median, 20% and 80% quantiles of ``fn``, in milliseconds (GPU only)."""
    return tuple(triton.testing.do_bench(fn, quantiles=[0.5, 0.2, 0.8]))


def measure_case(
    spec: LayerSpec, x, w, b, impls: list[Impl], timer: Callable[[Callable], tuple], device_name: str
) -> list[dict]:
    """Check each implementation's output against torch in fp64 and time the correct ones with ``timer``.

    One row per implementation. A wrong (or failing) output gets ``ok`` False, its error, and no time: its speed
    means nothing. Speedups are taken against the :data:`BASELINE` row and against the fastest correct torch row
    (cuDNN with or without ``cudnn.benchmark``, ``torch.compile``).
    """
    ref = checking.reference(x, w, b, spec.conv_args, spec.activation)
    tol = checking.tolerance(x.dtype, x.device)
    itemsize = x.element_size()
    moved = chain_bytes(spec, itemsize)
    layout = "channels_last" if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous() else "nchw"
    rows = []
    for impl in impls:
        row = base_row(MEASURED, device_name, spec, str(x.dtype).split(".")[1], layout, impl.name)
        row.update(flops=spec.flops, bytes=moved["fused"], tolerance=tol)
        with cudnn_benchmark(impl.cudnn_benchmark):
            error = _error_of(impl.fn, ref, row)
            row.update(max_rel_error=error, ok=error <= tol)
            if row["ok"]:
                median, q20, q80 = timer(impl.fn)
                seconds = median * 1e-3
                row.update(median_ms=median, q20_ms=q20, q80_ms=q80,
                           tflops=spec.flops / seconds / 1e12, gbps=moved["fused"] / seconds / 1e9)  # fmt: skip
        rows.append(row)
    timed = {r["impl"]: r["median_ms"] for r in rows if r.get("median_ms")}
    best_torch = min((t for name, t in timed.items() if name in TORCH_IMPLS), default=None)
    for row in rows:
        if row.get("median_ms"):
            if BASELINE in timed:
                row["speedup_vs_cudnn"] = timed[BASELINE] / row["median_ms"]
            if best_torch:
                row["speedup_vs_best_torch"] = best_torch / row["median_ms"]
    return rows


def _error_of(fn: Callable[[], torch.Tensor], ref: torch.Tensor, row: dict) -> float:
    """:func:`checking.relative_error` of ``fn()``; an exception is a finding, not a crash: it is kept in the row's
    ``error`` column and counts as an infinite error."""
    try:
        return checking.relative_error(fn(), ref)
    except Exception as e:  # noqa: BLE001
        row["error"] = f"{type(e).__name__}: {e}"[:300]
        return float("inf")


def base_row(kind: str, device: str, spec: LayerSpec, dtype: str, layout: str, impl: str) -> dict:
    """The identifying columns of a row."""
    return dict(kind=kind, device=device, layer=spec.name, dtype=dtype, layout=layout, impl=impl,
                shape=describe(spec), activation=spec.activation or "none")  # fmt: skip


def gpu_rows(
    specs: Iterable[LayerSpec], dtypes: list[str], device: str, timer=do_bench_timer, impl_names=None, progress=True
) -> list[dict]:
    """Every layer x dtype x layout on ``device``, measured by :func:`measure_case`."""
    name = torch.cuda.get_device_name(device) if torch.device(device).type == "cuda" else str(device)
    cases = [(s, d, l) for s in specs for d in dtypes for l in LAYOUTS]
    rows = []
    for spec, dtype, layout in _progress(cases, "measure", progress):
        x, w, b = make_inputs(spec, getattr(torch, dtype), layout, device)
        rows += measure_case(spec, x, w, b, implementations(spec, x, w, b, impl_names), timer, name)
    return rows


def gpu_environment(device: str) -> dict:
    """What a GPU result depends on: the part, the versions, and the TF32 switches."""
    props = torch.cuda.get_device_properties(device)
    return dict(
        gpu=props.name, capability=f"{props.major}.{props.minor}", sms=props.multi_processor_count,
        torch=torch.__version__, triton=triton.__version__, cuda=torch.version.cuda,
        cudnn=torch.backends.cudnn.version(), cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
        matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# No GPU: interpreter checks, the model, the static profile
# ---------------------------------------------------------------------------------------------------------------


def check_rows(specs: Iterable[LayerSpec], dtypes: list[str], progress=True) -> list[dict]:
    """Every layer, scaled down, in every dtype and layout through the Triton kernel under the interpreter (one
    launch, counted, so the CPU fallback cannot pass for it), checked against torch in fp64."""
    from .op import conv_transpose2d

    if not launcher.interpreter_active():
        raise RuntimeError("the interpreter checks need TRITON_INTERPRET=1 set before triton_convt is imported")
    cases = [(s.scaled(), d, l) for s in specs for d in dtypes for l in LAYOUTS]
    rows = []
    for spec, dtype, layout in _progress(cases, "check", progress):
        torch.manual_seed(0)
        x, w, b = make_inputs(spec, getattr(torch, dtype), layout, "cpu")
        row = base_row(CHECK, "cpu (Triton interpreter)", spec, dtype, layout, "triton_convt")
        ref = checking.reference(x, w, b, spec.conv_args, spec.activation)
        before = launcher.launch_count()
        error = _error_of(lambda: conv_transpose2d(x, w, b, *spec.conv_args, activation=spec.activation), ref, row)
        tol = checking.tolerance(x.dtype, x.device)
        row.update(max_rel_error=error, tolerance=tol, ok=error <= tol and launcher.launch_count() == before + 1)
        rows.append(row)
    return rows


def model_rows(specs: Iterable[LayerSpec], dtypes: list[str]) -> list[dict]:
    """The roofline bound of each full-size layer on each part of :data:`PEAKS`, fused and unfused (a model)."""
    from .profile import config_name

    available = configs.available_targets()
    rows = []
    for spec in specs:
        for dtype in dtypes:
            moved = chain_bytes(spec, torch.empty((), dtype=getattr(torch, dtype)).element_size())
            for part, peak in PEAKS.items():
                target = peak["target"] if peak["target"] in available else "default"
                config = workmodel.launcher_config(spec.layer, getattr(torch, dtype), target)
                issued = workmodel.work(spec.layer, config).ratio
                for impl, moved_bytes in ((FUSED, moved["fused"]), (UNFUSED, moved["unfused"])):
                    compute_s = spec.flops / (peak["tflops"][dtype] * 1e12)
                    memory_s = moved_bytes / peak["bandwidth"]
                    seconds = max(compute_s, memory_s)
                    row = base_row(MODEL, part, spec, dtype, "any", impl)
                    row.update(
                        flops=spec.flops, bytes=moved_bytes, intensity=spec.flops / moved_bytes,
                        peak_tflops=peak["tflops"][dtype], peak_gbps=peak["bandwidth"] / 1e9,
                        model_ms=seconds * 1e3, model_tflops=spec.flops / seconds / 1e12,
                        bound="compute" if compute_s >= memory_s else "memory",
                        fused_bytes=moved["fused"], unfused_bytes=moved["unfused"],
                        config=f"{target}: {config_name(config)}", issued_over_useful=issued,
                    )  # fmt: skip
                    if impl == FUSED:  # this kernel's own bound: the MACs it issues, not the useful ones
                        row.update(kernel_model_ms=max(compute_s * issued, memory_s) * 1e3,
                                   kernel_bound="compute" if compute_s * issued >= memory_s else "memory")  # fmt: skip
                    rows.append(row)
    return rows


def static_profile(out: str, archs: list[int], dtypes: list[str], jobs: int) -> dict:
    """Compile every shipped forward config for ``archs`` (this process must not run the interpreter); writes
    ``profile.json`` and ``profile.md`` into ``out`` and the cubins into ``out/cubins``. Returns the JSON."""
    from . import profile

    builds, _ = profile.shipped_builds(archs, dtypes)
    builds = [b for b in builds if b["kernel"] == FORWARD]
    cubins = os.path.join(out, "cubins")
    os.makedirs(cubins, exist_ok=True)
    # fork: the workers inherit the imported modules instead of importing torch and triton again.
    with ProcessPoolExecutor(max(1, jobs), mp_context=multiprocessing.get_context("fork")) as pool:
        records = list(pool.map(profile.run_build, builds, [cubins] * len(builds)))
    data = {"triton": triton.__version__, "archs": archs, "kernel": FORWARD, "builds": records}
    with open(os.path.join(out, "profile.json"), "w") as f:
        json.dump(data, f, indent=1)
    with open(os.path.join(out, "profile.md"), "w") as f:
        f.write(profile.markdown(records, []) + "\n")
    return data


def start_static_profile(out: str, archs: list[int], dtypes: list[str], jobs: int) -> subprocess.Popen:
    """Run :func:`static_profile` in a child process without ``TRITON_INTERPRET`` (``--only profile``)."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    cmd = [sys.executable, "-m", "triton_convt.report", "--only", "profile", "--out", out, "--jobs", str(jobs),
           "--dtypes", *dtypes] + [a for arch in archs for a in ("--arch", f"sm{arch}")]  # fmt: skip
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def cpu_environment() -> dict:
    return dict(device="cpu (no GPU: Triton interpreter checks, model, static profile)", torch=torch.__version__,
                triton=triton.__version__, python=platform.python_version(), machine=platform.machine(),
                cores=os.cpu_count())  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# Output: CSV, JSON, plots, summary
# ---------------------------------------------------------------------------------------------------------------


def write_csv(rows: list[dict], path: str) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="raise")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(row.get(k)) for k in COLUMNS})


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


def read_csv(path: str) -> list[dict]:
    """Rows of a results.csv, numbers as numbers, ``ok`` as bool, empty cells left out."""
    rows = []
    with open(path, newline="") as f:
        for raw in csv.DictReader(f):
            row = {}
            for key, value in raw.items():
                if value in ("", None):
                    continue
                if key == "ok":
                    row[key] = value == "True"
                elif key in TEXT_COLUMNS:
                    row[key] = value
                else:
                    row[key] = float(value)
            rows.append(row)
    return rows


def geomean(values: list[float]) -> float:
    return math.exp(statistics.fmean(math.log(v) for v in values)) if values else float("nan")


def _facets(rows: list[dict]) -> list[tuple[str, str]]:
    return sorted({(r["dtype"], r["layout"]) for r in rows})


def _layers(rows: list[dict]) -> list[str]:
    return list(dict.fromkeys(r["layer"] for r in rows))


def _figure(n_panels: int, width: float = 12, height: float = 3.4):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(n_panels, 1, figsize=(width, height * n_panels), squeeze=False)
    return plt, fig, axes[:, 0]


def _save(plt, fig, path: str) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_throughput(rows: list[dict], path: str, device: str) -> None:
    """Measured TFLOP/s per layer and implementation, one panel per dtype and layout."""
    measured = [r for r in rows if r.get("median_ms")]
    facets, names = _facets(measured), _layers(measured)
    impls = list(dict.fromkeys(r["impl"] for r in measured))
    plt, fig, axes = _figure(len(facets))
    for ax, (dtype, layout) in zip(axes, facets):
        for i, impl in enumerate(impls):
            mine = [r for r in measured if (r["dtype"], r["layout"], r["impl"]) == (dtype, layout, impl)]
            values = {r["layer"]: r["tflops"] for r in mine}
            xs = [j + (i - (len(impls) - 1) / 2) * 0.8 / len(impls) for j in range(len(names))]
            ax.bar(xs, [values.get(n, 0) for n in names], width=0.8 / len(impls), label=impl)
        ax.set_title(f"{device}, {dtype}, {layout}: measured TFLOP/s (useful FLOPs / median time)")
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=7)
        ax.set_ylabel("TFLOP/s")
        ax.legend(fontsize=7, ncols=len(impls))
    _save(plt, fig, path)


def plot_speedup(rows: list[dict], path: str, device: str) -> dict[str, float]:
    """Measured speedup of triton_convt over cuDNN (benchmark off) per layer, one panel per dtype and layout, with
    the geometric mean; returns the geomeans by ``dtype/layout``."""
    ours = [r for r in rows if r["impl"] == "triton_convt" and r.get("speedup_vs_cudnn")]
    facets, names = _facets(ours), _layers(ours)
    plt, fig, axes = _figure(len(facets))
    means = {}
    for ax, (dtype, layout) in zip(axes, facets):
        values = {r["layer"]: r["speedup_vs_cudnn"] for r in ours if (r["dtype"], r["layout"]) == (dtype, layout)}
        means[f"{dtype}/{layout}"] = mean = geomean(list(values.values()))
        heights = [values.get(n, 0) for n in names]
        ax.bar(range(len(names)), heights, color=["tab:green" if h >= 1 else "tab:red" for h in heights])
        ax.axhline(1.0, color="black", lw=0.8)
        ax.axhline(mean, color="tab:blue", ls="--", label=f"geomean {mean:.2f}x")
        ax.set_title(f"{device}, {dtype}, {layout}: measured speedup of triton_convt over cuDNN + eager epilogue")
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=7)
        ax.set_ylabel("speedup (x)")
        ax.legend(fontsize=7)
    _save(plt, fig, path)
    return means


def plot_roofline(rows: list[dict], path: str) -> None:
    """Modelled: each layer's arithmetic intensity on each part's roofline (fused call), one panel per part."""
    fused = [r for r in rows if r["kind"] == MODEL and r["impl"] == FUSED]
    parts = list(dict.fromkeys(r["device"] for r in fused))
    plt, fig, axes = _figure(len(parts), width=9, height=4.2)
    for ax, part in zip(axes, parts):
        mine = [r for r in fused if r["device"] == part]
        lo, hi = min(r["intensity"] for r in mine) / 2, max(r["intensity"] for r in mine) * 2
        xs = [lo * (hi / lo) ** (i / 100) for i in range(101)]
        for dtype in dict.fromkeys(r["dtype"] for r in mine):
            points = [r for r in mine if r["dtype"] == dtype]
            peak, bw = points[0]["peak_tflops"], points[0]["peak_gbps"]
            label = f"roofline {dtype} ({peak:g} TFLOP/s, {bw:g} GB/s)"
            ax.plot(xs, [min(peak, x * bw / 1e3) for x in xs], lw=1, label=label)
            ax.scatter([r["intensity"] for r in points], [r["model_tflops"] for r in points], s=14)
        for r in mine:
            if r["dtype"] == mine[0]["dtype"]:
                ax.annotate(r["layer"], (r["intensity"], r["model_tflops"]), fontsize=6, rotation=20)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("arithmetic intensity (useful FLOPs / minimum bytes)")
        ax.set_ylabel("bound TFLOP/s")
        ax.set_title(f"{part}: roofline bound of the fused call (modelled from published peaks, not measured)")
        ax.legend(fontsize=7)
    _save(plt, fig, path)


def plot_bytes(rows: list[dict], path: str) -> None:
    """Modelled: minimum (fused) and unfused-chain bytes per layer, and the modelled bound time of each on H100."""
    model = [r for r in rows if r["kind"] == MODEL]
    dtype = model[0]["dtype"]
    part = model[0]["device"]
    names = _layers(model)
    pick = lambda impl: {r["layer"]: r for r in model if (r["dtype"], r["device"], r["impl"]) == (dtype, part, impl)}  # noqa: E731
    fused, unfused = pick(FUSED), pick(UNFUSED)
    plt, fig, axes = _figure(2)
    for ax, key, scale, label in ((axes[0], "bytes", 1e6, "MB moved"), (axes[1], "model_ms", 1e-3, "bound time (us)")):
        for shift, rows_of, label in ((-0.2, fused, FUSED), (0.2, unfused, UNFUSED)):
            ax.bar([i + shift for i in range(len(names))], [rows_of[n][key] / scale for n in names], width=0.4, label=label)
        ax.set_yscale("log")
        ax.set_ylabel(label)
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=7)
        ax.legend(fontsize=7)
    axes[0].set_title(f"{dtype}: bytes of the fused call vs conv + bias pass + activation pass (modelled)")
    axes[1].set_title(f"{dtype} on {part}: roofline bound time, fused vs unfused (modelled, not measured)")
    _save(plt, fig, path)


def plot_checks(rows: list[dict], path: str) -> None:
    """Interpreter checks: worst error over tolerance per layer and dtype (below 1 passes)."""
    checks = [r for r in rows if r["kind"] == CHECK]
    names, dtypes = _layers(checks), list(dict.fromkeys(r["dtype"] for r in checks))
    plt, fig, axes = _figure(1)
    ax = axes[0]
    for i, dtype in enumerate(dtypes):
        worst = dict.fromkeys(names, 1e-6)  # an exact result still shows on the log scale
        for r in checks:
            if r["dtype"] == dtype:
                worst[r["layer"]] = max(worst[r["layer"]], r["max_rel_error"] / r["tolerance"])
        xs = [j + (i - (len(dtypes) - 1) / 2) * 0.8 / len(dtypes) for j in range(len(names))]
        ax.bar(xs, [worst[n] for n in names], width=0.8 / len(dtypes), label=dtype)
    ax.axhline(1.0, color="tab:red", lw=1, label="tolerance")
    ax.set_yscale("log")
    ax.set_ylabel("max rel. error / tolerance")
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=7)
    ax.set_title("Interpreter checks (layers scaled down, CPU): worst error / tolerance over both layouts; not speed")
    ax.legend(fontsize=7)
    _save(plt, fig, path)


def render(rows: list[dict], out: str, meta: dict, profile: dict | None = None) -> list[str]:
    """Write the plots and summary.md for ``rows`` into ``out``; returns the file names written."""
    kinds = {r["kind"] for r in rows}
    device = meta.get("gpu") or meta.get("device", "")
    written, lines, means = [], [], {}
    if MEASURED in kinds:
        plot_throughput(rows, os.path.join(out, "throughput.png"), device)
        means = plot_speedup(rows, os.path.join(out, "speedup.png"), device)
        written += ["throughput.png", "speedup.png"]
    if MODEL in kinds:
        plot_roofline(rows, os.path.join(out, "roofline.png"))
        plot_bytes(rows, os.path.join(out, "bytes.png"))
        written += ["roofline.png", "bytes.png"]
    if CHECK in kinds:
        plot_checks(rows, os.path.join(out, "checks.png"))
        written.append("checks.png")
    lines += summary_lines(rows, meta, means, profile)
    lines += ["", "## Plots", ""] + [f"![{name}]({name})" for name in written]
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return written + ["summary.md"]


def summary_lines(rows: list[dict], meta: dict, means: dict, profile: dict | None) -> list[str]:
    """The markdown summary: environment, then one section per kind of row present."""
    lines = ["# triton_convt perf report", ""]
    lines += [f"- {k}: {v}" for k, v in meta.items()]
    measured = [r for r in rows if r["kind"] == MEASURED]
    if measured:
        wrong = [r for r in measured if not r["ok"]]
        lines += ["", "## Measured on the GPU (triton.testing.do_bench, median of its runs)", "",
                  f"{len(measured) - len(wrong)} of {len(measured)} outputs correct against torch in fp64."]  # fmt: skip
        lines += [f"- WRONG: {r['layer']} {r['dtype']} {r['layout']} {r['impl']}: error {r['max_rel_error']:.2e} "
                  f"{r.get('error', '')}" for r in wrong]  # fmt: skip
        lines += ["", "Geometric-mean speedup of triton_convt over cuDNN + eager epilogue (cudnn.benchmark off):", ""]
        lines += [f"- {k}: {v:.2f}x" for k, v in means.items()]
        lines += ["", "| layer | dtype | layout | impl | median ms | TFLOP/s | GB/s | vs cuDNN | vs best torch |",
                  "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in measured:
            if r.get("median_ms"):
                speedups = [r.get(k, float("nan")) for k in ("speedup_vs_cudnn", "speedup_vs_best_torch")]
                lines.append(f"| {r['layer']} | {r['dtype']} | {r['layout']} | {r['impl']} | {r['median_ms']:.4f} "
                             f"| {r['tflops']:.1f} | {r['gbps']:.0f} | {speedups[0]:.2f} | {speedups[1]:.2f} |")  # fmt: skip
    checks = [r for r in rows if r["kind"] == CHECK]
    if checks:
        failed = [r for r in checks if not r["ok"]]
        lines += ["", "## Interpreter checks (correctness only, never speed)", "",
                  f"{len(checks) - len(failed)} of {len(checks)} checks passed: every layer shrunk to interpreter size "
                  "(kernel, stride, padding, output_padding, dilation, groups structure and activation kept), each "
                  "dtype and layout, one Triton launch each, against torch in fp64."]  # fmt: skip
        lines += [f"- FAILED: {r['layer']} {r['dtype']} {r['layout']}: error {r['max_rel_error']:.2e} (tol "
                  f"{r['tolerance']:.1e}) {r.get('error', '')}" for r in failed]  # fmt: skip
    model = [r for r in rows if r["kind"] == MODEL]
    if model:
        parts = list(dict.fromkeys(r["device"] for r in model))
        dtype = model[0]["dtype"]
        lines += ["", f"## Modelled (roofline bound from published peaks; not measured), {dtype}", ""]
        lines += [f"- {part}: {PEAKS[part]['source']}" for part in parts if part in PEAKS]
        lines += ["", "Bound: the roofline of the operation, fused and as the unfused chain, from useful FLOPs. Kernel: "
                  "this kernel's own bound, from the MACs it issues (issued/useful) with the config the launcher "
                  "picks for the part."]  # fmt: skip
        header = "| layer | GFLOP | min MB | unfused MB | FLOP/B | " + " | ".join(
            f"{p} bound us (fused / unfused), bound by | {p} issued/useful | {p} kernel us, bound by"
            for p in parts) + " |"  # fmt: skip
        lines += ["", header, "|" + "---|" * (5 + 3 * len(parts))]
        for name in _layers(model):
            mine = {(r["device"], r["impl"]): r for r in model if r["layer"] == name and r["dtype"] == dtype}
            first = mine[(parts[0], FUSED)]
            cells = [name, f"{first['flops'] / 1e9:.2f}", f"{first['fused_bytes'] / 1e6:.1f}",
                     f"{first['unfused_bytes'] / 1e6:.1f}", f"{first['intensity']:.0f}"]  # fmt: skip
            for p in parts:
                f, u = mine[(p, FUSED)], mine[(p, UNFUSED)]
                cells += [f"{f['model_ms'] * 1e3:.1f} / {u['model_ms'] * 1e3:.1f}, {f['bound']}",
                          f"{f['issued_over_useful']:.2f}",
                          f"{f['kernel_model_ms'] * 1e3:.1f}, {f['kernel_bound']}"]  # fmt: skip
            lines.append("| " + " | ".join(cells) + " |")
    if profile:
        records = profile["builds"]
        bad = [r for r in records if "error" in r or r.get("spill_bytes")]
        archs = ", ".join(f"sm_{a}" for a in profile["archs"])
        registers = [r["registers"] for r in records if "registers" in r] or [0]
        tensor_cores = sum(1 for r in records if r.get("tensor_core_instructions"))
        lines += ["", f"## Static profile of the forward kernel (compiled for {archs} without a GPU; no timing)", "",
                  f"{len(records)} builds (shipped configs x dtypes x layouts x archs), {len(bad)} failed or spilled; "
                  f"{min(registers)}-{max(registers)} registers; {tensor_cores} use tensor-core instructions. "
                  "Full table: profile/profile.md."]  # fmt: skip
    return lines


def _progress(items: list, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="case", disable=not enabled, file=sys.stderr)


def _arch(text: str) -> int:
    from .profile import _arch as parse_arch

    return parse_arch(text)


def write_results(rows: list[dict], out: str, meta: dict, profile: dict | None) -> list[str]:
    """results.csv, results.json, plots and summary into ``out``; returns the file names."""
    os.makedirs(out, exist_ok=True)
    write_csv(rows, os.path.join(out, "results.csv"))
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({"meta": meta, "peaks": PEAKS, "rows": rows, "static_profile": profile}, f, indent=1)
    return ["results.csv", "results.json"] + render(rows, out, meta, profile)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="output directory (default perf_reports/<gpu> or perf_reports/cpu)")
    parser.add_argument("--layers", nargs="+", help="only these layers (names in triton_convt/layers.json)")
    parser.add_argument("--dtypes", nargs="+", choices=DTYPES, default=list(DTYPES))
    parser.add_argument("--from-csv", help="re-render plots and summary.md from this results.csv (into --out, "
                        "default its directory); runs nothing")  # fmt: skip
    parser.add_argument("--only", action="append", choices=("check", "model", "profile"),
                        help="without a GPU: only these parts (repeatable; default all three)")  # fmt: skip
    parser.add_argument("--arch", type=_arch, action="append", help="static profile targets (default sm80, sm90)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="static profile compile processes (default: cores)")  # fmt: skip
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    progress = not args.no_progress

    if args.from_csv:
        out = args.out or os.path.dirname(os.path.abspath(args.from_csv))
        os.makedirs(out, exist_ok=True)
        meta_path = os.path.join(os.path.dirname(os.path.abspath(args.from_csv)), "results.json")
        saved = json.load(open(meta_path)) if os.path.exists(meta_path) else {}
        meta = saved.get("meta", {"source": args.from_csv})
        written = render(read_csv(args.from_csv), out, meta, saved.get("static_profile"))
        print(f"rendered {', '.join(written)} into {out}")
        return 0

    specs = layers.select(args.layers)
    parts = args.only or ["check", "model", "profile"]
    archs = args.arch or [80, 90]
    if parts == ["profile"]:  # the child of start_static_profile (or a user): compiled kernels, no interpreter
        static_profile(os.path.join(args.out or "perf_reports/cpu", "profile"), archs, args.dtypes, args.jobs)
        return 0

    if torch.cuda.is_available():
        meta = gpu_environment("cuda")
        out = args.out or os.path.join("perf_reports", configs.slug(meta["gpu"]))
        rows = gpu_rows(specs, args.dtypes, "cuda", progress=progress)
        written = write_results(rows, out, meta, None)
        print(f"wrote {', '.join(written)} into {out}")
        return 0 if all(r["ok"] for r in rows) else 1

    checking.ensure_runnable("triton_convt.report")  # re-executes under the interpreter when "check" needs it
    out = args.out or os.path.join("perf_reports", "cpu")
    os.makedirs(out, exist_ok=True)
    start = time.monotonic()
    child = start_static_profile(out, archs, args.dtypes, args.jobs) if "profile" in parts else None
    rows = []
    if "check" in parts:
        rows += check_rows(specs, args.dtypes, progress)
    if "model" in parts:
        rows += model_rows(specs, args.dtypes)
    profile, status = None, 0
    if child:
        if progress:
            print("waiting for the static profile (compiles every shipped forward config) ...", file=sys.stderr)
        _, stderr = child.communicate()
        path = os.path.join(out, "profile", "profile.json")
        if child.returncode or not os.path.exists(path):
            print(f"static profile failed:\n{stderr[-3000:]}", file=sys.stderr)
            status = 1
        else:
            profile = json.load(open(path))
            status = int(any("error" in r for r in profile["builds"]))
    meta = cpu_environment() | {"layers": len(specs), "dtypes": args.dtypes, "parts": parts,
                                "seconds": round(time.monotonic() - start, 1)}  # fmt: skip
    written = write_results(rows, out, meta, profile)
    print(f"wrote {', '.join(written)} into {out} in {meta['seconds']} s")
    print("\n".join(summary_lines(rows, {}, {}, profile)[2:]))
    return status or int(not all(r["ok"] for r in rows if "ok" in r))


if __name__ == "__main__":
    raise SystemExit(main())
