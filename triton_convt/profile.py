"""Static profile: compile every shipped config of every kernel for real GPUs, without a GPU, and report the code.

``python -m triton_convt.profile --arch sm90 --arch sm80 --out DIR`` builds, for each config of each kernel key of
each file in ``autotune_configs/`` meant for the target (``smXY.json`` for sm_XY; ``default.json`` and device-named
files for every target), each dtype of its class and both memory layouts, the launch of
:data:`triton_convt.aot.SAMPLE_PLANS` with that config, and records registers, spill bytes (stack + local),
local-memory instructions, shared memory (and the pruning estimate), tensor-core instructions, 128-bit global
loads, async copies and compile seconds. It writes ``profile.json``, ``profile.md`` and the cubins into DIR and
prints the table. Compile seconds depend on Triton's cache (``TRITON_CACHE_DIR``): a warm cache compiles nothing.

It exits with 1 when a build fails or a kernel key has no sample plan, so nothing shipped goes unchecked; the
tests (``tests/test_profile.py``) assert the numbers. Must run without ``TRITON_INTERPRET``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import sys
import traceback
from concurrent.futures import ProcessPoolExecutor

import torch
import triton

from . import aot, configs

#: Columns of the markdown table: (header, function of a record).
COLUMNS = (
    ("arch", lambda r: f"sm_{r['arch']}"),
    ("kernel", lambda r: r["kernel"]),
    ("dtype", lambda r: r["dtype"] + ("" if r["precision"] == "ieee" else f" ({r['precision']})")),
    ("layout", lambda r: r["layout"]),
    ("config", lambda r: config_name(r["config"])),
    ("files", lambda r: ",".join(r["targets"])),
    ("regs", lambda r: r.get("registers", "")),
    ("spill B", lambda r: r.get("spill_bytes", "")),
    ("LDL/STL", lambda r: r.get("local_memory_instructions", "")),
    ("smem KB (est.)", lambda r: f"{r['shared_bytes'] / 1024:.0f} ({r['shared_estimate'] / 1024:.0f})" if "shared_bytes" in r else ""),
    ("tensor-core", lambda r: r.get("tensor_core_instructions", "")),
    ("ld.v4", lambda r: r.get("vector_global_loads", "")),
    ("cp.async", lambda r: r.get("async_copies", "")),
    ("compile s", lambda r: r.get("compile_seconds", r.get("error", ""))),
)


def config_name(config: dict) -> str:
    """A config as a short name: tile sizes joined by x, then warps and stages (``64x64x32-w4-s3``)."""
    blocks = "x".join(str(v) for k, v in config.items() if k.startswith("BLOCK"))
    return f"{blocks}-w{config['num_warps']}-s{config['num_stages']}"


def archs_of(target: str, archs: list[int]) -> list[int]:
    """The requested archs a config file is compiled for: ``smXY`` only for sm_XY, any other file for all."""
    family = re.fullmatch(r"sm(\d+)", target)
    return [a for a in archs if a == int(family.group(1))] if family else list(archs)


def shipped_builds(archs: list[int], dtypes: list[str] | None = None) -> tuple[list[dict], list[str]]:
    """Every distinct build of the shipped configs for ``archs`` (a config shipped by several files for one arch
    is built once, listing the files), and the kernel keys that have no sample plan to build."""
    builds: dict[str, dict] = {}
    missing = set()
    for target in configs.available_targets():
        data = configs.load(target)
        for kernel in configs.kernel_keys(data):
            if kernel not in aot.SAMPLE_PLANS:
                missing.add(kernel)
                continue
            for cls, candidates in data[kernel].items():
                for config in candidates:
                    for dtype, precision in aot.DTYPE_VARIANTS[cls]:
                        name = str(dtype).split(".")[1]
                        if dtypes and name not in dtypes:
                            continue
                        for arch in archs_of(target, archs):
                            for layout in aot.LAYOUTS:
                                build = {"arch": arch, "kernel": kernel, "dtype": name, "precision": precision,
                                         "layout": layout, "config": config, "dtype_class": cls}  # fmt: skip
                                key = json.dumps(build, sort_keys=True)
                                builds.setdefault(key, {**build, "targets": []})["targets"].append(target)
    return list(builds.values()), sorted(missing)


def cubin_name(build: dict) -> str:
    """File name of a build's cubin in the output directory."""
    return (
        f"{build['kernel']}-sm{build['arch']}-{build['dtype']}-{build['precision']}-{build['layout']}-"
        f"{config_name(build['config'])}.cubin"
    )


