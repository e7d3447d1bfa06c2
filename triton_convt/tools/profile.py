"""Static profile: compile every shipped config of every kernel for real GPUs, without a GPU, and report the code.

``triton-convt-profile --arch sm90 --arch sm80 --arch gfx942 --out DIR`` builds, for each config of each kernel key
of each file in ``autotune_configs/`` meant for the target (``smXY.json`` for sm_XY, ``gfx942.json`` for gfx942;
``default.json`` and device-named files for every target), each dtype of its class and both memory layouts (fp32's
two ``tl.dot`` precisions only for the kernels with a ``tl.dot``: :func:`.samples.dtype_variants`), the launch of
:data:`.samples.SAMPLE_PLANS` with that config, and records, for CUDA, registers, spill bytes (stack +
local), local-memory instructions, shared memory (and the pruning estimate), tensor-core instructions, 128-bit
global loads and async copies, and the hot loop read from the SASS (:mod:`.hotloop`: per iteration of the
tensor-core loop, tensor-core and all instructions, scalar and vector global loads, cp.async and TMA loads, the
number of tensor-core loops, sm_90's wgmma wait depth, and the ratio of non-tensor-core instructions per
tensor-core instruction to Triton's matmul tutorial loop at the same tile, warps, stages and arch,
:mod:`.reference_gemm`; each record names its cubin, key ``cubin``); for AMD, VGPRs (AGPRs among them), SGPRs,
VGPR and SGPR spill counts, scratch bytes, occupancy, LDS (and the estimate), matrix-core (``v_mfma``)
instructions and 128-bit loads. It writes ``profile.json``, ``profile.md`` (one table per family) and the code
(cubins, ``.amdgcn`` assembly) into DIR and prints the tables; every recorded figure is a property of the compiled
code, so a rerun with the same compiler writes the same files (the run time is printed only).
``--picked`` builds instead the forward kernel with the config the launcher picks for the sample problem, in each
dtype and layout (named by the config key the layout takes), and its int64 index path, conv2d + pixel_shuffle's
launch likewise, and the forward on the 1-D and 3-D sample problems (:func:`nd_builds`, fp16, both layouts, reported
but not gated). ``--layers [NAME ...]``
builds instead the forward kernel on layers of the report's set at their full size (:func:`layer_builds`: all of
them without a name), with the config each target's file gives untuned: the builds whose hot loops the work model's
issue term reads (:func:`.workmodel.issue_seconds`), the narrow layers' narrow tiles among them; reported, not gated.
``--one-per-kernel`` builds one shipped config per kernel and arch (:func:`one_per_kernel`): the test suite's quick
check that every kernel compiles for every target.

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
import time
import traceback
from concurrent.futures import ProcessPoolExecutor

import torch
import triton

from ..launch import configs
from ..launch.phase_gemm import NCHW_SUFFIX
from . import aot, hotloop, layers, reference_gemm, samples, workcount
from .cli import arch, arch_name, is_cuda, refuse_interpreter

#: Columns both tables start with: (header, function of a record).
_BUILD = (
    ("arch", lambda r: arch_name(r["arch"])),
    ("kernel", lambda r: r["kernel"]),
    ("dtype", lambda r: r["dtype"] + ("" if r["precision"] == "ieee" else f" ({r['precision']})")),
    (
        "layout",
        lambda r: (
            r["layout"]
            + (" (int64)" if r.get("index") == "int64" else "")
            + (f" [{r['sample']}]" if r.get("sample") else "")
            + (f" [layer {r['layer']}]" if r.get("layer") else "")
        ),
    ),
    ("config", lambda r: config_name(r["config"]) if "config" in r else "?"),
    ("files", lambda r: ",".join(r["targets"])),
)


def _shared(r: dict) -> str:
    """Shared memory (LDS on AMD) in KB, with the pruning estimate in parentheses."""
    return f"{r['shared_bytes'] / 1024:.0f} ({r['shared_estimate'] / 1024:.0f})" if "shared_bytes" in r else ""


def _blank(value) -> str:
    """A figure as table text: ``None`` (not applicable) as an empty cell."""
    return "" if value is None else str(value)


_ERROR = ("error", lambda r: r.get("error", "").strip().splitlines()[-1] if r.get("error") else "")

#: Columns of the CUDA table.
COLUMNS = (
    *_BUILD,
    ("regs", lambda r: r.get("registers", "")),
    ("spill B", lambda r: r.get("spill_bytes", "")),
    ("LDL/STL", lambda r: r.get("local_memory_instructions", "")),
    ("smem KB (est.)", _shared),
    ("tensor-core", lambda r: r.get("tensor_core_instructions", "")),
    ("ld.v4", lambda r: r.get("vector_global_loads", "")),
    ("cp.async", lambda r: r.get("async_copies", "")),
    ("MMA/it", lambda r: _blank(r.get("hot_tensor_core"))),
    ("instr/it", lambda r: _blank(r.get("hot_instructions"))),
    (
        "LDG scalar/vector",
        lambda r: f"{r['hot_scalar_loads']}/{r['hot_vector_loads']}" if r.get("hot_tensor_core") else "",
    ),
    ("LDGSTS", lambda r: _blank(r.get("hot_ldgsts"))),
    ("UTMALDG", lambda r: _blank(r.get("hot_utmaldg"))),
    ("MMA loops", lambda r: _blank(r.get("mma_loops"))),
    ("wgmma wait", lambda r: _blank(r.get("wgmma_wait"))),
    ("vs GEMM", lambda r: f"{r['reference_ratio']:.2f}" if r.get("reference_ratio") is not None else ""),
    _ERROR,
)

#: Columns of the AMD table: registers per lane of a 64-lane wavefront, spill counts (VGPR/SGPR) and scratch bytes
#: per lane, waves per SIMD, LDS, and the matrix-core instructions (count and kinds).
AMD_COLUMNS = (
    *_BUILD,
    ("VGPR (AGPR)", lambda r: f"{r['vgprs']} ({r['agprs']})" if "vgprs" in r else ""),
    ("SGPR", lambda r: r.get("sgprs", "")),
    ("spills V/S", lambda r: f"{r['vgpr_spills']}/{r['sgpr_spills']}" if "vgprs" in r else ""),
    ("scratch B", lambda r: r.get("scratch_bytes", "")),
    ("waves/SIMD", lambda r: r.get("occupancy", "")),
    ("LDS KB (est.)", _shared),
    ("v_mfma", lambda r: r.get("tensor_core_instructions", "")),
    ("MFMA kinds", lambda r: ", ".join(r.get("matrix_instructions", []))),
    ("dwordx4", lambda r: r.get("vector_global_loads", "")),
    _ERROR,
)


def config_name(config: dict) -> str:
    """A config as a short name: tile sizes joined by x, then warps and stages (``64x64x32-w4-s3``)."""
    blocks = "x".join(str(v) for k, v in config.items() if k.startswith("BLOCK"))
    return f"{blocks}-w{config['num_warps']}-s{config['num_stages']}"


def archs_of(target: str, kernel: str, archs: list[int | str]) -> list[int | str]:
    """The requested archs for which a config file's candidates of ``kernel`` are compiled: those where the launcher
    can run them. A target's own file (``smXY``, ``gfxNNN``) is compiled for that target only. ``default.json`` and
    device-named files serve the NVIDIA GPUs without a file of their own (sm_86, sm_89, ...), for which sm_80 and
    sm_90 stand in, so they are compiled for every CUDA target; on an AMD target the launcher takes
    ``default.json`` only for the kernels the target's own file does not list (:func:`configs.source`), and only
    those are compiled."""
    if re.fullmatch(r"sm\d+|gfx\w+", target):
        return [a for a in archs if arch_name(a) == target]
    return [a for a in archs if is_cuda(a) or configs.source(kernel, arch_name(a)) == target]


def shipped_builds(archs: list[int | str], dtypes: list[str] | None = None) -> tuple[list[dict], list[str]]:
    """Every distinct build of the shipped configs for ``archs`` (a config shipped by several files for one arch
    is built once, listing the files), and the kernel keys that have no sample plan to build."""
    builds: dict[str, dict] = {}
    missing = set()
    for target in configs.available_targets():
        data = configs.load(target)
        for kernel in configs.kernel_keys(data):
            if kernel not in samples.SAMPLE_PLANS:
                missing.add(kernel)
                continue
            for cls in data[kernel]:
                for config in configs.usable(target, kernel, cls):
                    for dtype, precision in samples.dtype_variants(kernel, cls):
                        name = str(dtype).split(".")[1]
                        if dtypes and name not in dtypes:
                            continue
                        for target_arch in archs_of(target, kernel, archs):
                            for layout in samples.layouts_of(kernel):
                                build = {"arch": target_arch, "kernel": kernel, "dtype": name, "precision": precision,
                                         "layout": layout, "config": config, "dtype_class": cls}  # fmt: skip
                                key = json.dumps(build, sort_keys=True)
                                builds.setdefault(key, {**build, "targets": []})["targets"].append(target)
    return list(builds.values()), sorted(missing)


def one_per_kernel(builds: list[dict]) -> list[dict]:
    """One of ``builds`` (:func:`shipped_builds`) per kernel and arch: a config of the file the launcher reads for
    that arch (:func:`configs.source`), in float16 and the kernel's first layout (channels_last where it serves it)
    where ``builds`` has one, else the first. The test suite's quick tier compiles these, so that every kernel is
    compiled for every target on every run; its full tier compiles every build."""

    def rank(b: dict) -> tuple[bool, bool, bool]:
        own_file = configs.source(b["kernel"], arch_name(b["arch"])) in b["targets"]
        return (not own_file, b["dtype"] != "float16", b["layout"] != samples.layouts_of(b["kernel"])[0])

    chosen: dict[tuple, dict] = {}
    for b in builds:
        key = (b["arch"], b["kernel"])
        if key not in chosen or rank(b) < rank(chosen[key]):
            chosen[key] = b
    return [b for b in builds if chosen[(b["arch"], b["kernel"])] is b]


def code_name(build: dict) -> str:
    """File name of a build's code in the output directory: its cubin (CUDA) or ``.amdgcn`` assembly (AMD)."""
    return (
        f"{build['kernel']}-{arch_name(build['arch'])}-{build['dtype']}-{build['precision']}-{build['layout']}-"
        f"{config_name(build['config']) if 'config' in build else 'picked'}"
        f"{'-int64' if build.get('index') == 'int64' else ''}{'-' + build['sample'] if build.get('sample') else ''}"
        f"{'-layer-' + build['layer'] if build.get('layer') else ''}.{'cubin' if is_cuda(build['arch']) else 'amdgcn'}"
    )


