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
    "unfused_bytes", "config", "issued_over_useful", "kernel_model_ms", "kernel_bound", "issue_ms", "meets_rule",
    "nvidia_model_ms", "error",
)  # fmt: skip
#: Columns that hold a bool (written ``True``/``False``; empty where the row's kind has none).
BOOL_COLUMNS = ("ok", "meets_rule")
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
    """The call as a short string: ``N x C_in x *spatial -> C_out x *spatial, k, s, p, op, g, d`` (a per-axis field
    with one value on every axis is written once)."""
    axes = lambda p: str(p[0]) if len(set(p)) == 1 else "x".join(map(str, p))  # noqa: E731
    size = lambda sizes: "".join(f"x{v}" for v in sizes)  # noqa: E731
    return (
        f"{spec.n}x{spec.c_in}{size(spec.hw)} -> {spec.c_out}{size(spec.output_hw)}"
        f" k{axes(spec.kernel)} s{axes(spec.stride)} p{axes(spec.padding)} op{axes(spec.output_padding)}"
        f" g{spec.groups} d{axes(spec.dilation)}"
    )


def channels_last(t: torch.Tensor) -> torch.Tensor:
    """``t`` (``(N, C, *spatial)``, 1 to 3 spatial axes) with channels innermost: channels_last for 2-D,
    channels_last_3d for 3-D, and for 1-D, which has no memory format of its own, an ``(N, L, C)`` tensor
    transposed (``stride(1) == 1``)."""
    if t.dim() == 3:
        return t.transpose(1, 2).contiguous().transpose(1, 2)
    return t.contiguous(memory_format=torch.channels_last if t.dim() == 4 else torch.channels_last_3d)


def layout_of(x: torch.Tensor) -> str:
    """``"channels_last"`` for an input with channels innermost that is not also contiguous, else ``"nchw"``."""
    return "channels_last" if x.stride(1) == 1 and x.shape[1] > 1 and not x.is_contiguous() else "nchw"


def make_inputs(spec: LayerSpec, dtype: torch.dtype, layout: str, device: str | torch.device):
    """Random input (in ``layout``: :func:`channels_last` or contiguous), weight and bias (None for a layer without
    one) of ``spec``."""
    x = torch.randn(spec.n, spec.c_in, *spec.hw, dtype=dtype, device=device)
    x = channels_last(x) if layout == "channels_last" else x
    w = torch.randn(spec.c_in, spec.c_out // spec.groups, *spec.kernel, dtype=dtype, device=device)
    b = torch.randn(spec.c_out, dtype=dtype, device=device) if spec.bias else None
    return x, w, b


def ours(spec: LayerSpec):
    """triton_convt's ``conv_transpose{1,2,3}d`` for the layer's number of spatial axes."""
    from ... import functional

    return getattr(functional, f"conv_transpose{spec.ndim}d")


def base_row(kind: str, device: str, spec: LayerSpec, dtype: str, layout: str, impl: str) -> dict:
    """The identifying columns of a row."""
    return dict(kind=kind, device=device, layer=spec.name, dtype=dtype, layout=layout, impl=impl,
                shape=describe(spec), activation=spec.activation or "none")  # fmt: skip


def progress(items: list, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="case", disable=not enabled, file=sys.stderr)
