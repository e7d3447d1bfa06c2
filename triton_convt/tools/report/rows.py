"""What every part of the report shares: the row vocabulary (kinds, columns, implementations), the layer's call as
text, its operands, and progress bars."""

from __future__ import annotations

import sys

import torch

from ..layers import LayerSpec

DTYPES = ("bfloat16", "float16", "float32")
LAYOUTS = ("nchw", "channels_last")
#: The forward kernel: the report compares forward passes, so the static profile builds its configs only.
FORWARD = "conv_transpose2d_fwd"
#: The implementation every speedup is taken against: what a user runs today with torch's defaults.
BASELINE = "cudnn"

#: The CSV's columns, in order (perf_reports/README.md explains each). A row fills the ones its kind has.
COLUMNS = (
    "kind", "device", "layer", "dtype", "layout", "impl", "shape", "activation",
    "flops", "bytes", "median_ms", "q20_ms", "q80_ms", "tflops", "gbps", "speedup_vs_cudnn",
    "speedup_vs_best_torch", "max_rel_error", "tolerance", "ok",
    "intensity", "peak_tflops", "peak_gbps", "model_ms", "model_tflops", "bound", "fused_bytes",
    "unfused_bytes", "config", "issued_over_useful", "kernel_model_ms", "kernel_bound", "nvidia_model_ms", "error",
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


def base_row(kind: str, device: str, spec: LayerSpec, dtype: str, layout: str, impl: str) -> dict:
    """The identifying columns of a row."""
    return dict(kind=kind, device=device, layer=spec.name, dtype=dtype, layout=layout, impl=impl,
                shape=describe(spec), activation=spec.activation or "none")  # fmt: skip


def progress(items: list, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="case", disable=not enabled, file=sys.stderr)