def run_build(build: dict, out: str) -> dict:
    """Compile one build, write its code (cubin or amdgcn) into ``out``, and return the build with its
    measurements (or the error, so that one failure does not hide the others); a CUDA build's SASS figures are
    added by :func:`.aot.read_sass`."""
    try:
        dtype = getattr(torch, build["dtype"])
        if build.get("layer"):  # a layer of the report's set, with the config its target's file gives
            plan = samples.layer_plan(layers.select([build["layer"]])[0], dtype, build["config"], build["precision"])
        elif build.get("sample"):  # a 1-D or 3-D sample problem, with the launcher's own choice
            plan = samples.ND_FORWARD_SAMPLES[build["sample"]](dtype, build["layout"], None, build["precision"])
        elif build.get("picked"):  # the launcher's own choice (and the index width the build names)
            make = samples.PICKED_PLANS[build["kernel"]]
            plan = make(dtype, build["layout"], None, build["precision"], index64=build["index"] == "int64")
        else:
            plan = samples.SAMPLE_PLANS[build["kernel"]](dtype, build["layout"], build["config"], build["precision"])
        record, code = aot.measure(plan, build["arch"], read_sass=False)  # read in batches: read_sass()
    except Exception:  # noqa: BLE001 - reported per build, and the command exits with 1
        return {**build, "error": traceback.format_exc(limit=3)}
    config = build.get("config") or samples.plan_config(plan)
    done = {**build, **record, "config": config,
            "shared_estimate": configs.shared_memory_estimate(config, build["dtype_class"])}  # fmt: skip
    with open(os.path.join(out, code_name(done)), "wb") as f:
        f.write(code)
    if is_cuda(build["arch"]):  # the cubin beside profile.json, for reading the SASS again (cuobjdump -sass)
        done["cubin"] = code_name(done)
    return done


