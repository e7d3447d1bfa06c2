"""Tune the forward kernels' configs on a GPU for the report's layer set and write the winners back.

``triton-convt-tune [--dtype float16 ...]`` (CUDA GPU required). For each layer of
:data:`.workmodel.LAYERS`, each dtype and both layouts, the forward kernel the launcher runs for it
(the GEMM kernel, or the depthwise one for one input channel per group) is tuned: every candidate of the device's
config file that fits the problem and the device (:func:`triton_convt.launch.configs.prune`) is run once and checked
against torch, then benchmarked with ``triton.autotune`` (:func:`triton_convt.launch.configs.autotune_plans`). The file
(``autotune_configs/sm<major><minor>.json``, ``gfx942.json`` on an MI300; ``default.json``'s candidates for a kernel
the file does not list yet) is rewritten with the winners first, most wins first (:func:`merge_winners`); the other
candidates stay after them and every other kernel's entry is kept as it was. Without a GPU it exits with status 2
and says so.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
from importlib import resources

import torch

from ..functional.conv_transpose import check_call
from ..launch import configs
from ..launch.conv_transpose_fwd import allocate_output, plan
from . import workmodel
from .checking import tolerance, torch_conv_transpose
from .report.rows import channels_last


def merge_winners(data: dict, kernel: str, dtype_cls: str, winners: list[dict]) -> dict:
    """``data`` (a loaded config file) with ``kernel``'s ``dtype_cls`` list reordered: configs that won a layer
    first, by number of wins (ties: first win first), then the rest in their old order. Other entries are kept."""
    wins = collections.Counter(json.dumps(w, sort_keys=True) for w in winners)
    order = {}
    for w in winners:
        order.setdefault(json.dumps(w, sort_keys=True), w)
    ranked = sorted(order, key=lambda key: -wins[key])  # sorted() is stable: ties keep first-win order
    first = [order[key] for key in ranked]
    rest = [c for c in data[kernel][dtype_cls] if c not in first]
    return {**data, kernel: {**data[kernel], dtype_cls: first + rest}}


def merge_all(data: dict, dtype_cls: str, winners: dict[str, list[dict]]) -> dict:
    """:func:`merge_winners` for each kernel of ``winners`` (kernel key -> winners); a kernel the file does not
    list yet starts from ``default.json``'s candidates."""
    for kernel, won in winners.items():
        if kernel not in data:
            data = {**data, kernel: dict(configs.load("default")[kernel])}
        data = merge_winners(data, kernel, dtype_cls, won)
    return data


def layer_tensors(layer: workmodel.Layer, dtype: torch.dtype, layout: str, device: str):
    """Random input, weight and bias of ``layer`` (1 to 3 spatial axes) on ``device``, the input in ``layout``
    (:func:`.report.rows.channels_last` for ``"channels_last"``)."""
    x = torch.randn(layer.n, layer.c_in, *layer.hw, dtype=dtype, device=device)
    x = channels_last(x) if layout == "channels_last" else x
    w = torch.randn(layer.c_in, layer.c_out_g, *layer.kernel, dtype=dtype, device=device)
    b = torch.randn(layer.c_out, dtype=dtype, device=device)
    return x, w, b


def tune_layer(
    layer: workmodel.Layer,
    dtype: torch.dtype,
    layout: str,
    target: str,
    shared_limit: int,
    device: str = "cuda",
    benchmark=configs.autotune_plans,
) -> dict:
    """The fastest correct candidate of ``target``'s candidates for one layer, dtype and layout, for the kernel the
    launcher runs for it (:func:`.workmodel.kernel_of`; :func:`triton_convt.launch.configs.source` says which
    file lists it). ``device`` and ``benchmark`` are parameters for the tests."""
    x, w, b = layer_tensors(layer, dtype, layout, device)
    params = check_call(x, w, b, layer.stride, layer.padding, layer.output_padding, layer.groups, layer.dilation)
    y = allocate_output(x, w, params)
    cls, kernel = configs.dtype_class(dtype), workmodel.kernel_of(layer)
    listed = configs.usable(configs.source(kernel, target), kernel, cls)
    candidates = configs.prune(listed, cls, workmodel.problem_sizes(layer), shared_limit)
    reference = torch_conv_transpose(x)(x.double(), w.double(), b.double(), layer.stride, layer.padding,
                                        layer.output_padding, layer.groups, layer.dilation)  # fmt: skip
    tol, scale = tolerance(dtype, x.device), max(1.0, reference.abs().max().item())
    correct = []
    for config in candidates:
        launch = plan(x, w, b, y, params, config=config)
        launch.launch()
        if torch.allclose(y.double(), reference, rtol=tol, atol=tol * scale):
            correct.append((config, launch))
        else:
            print(f"  {layer.name} {layout}: config {config} gives a wrong result; not a candidate", file=sys.stderr)
    if not correct:
        raise RuntimeError(f"no correct {kernel} config for {layer.name} ({dtype}, {layout})")
    best = benchmark([launch for _, launch in correct]) if len(correct) > 1 else 0
    return correct[best][0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="triton-convt-tune", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dtype", action="append", choices=("float16", "bfloat16", "float32", "float64"),
                        help="dtypes to tune (default: float16 and float32)")  # fmt: skip
    parser.add_argument("--configs", default=str(resources.files(configs.PACKAGE)),
                        help="directory of the config files to rewrite (default: the package's "
                        "autotune_configs)")  # fmt: skip
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("triton-convt-tune: no CUDA GPU (torch.cuda.is_available() is False); tuning needs one. Nothing was "
              "tuned and no file was changed.", file=sys.stderr)  # fmt: skip
        return 2
    arch, name, shared_limit = configs.device_limits(torch.device("cuda"))
    target = configs.own_target(arch)  # sm90 on an H100, gfx942 on an MI300 (never a ROCm device's capability)
    source = target if target in configs.available_targets() else "default"
    data = configs.load(source)
    if source != target:  # a new file for this device family, with default's candidates of the kernels it tunes
        data = {"triton": data["triton"], "target": target, "about": f"Tuned on {name}."}
    for dtype_name in args.dtype or ["float16", "float32"]:
        dtype = getattr(torch, dtype_name)
        cls = configs.dtype_class(dtype)
        winners = collections.defaultdict(list)
        for layer in workmodel.LAYERS:
            for layout in ("channels_last", "nchw"):
                won = winners[workmodel.kernel_of(layer)]
                won.append(tune_layer(layer, dtype, layout, source, shared_limit))
                print(f"{layer.name} {dtype_name} {layout}: {won[-1]}")
        data = merge_all(data, cls, winners)
    # A string, not a dict: every dict entry of a config file is a kernel key.
    data["tuned_on"] = f"{name}, torch {torch.__version__}, layers {', '.join(l.name for l in workmodel.LAYERS)}"
    path = os.path.join(args.configs, f"{target}.json")
    with open(path, "w") as f:
        f.write(configs.dumps(data))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
