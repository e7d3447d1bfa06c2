"""Tune the forward kernel's configs on a GPU for the report's layer set and write the winners back.

``python -m triton_convt.tune [--dtype float16 ...]`` (CUDA GPU required). For each layer of
:data:`triton_convt.workmodel.LAYERS`, each dtype and both layouts, every candidate of the device's config file
that fits the problem and the device (:func:`triton_convt.configs.prune`) is run once and checked against torch,
then benchmarked with ``triton.autotune`` (:func:`triton_convt.configs.autotune_plans`). The file
(``autotune_configs/sm<major><minor>.json``, created from ``default.json``'s candidates if the capability has
none) is rewritten with the winners first, most wins first (:func:`merge_winners`); the other candidates stay
after them and every other kernel's entry is kept as it was. Without a GPU it exits with status 2 and says so.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
from importlib import resources

import torch
import torch.nn.functional as F

from . import configs, workmodel
from .launcher import allocate_output, forward_plan
from .validation import check_call

KERNEL = "conv_transpose2d_fwd"


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


def layer_tensors(layer: workmodel.Layer, dtype: torch.dtype, layout: str, device: str):
    """Random input, weight and bias of ``layer`` on ``device``, the input in ``layout``."""
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    x = torch.randn(layer.n, layer.c_in, *layer.hw, dtype=dtype, device=device).to(memory_format=fmt)
    w = torch.randn(layer.c_in, layer.c_out_g, *layer.kernel, dtype=dtype, device=device)
    b = torch.randn(layer.c_out, dtype=dtype, device=device)
    return x, w, b


def tune_layer(layer: workmodel.Layer, dtype: torch.dtype, layout: str, target: str, shared_limit: int) -> dict:
    """The fastest correct candidate of ``target``'s file for one layer, dtype and layout (on the current GPU)."""
    x, w, b = layer_tensors(layer, dtype, layout, "cuda")
    params = check_call(x, w, b, layer.stride, layer.padding, layer.output_padding, layer.groups, layer.dilation)
    y = allocate_output(x, w, params)
    cls = configs.dtype_class(dtype)
    candidates = configs.prune(configs.load(target)[KERNEL][cls], cls, workmodel.problem_sizes(layer), shared_limit)
    reference = F.conv_transpose2d(x.double(), w.double(), b.double(), layer.stride, layer.padding,
                                   layer.output_padding, layer.groups, layer.dilation)  # fmt: skip
    from .checking import tolerance  # the shared tolerances (TF32 on a GPU included)

    tol, scale = tolerance(dtype, x.device), max(1.0, reference.abs().max().item())
    correct = []
    for config in candidates:
        plan = forward_plan(x, w, b, y, params, config=config)
        plan.launch()
        if torch.allclose(y.double(), reference, rtol=tol, atol=tol * scale):
            correct.append((config, plan))
        else:
            print(f"  {layer.name} {layout}: config {config} gives a wrong result; not a candidate", file=sys.stderr)
    if not correct:
        raise RuntimeError(f"no correct {KERNEL} config for {layer.name} ({dtype}, {layout})")
    best = configs.autotune_plans([plan for _, plan in correct]) if len(correct) > 1 else 0
    return correct[best][0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dtype", action="append", choices=("float16", "bfloat16", "float32", "float64"),
                        help="dtypes to tune (default: float16 and float32)")  # fmt: skip
    parser.add_argument("--configs", default=str(resources.files(configs.PACKAGE)),
                        help="directory of the config files to rewrite (default: the package's autotune_configs)")  # fmt: skip
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("triton_convt.tune: no CUDA GPU (torch.cuda.is_available() is False); tuning needs one. Nothing was "
              "tuned and no file was changed.", file=sys.stderr)  # fmt: skip
        return 2
    capability, name, shared_limit = configs.device_limits(torch.device("cuda"))
    target = f"sm{capability[0]}{capability[1]}"
    source = target if target in configs.available_targets() else "default"
    data = configs.load(source)
    if source != target:  # a new file for this capability, from default's candidates for this kernel only
        data = {"triton": data["triton"], "target": target, "about": f"Tuned on {name}.", KERNEL: data[KERNEL]}
    for dtype_name in args.dtype or ["float16", "float32"]:
        dtype = getattr(torch, dtype_name)
        winners = []
        for layer in workmodel.LAYERS:
            for layout in ("channels_last", "nchw"):
                winners.append(tune_layer(layer, dtype, layout, source, shared_limit))
                print(f"{layer.name} {dtype_name} {layout}: {winners[-1]}")
        data = merge_winners(data, KERNEL, configs.dtype_class(dtype), winners)
    # A string, not a dict: every dict entry of a config file is a kernel key.
    data["tuned_on"] = f"{name}, torch {torch.__version__}, layers {', '.join(l.name for l in workmodel.LAYERS)}"
    path = os.path.join(args.configs, f"{target}.json")
    with open(path, "w") as f:
        f.write(configs.dumps(data))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