def markdown(records: list[dict], missing: list[str]) -> str:
    """The profile as markdown: a table of the CUDA builds and one of the AMD builds (one row per build; a table
    only when it has rows), with the kernels left out named below them."""
    lines = [f"Static profile, triton {triton.__version__} (compiled without a GPU; no timing)"]
    for columns, rows in ((COLUMNS, [r for r in records if is_cuda(r["arch"])]),
                          (AMD_COLUMNS, [r for r in records if not is_cuda(r["arch"])])):  # fmt: skip
        if not rows:
            continue
        lines += ["", "| " + " | ".join(h for h, _ in columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(str(f(r)) for _, f in columns) + " |" for r in rows]
    if missing:
        lines += ["", f"Not built (no sample plan in triton_convt.samples.SAMPLE_PLANS): {', '.join(missing)}"]
    return "\n".join(lines)


def forward_key(layout: str) -> str:
    """The config key the forward launcher takes for an input in ``layout`` (its builds are named by it)."""
    return "conv_transpose2d_fwd" + (NCHW_SUFFIX if layout == "nchw" else "")


def picked_builds(
    archs: list[int | str], dtypes: list[str] | None = None, layouts: list[str] | None = None
) -> list[dict]:
    """The forward kernel's builds with the config the launcher picks for the sample problem, per dtype, fp32
    precision and layout (named by the config key the layout takes: :data:`.samples.PICKED_PLANS`, the transposed
    convolution's and conv2d + pixel_shuffle's launches on their sample problems), plus the int64 index path (fp16,
    channels_last), and the 1-D and 3-D sample problems (:func:`nd_builds`) in the layouts asked for, for
    ``archs``."""
    builds = []
    for cls, variants in samples.DTYPE_VARIANTS.items():
        for dtype, precision in variants:
            name = str(dtype).split(".")[1]
            for layout in samples.LAYOUTS:
                if (dtypes and name not in dtypes) or (layouts and layout not in layouts):
                    continue
                indices = ("int32", "int64") if (name, layout) == ("float16", "channels_last") else ("int32",)
                for kernel in samples.PICKED_PLANS:
                    if layout not in samples.layouts_of(kernel):
                        continue
                    for index in indices if kernel == "conv_transpose2d_fwd" else ("int32",):
                        for a in archs:
                            builds.append({"arch": a, "kernel": kernel, "dtype": name, "precision": precision,
                                           "layout": layout, "index": index, "picked": True, "dtype_class": cls,
                                           "targets": ["launcher pick"]})  # fmt: skip
    return builds + nd_builds(archs, dtypes, layouts)


#: The dtype the 1-D and 3-D sample problems are built in (the one a vocoder or a segmentation network runs).
ND_DTYPE = "float16"


def nd_builds(archs: list[int | str], dtypes: list[str] | None = None, layouts: list[str] | None = None) -> list[dict]:
    """The forward kernel's builds on the 1-D and 3-D sample problems (:data:`.samples.ND_FORWARD_SAMPLES`), fp16,
    with channels innermost and in NCL / NCDHW (``layouts``, default both), with the launcher's pick, for the CUDA
    ``archs`` (none unless ``dtypes`` allows fp16). Their records carry ``sample``, which keeps them out of the
    hot-loop gate (:func:`.hotloop.gated`): the gate holds the 2-D configs; these report how the same kernel does
    with unit axes removed and with three axes."""
    if dtypes and ND_DTYPE not in dtypes:
        return []
    return [{"arch": a, "kernel": forward_key(layout), "dtype": ND_DTYPE, "precision": "ieee", "layout": layout,
             "index": "int32", "picked": True, "sample": sample, "dtype_class": "16bit", "targets": ["launcher pick"]}
            for layout in samples.LAYOUTS if not layouts or layout in layouts
            for sample in samples.ND_FORWARD_SAMPLES for a in archs if is_cuda(a)]  # fmt: skip


#: The dtypes (and ``tl.dot`` precisions) the layer builds are compiled in: float16 stands for the 16-bit class
#: (bfloat16 compiles to the same tiles, registers and hot loop), float32 runs TF32 as on a GPU by default.
LAYER_DTYPES = (("float16", "ieee"), ("float32", "tf32"))


def layer_builds(archs: list[int | str], dtypes: list[str] | None = None, names: list[str] | None = None) -> list[dict]:
    """The forward kernel's builds on the GEMM layers of the report's set (``names``, all when None or empty; the
    depthwise layers run another kernel), at full size, channels innermost, for the CUDA ``archs``, in
    :data:`LAYER_DTYPES` (those ``dtypes`` allows), each with the config its target's file gives untuned
    (:func:`.workcount.launcher_config`: sm80.json for sm_80, sm90.json for sm_90). Their records carry ``layer``,
    which keeps them out of the hot-loop gate: a layer's build is judged by the layer's modelled time."""

    builds = []
    for spec in layers.select(names):
        if workcount.is_depthwise(spec.layer):
            continue
        for name, precision in LAYER_DTYPES:
            if dtypes and name not in dtypes:
                continue
            for a in archs:
                if not is_cuda(a):
                    continue
                target = configs.source(workcount.kernel_of(spec.layer), arch_name(a))
                config = workcount.launcher_config(spec.layer, getattr(torch, name), target)
                cls = configs.dtype_class(getattr(torch, name))
                builds.append({"arch": a, "kernel": "conv_transpose2d_fwd", "dtype": name, "precision": precision,
                               "layout": "channels_last", "layer": spec.name, "config": config,
                               "dtype_class": cls, "targets": [target]})  # fmt: skip
    return builds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="triton-convt-profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", type=arch, action="append", required=True, help="sm80, sm90 or gfx942 (repeatable)")
    parser.add_argument("--out", required=True,
                        help="directory for profile.json, profile.md and the code (cubins, .amdgcn)")  # fmt: skip
    parser.add_argument("--dtype", action="append", choices=("float16", "bfloat16", "float32", "float64"),
                        help="only these dtypes (repeatable)")  # fmt: skip
    parser.add_argument("--layout", action="append", choices=samples.LAYOUTS, help="only these layouts (repeatable)")
    parser.add_argument("--picked", action="store_true",
                        help="build only the forward kernel with the launcher's pick for the sample problem, and its "
                        "int64 index path")  # fmt: skip
    parser.add_argument("--layers", nargs="*", metavar="NAME",
                        help="build only the forward kernel on these layers of the report's set (all without a "
                        "name), full size, with each target file's untuned pick (the work model's issue term reads "
                        "them)")  # fmt: skip
    parser.add_argument("--one-per-kernel", action="store_true",
                        help="build one shipped config per kernel and arch (float16, the file the launcher reads): "
                        "every kernel compiled for every target, quickly")  # fmt: skip
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="compile processes (default: cores)")
    parser.add_argument("--no-reference", action="store_true",
                        help="do not compile the reference GEMMs (no 'vs GEMM' ratio, and no gate)")  # fmt: skip
    args = parser.parse_args(argv)
    refused = refuse_interpreter(parser.prog)
    if refused:
        return refused
    os.makedirs(args.out, exist_ok=True)
    start = time.monotonic()
    if args.layers is not None:
        builds, missing = layer_builds(args.arch, args.dtype, args.layers), []
    elif args.picked:
        builds, missing = picked_builds(args.arch, args.dtype, args.layout), []
    else:
        builds, missing = shipped_builds(args.arch, args.dtype)
        builds = [b for b in builds if not args.layout or b["layout"] in args.layout]
        if args.one_per_kernel:
            builds = one_per_kernel(builds)
    records = compile_builds(builds, args.out, args.jobs, references=not args.no_reference)
    with open(os.path.join(args.out, "profile.json"), "w") as f:
        data = {"triton": triton.__version__, "archs": args.arch, "missing": missing, "builds": records}
        json.dump(data, f, indent=1)
    table = markdown(records, missing)
    with open(os.path.join(args.out, "profile.md"), "w") as f:
        f.write(table + "\n")
    print(table)
    print(f"\n{len(records)} builds in {time.monotonic() - start:.1f} s", file=sys.stderr)
    failed = [r for r in records if "error" in r]
    for r in failed:
        print(f"\nbuild failed: {code_name(r)}\n{r['error']}", file=sys.stderr)
    for violation in [] if args.no_reference else hotloop.gate(records):  # the CI rule (tests/test_profile.py)
        print(f"hot-loop gate: {violation}", file=sys.stderr)
    if missing:
        print(f"no sample plan for kernel keys {missing}: register them in triton_convt.tools.samples.SAMPLE_PLANS",
              file=sys.stderr)  # fmt: skip
    return 1 if failed or missing else 0


def compile_builds(builds: list[dict], out: str, jobs: int, references: bool = True) -> list[dict]:
    """:func:`run_build` for each build, in ``jobs`` processes, code files into ``out``, and their SASS read in
    batches (:func:`.aot.read_sass`); then (unless not ``references``) the reference GEMM of each distinct tile, warps,
    stages, arch, dtype and precision among the CUDA builds with a tensor-core loop, compiled once each, and every
    such build's ratio to it (:func:`.reference_gemm.attach`)."""
    jobs = max(1, jobs)
    # fork: the workers inherit the imported modules instead of importing torch and triton again.
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork")) as pool:
        records = aot.read_sass(list(pool.map(run_build, builds, [out] * len(builds))), out, pool, jobs)
        if not references:
            return records
        keys = sorted({k for k in map(reference_gemm.key_of, records) if k is not None}, key=str)
        references = reference_gemm.read_keys(dict(zip(keys, pool.map(reference_gemm.compile_key, keys))))
    return reference_gemm.attach(records, references)


if __name__ == "__main__":
    raise SystemExit(main())
