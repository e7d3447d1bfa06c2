"""The report on a CUDA GPU: each implementation of a layer checked against torch in fp64, then timed.

:func:`implementations`: triton_convt with the fused epilogue; cuDNN ``F.conv_transpose2d`` then the eager
activation, with ``cudnn.benchmark`` off and on; ``torch.compile`` of that chain; FlagGems when installed.
:func:`upsampler_rows` times the nearest-upsample + conv layers against interpolate + cuDNN conv2d and against the
folded weights through cuDNN's conv_transpose2d. :func:`measure_case` holds the checking and timing with the timer
passed in, so the tests run it on CPU with a fake timer; on a GPU the timer is ``triton.testing.do_bench``
(median, 20% and 80% quantiles).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import triton

from ...activations import apply_torch
from ...functional import upsample_conv2d
from .. import checking, workmodel
from ..layers import LayerSpec, UpsamplerSpec
from .rows import BASELINE, LAYOUTS, MEASURED, TORCH_IMPLS, base_row, layout_of, make_inputs, ours, progress


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
                     deterministic=cudnn.deterministic, allow_tf32=cudnn.allow_tf32):  # fmt: skip
        yield


def torch_chain(spec: LayerSpec) -> Callable:
    """What a user runs today: torch's conv (``F.conv_transpose{1,2,3}d``: cuDNN on a GPU, bias included) then the
    eager activation."""
    conv = checking.TORCH_CONV_TRANSPOSE[spec.ndim]

    def chain(x, w, b):
        return apply_torch(conv(x, w, b, *spec.conv_args), spec.activation, 0.01)

    return chain


def implementations(spec: LayerSpec, x, w, b, names: Iterable[str] | None = None) -> list[Impl]:
    """The report's implementations of ``spec`` on these operands (only ``names`` if given; FlagGems only if it is
    installed). ``torch.compile`` is reset first so that each layer compiles afresh instead of hitting dynamo's
    recompile limit."""
    conv_transpose = ours(spec)
    chain = torch_chain(spec)
    makers = {
        "triton_convt": lambda: Impl(
            "triton_convt", lambda: conv_transpose(x, w, b, *spec.conv_args, activation=spec.activation)
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
    moved = workmodel.spec_traffic(spec, itemsize)
    layout = layout_of(x)
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


def gpu_rows(
    specs: Iterable[LayerSpec],
    dtypes: list[str],
    device: str,
    timer=do_bench_timer,
    impl_names=None,
    show_progress=True,
) -> list[dict]:
    """Every layer x dtype x layout on ``device``, measured by :func:`measure_case`."""
    name = torch.cuda.get_device_name(device) if torch.device(device).type == "cuda" else str(device)
    cases = [(s, d, l) for s in specs for d in dtypes for l in LAYOUTS]
    rows = []
    for spec, dtype, layout in progress(cases, "measure", show_progress):
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


def upsampler_implementations(spec: UpsamplerSpec, x, w, b) -> list[Impl]:
    """Ways to compute a nearest-upsample + conv layer: triton_convt's fold + one launch; what users run today
    (``F.interpolate`` then cuDNN's ``F.conv2d``); and the serving-stack rewrite, the folded weight (computed once,
    outside the timing) through cuDNN's ``F.conv_transpose2d``."""
    from ...launch.upsample_conv_fwd import fold_weight
    from ...launch.upsample_shapes import UpsampleConvParams

    params = UpsampleConvParams(spec.scale, tuple((p, p) for p in spec.padding), (1, 1), 1, spec.kernel)
    t = params.transposed(tuple(x.shape[2:]))
    folded = fold_weight(w, params)
    return [
        Impl("triton_convt", lambda: upsample_conv2d(x, w, b, spec.scale, spec.padding)),
        Impl(
            BASELINE, lambda: F.conv2d(F.interpolate(x, scale_factor=spec.scale, mode="nearest"), w, b, 1, spec.padding)
        ),
        Impl(
            "cudnn_folded_conv_transpose",
            lambda: F.conv_transpose2d(x, folded, b, t.stride, t.padding, t.output_padding),
        ),
    ]


def upsampler_rows(specs: Iterable[UpsamplerSpec], dtypes: list[str], device: str, timer=do_bench_timer) -> list[dict]:
    """Every nearest-upsample + conv layer x dtype x layout: each implementation checked against the fp64
    composition, then timed with ``timer``; speedups against interpolate + cuDNN conv2d."""
    name = torch.cuda.get_device_name(device) if torch.device(device).type == "cuda" else str(device)
    rows = []
    for spec in specs:
        for dtype in dtypes:
            for layout in LAYOUTS:
                fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
                x = torch.randn(spec.n, spec.c_in, *spec.hw, dtype=getattr(torch, dtype), device=device)
                x = x.contiguous(memory_format=fmt)
                w = torch.randn(spec.c_out, spec.c_in, *spec.kernel, dtype=x.dtype, device=device)
                b = torch.randn(spec.c_out, dtype=x.dtype, device=device) if spec.bias else None
                u = F.interpolate(x.double(), scale_factor=spec.scale, mode="nearest")
                ref = F.conv2d(u, w.double(), None if b is None else b.double(), 1, spec.padding)
                tol = checking.tolerance(x.dtype, x.device)
                moved = workmodel.upsampler_work(spec, x.element_size())
                shape = (
                    f"{spec.n}x{spec.c_in}x{spec.hw[0]}x{spec.hw[1]} -> {spec.c_out}, "
                    f"nearest x{spec.scale} k{spec.kernel}"
                )
                for impl in upsampler_implementations(spec, x, w, b):
                    row = dict(kind=MEASURED, device=name, layer=spec.name, dtype=dtype, layout=layout,
                               impl=impl.name, shape=shape, activation="none", flops=2 * moved["chain_macs"],
                               bytes=moved["fused_bytes"], tolerance=tol)  # fmt: skip
                    error = _error_of(impl.fn, ref, row)
                    row.update(max_rel_error=error, ok=error <= tol)
                    if row["ok"]:
                        row["median_ms"], row["q20_ms"], row["q80_ms"] = timer(impl.fn)
                    rows.append(row)
                base = next((r.get("median_ms") for r in rows[-3:] if r["impl"] == BASELINE), None)
                for row in rows[-3:]:
                    if base and row.get("median_ms"):
                        row["speedup_vs_cudnn"] = base / row["median_ms"]
    return rows


def write_upsampler_rows(rows: list[dict], out: str) -> str:
    """:func:`upsampler_rows` as ``upsamplers.csv`` in ``out`` (the report's columns); returns the file name."""
    import csv
    import os

    from .rows import COLUMNS

    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "upsamplers.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return "upsamplers.csv"
