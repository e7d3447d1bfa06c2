"""``triton-convt-report``: the perf report, on a GPU (measured) or on a CPU (interpreter checks, model, static
profile).

On a CUDA GPU every layer of :mod:`triton_convt.tools.layers` x dtype x layout is checked and timed against cuDNN
and ``torch.compile`` into ``perf_reports/<gpu>/`` (:mod:`.gpu`); without one, the CPU evidence and the model go to
``perf_reports/cpu/`` (:mod:`.cpu`). :mod:`.render` writes the CSV, JSON, plots and summary.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

from ...launch import configs
from .. import layers, workmodel
from ..cli import arch, ensure_runnable
from .cpu import check_rows, cpu_environment, layer_dtypes, machine, model_rows, start_static_profile, static_profile
from .gpu import gpu_environment, gpu_rows, upsampler_rows, write_upsampler_rows
from .render import check_error_lines, read_csv, render, summary_lines, write_results
from .rows import DTYPES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="triton-convt-report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="output directory (default perf_reports/<gpu> or perf_reports/cpu)")
    parser.add_argument("--layers", nargs="+", metavar="NAME", choices=[s.name for s in layers.load()],
                        help="only these layers (names in triton_convt/tools/layers.json)")  # fmt: skip
    parser.add_argument("--dtypes", nargs="+", choices=DTYPES, default=list(DTYPES))
    parser.add_argument("--from-csv", help="re-render plots and summary.md from this results.csv (into --out, "
                        "default its directory); runs nothing")  # fmt: skip
    parser.add_argument("--only", action="append", choices=("check", "model", "profile"),
                        help="without a GPU: only these parts (repeatable; default all three)")  # fmt: skip
    parser.add_argument("--arch", type=arch, action="append",
                        help="static profile targets: sm80, sm90, gfx942 (default sm80 and sm90)")  # fmt: skip
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="static profile compile processes (default: cores)")  # fmt: skip
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    show_progress = not args.no_progress

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
        static_profile(os.path.join(args.out or "perf_reports/cpu", "profile"), archs, args.dtypes, args.jobs,
                       args.layers)  # fmt: skip
        return 0

    if torch.cuda.is_available():
        meta = gpu_environment("cuda")
        out = args.out or os.path.join("perf_reports", configs.slug(meta["gpu"]))
        rows = gpu_rows(specs, args.dtypes, "cuda", show_progress=show_progress)
        written = write_results(rows, out, meta, None)
        # The nearest-upsample + conv layers have other columns' meaning (their own baseline): a file of their own.
        ups = upsampler_rows(layers.load_upsamplers(), args.dtypes, "cuda")
        written.append(write_upsampler_rows(ups, out))
        print(f"wrote {', '.join(written)} into {out}")
        return 0 if all(r["ok"] for r in rows + ups) else 1

    ensure_runnable("triton_convt.tools.report")  # re-executes under the interpreter when "check" needs it
    out = args.out or os.path.join("perf_reports", "cpu")
    os.makedirs(out, exist_ok=True)
    start = time.monotonic()
    child = start_static_profile(out, archs, args.dtypes, args.jobs, args.layers) if "profile" in parts else None
    rows = []
    if "check" in parts:
        rows += check_rows(specs, args.dtypes, show_progress)
    profile, status = None, 0
    if child:
        if show_progress:
            print("waiting for the static profile (compiles every shipped forward config) ...", file=sys.stderr)
        _, stderr = child.communicate()
        path = os.path.join(out, "profile", "profile.json")
        if child.returncode or not os.path.exists(path):
            print(f"static profile failed:\n{stderr[-3000:]}", file=sys.stderr)
            status = 1
        else:
            profile = json.load(open(path))
            status = int(any("error" in r for r in profile["builds"]))
    if "model" in parts:
        # The issue term reads the layers' builds: the static profile's, or (without it) compiled here for the model.
        if profile is not None:
            readings = workmodel.readings_of(profile["builds"])
        else:
            cuda = tuple(a for a in archs if isinstance(a, int))
            readings = workmodel.sass_readings([s.name for s in specs], cuda, tuple(layer_dtypes(args.dtypes)),
                                               args.jobs)  # fmt: skip
        rows += model_rows(specs, args.dtypes, readings)
    # Nothing run-dependent goes into the files (a rerun on an unchanged tree, on this machine or another, leaves
    # them as they were): the run time, the machine and the checks' errors are printed only.
    meta = cpu_environment() | {"layers": len(specs), "dtypes": args.dtypes, "parts": parts}
    written = write_results(rows, out, meta, profile)
    print(f"wrote {', '.join(written)} into {out} in {time.monotonic() - start:.1f} s on {machine()}")
    print("\n".join(check_error_lines(rows) + summary_lines(rows, {}, {}, profile)[2:]))
    return status or int(not all(r["ok"] for r in rows if "ok" in r))


if __name__ == "__main__":
    raise SystemExit(main())