def run_build(build: dict, out: str) -> dict:
    """Compile one build, write its cubin into ``out``, and return the build with its measurements (or the
    error, so that one failure does not hide the others)."""
    try:
        plan = aot.SAMPLE_PLANS[build["kernel"]](getattr(torch, build["dtype"]), build["layout"], build["config"],
                                                 build["precision"])  # fmt: skip
        record, cubin = aot.measure(plan, build["arch"])
    except Exception:  # noqa: BLE001 - reported per build, and the command exits with 1
        return {**build, "error": traceback.format_exc(limit=3)}
    with open(os.path.join(out, cubin_name(build)), "wb") as f:
        f.write(cubin)
    return {**build, **record, "shared_estimate": configs.shared_memory_estimate(build["config"], build["dtype_class"])}


def markdown(records: list[dict], missing: list[str]) -> str:
    """The profile as a markdown table (one row per build), with the kernels left out named below it."""
    lines = [
        f"Static profile, triton {triton.__version__} (compiled without a GPU; no timing)",
        "",
        "| " + " | ".join(h for h, _ in COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    lines += ["| " + " | ".join(str(f(r)) for _, f in COLUMNS) + " |" for r in records]
    if missing:
        lines += ["", f"Not built (no sample plan in triton_convt.aot.SAMPLE_PLANS): {', '.join(missing)}"]
    return "\n".join(lines)


def _arch(text: str) -> int:
    """``sm90`` / ``sm_90`` / ``90`` -> 90."""
    match = re.fullmatch(r"(?:sm_?)?(\d+)", text)
    if not match or int(match.group(1)) not in aot.TENSOR_CORE_PTX:
        raise argparse.ArgumentTypeError(f"unsupported arch {text!r}; choose from sm80, sm90")
    return int(match.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", type=_arch, action="append", required=True, help="sm80 or sm90 (repeatable)")
    parser.add_argument("--out", required=True, help="directory for profile.json, profile.md and the cubins")
    parser.add_argument("--dtype", action="append", help="only these dtypes (float16, bfloat16, float32, float64)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="compile processes (default: cores)")
    args = parser.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET") == "1":
        print("triton_convt.profile: unset TRITON_INTERPRET; interpreted kernels cannot be compiled", file=sys.stderr)
        return 2
    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")  # triton warns when it is unset
    os.makedirs(args.out, exist_ok=True)
    builds, missing = shipped_builds(args.arch, args.dtype)
    # fork: the workers inherit the imported modules instead of importing torch and triton again.
    with ProcessPoolExecutor(max(1, args.jobs), mp_context=multiprocessing.get_context("fork")) as pool:
        records = list(pool.map(run_build, builds, [args.out] * len(builds)))
    with open(os.path.join(args.out, "profile.json"), "w") as f:
        json.dump({"triton": triton.__version__, "archs": args.arch, "missing": missing, "builds": records}, f, indent=1)
    table = markdown(records, missing)
    with open(os.path.join(args.out, "profile.md"), "w") as f:
        f.write(table + "\n")
    print(table)
    failed = [r for r in records if "error" in r]
    for r in failed:
        print(f"\nbuild failed: {cubin_name(r)}\n{r['error']}", file=sys.stderr)
    if missing:
        print(f"no sample plan for kernel keys {missing}: register them in triton_convt.aot.SAMPLE_PLANS",
              file=sys.stderr)  # fmt: skip
    return 1 if failed or missing else 0


if __name__ == "__main__":
    raise SystemExit(main())
