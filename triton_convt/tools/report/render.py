"""The report's files: ``results.csv`` (one tidy row per measurement, check or model figure), ``results.json``, the
PNG plots (:mod:`.plots`) and ``summary.md``. ``--from-csv`` renders the plots and summary again from a CSV
measured elsewhere. ``perf_reports/README.md`` explains every column and plot."""

from __future__ import annotations

import csv
import json
import os

from .. import hotloop, workmodel
from ..aot import spilled
from ..cli import arch_name
from . import plots
from .cpu import PEAKS
from .rows import BOOL_COLUMNS, CHECK, COLUMNS, FUSED, MEASURED, MODEL, TEXT_COLUMNS, UNFUSED


def file_row(row: dict) -> dict:
    """``row`` as the files hold it: an interpreter check that passed without its error, which differs from machine
    to machine in its last digits (the interpreter's fp32 ``tl.dot`` is numpy's matmul, whose BLAS sums in its own
    order), so that a rerun of the CPU report on any machine writes the same bytes. Its tolerance and ``ok`` stay; a
    failed check keeps its error (:func:`check_error_lines` prints the errors of every run)."""
    if row.get("kind") == CHECK and row.get("ok"):
        return {k: v for k, v in row.items() if k != "max_rel_error"}
    return row


def check_error_lines(rows: list[dict]) -> list[str]:
    """The interpreter checks' worst error over tolerance per dtype, for the console (never for the files: see
    :func:`file_row`)."""
    checks = [r for r in rows if r["kind"] == CHECK and "max_rel_error" in r]
    worst = {}
    for r in checks:
        worst[r["dtype"]] = max(worst.get(r["dtype"], 0.0), r["max_rel_error"] / r["tolerance"])
    if not worst:
        return []
    return ["Interpreter checks, worst error over tolerance on this machine (not written to the files): "
            + ", ".join(f"{dtype} {value:.2g}" for dtype, value in worst.items())]  # fmt: skip


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
                if key in BOOL_COLUMNS:
                    row[key] = value == "True"
                elif key in TEXT_COLUMNS:
                    row[key] = value
                else:
                    row[key] = float(value)
            rows.append(row)
    return rows


def render(rows: list[dict], out: str, meta: dict, profile: dict | None = None) -> list[str]:
    """Write the plots and summary.md for ``rows`` into ``out``; returns the file names written."""
    kinds = {r["kind"] for r in rows}
    device = meta.get("gpu") or meta.get("device", "")
    written, lines, means = [], [], {}
    if MEASURED in kinds:
        plots.plot_throughput(rows, os.path.join(out, "throughput.png"), device)
        means = plots.plot_speedup(rows, os.path.join(out, "speedup.png"), device)
        written += ["throughput.png", "speedup.png"]
    if MODEL in kinds:
        plots.plot_roofline(rows, os.path.join(out, "roofline.png"))
        plots.plot_bytes(rows, os.path.join(out, "bytes.png"))
        written += ["roofline.png", "bytes.png"]
    if CHECK in kinds:
        plots.plot_checks(rows, os.path.join(out, "checks.png"))
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
        lines += [
            "",
            "## Measured on the GPU (triton.testing.do_bench, median of its runs)",
            "",
            f"{len(measured) - len(wrong)} of {len(measured)} outputs correct against torch in fp64.",
        ]
        lines += [f"- WRONG: {r['layer']} {r['dtype']} {r['layout']} {r['impl']}: error {r['max_rel_error']:.2e} "
                  f"{r.get('error', '')}" for r in wrong]  # fmt: skip
        lines += ["", "Geometric-mean speedup of triton_convt over cuDNN + eager epilogue (cudnn.benchmark off):", ""]
        lines += [f"- {k}: {v:.2f}x" for k, v in means.items()]
        lines += ["", "| layer | dtype | layout | impl | median ms | TFLOP/s | GB/s | vs cuDNN | vs best torch |",
                  "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in measured:
            if r.get("median_ms"):
                speedups = [r.get(k, float("nan")) for k in ("speedup_vs_cudnn", "speedup_vs_best_torch")]
                lines.append(
                    f"| {r['layer']} | {r['dtype']} | {r['layout']} | {r['impl']} | {r['median_ms']:.4f} "
                    f"| {r['tflops']:.1f} | {r['gbps']:.0f} | {speedups[0]:.2f} | {speedups[1]:.2f} |"
                )
    checks = [r for r in rows if r["kind"] == CHECK]
    if checks:
        failed = [r for r in checks if not r["ok"]]
        lines += ["", "## Interpreter checks (correctness only, never speed)", "",
                  f"{len(checks) - len(failed)} of {len(checks)} checks passed: every layer shrunk to interpreter size "
                  "(kernel, stride, padding, output_padding, dilation, groups structure and activation kept), each "
                  "dtype and layout, the Triton launches counted (the forward kernel's, after the weight's copy into "
                  "channels_last order where the kernel needs one), against torch in fp64."]  # fmt: skip
        lines += [f"- FAILED: {r['layer']} {r['dtype']} {r['layout']}: error {r['max_rel_error']:.2e} (tol "
                  f"{r['tolerance']:.1e}) {r.get('error', '')}" for r in failed]  # fmt: skip
    model = [r for r in rows if r["kind"] == MODEL]
    if model:
        parts = list(dict.fromkeys(r["device"] for r in model))
        dtype = model[0]["dtype"]
        lines += ["", f"## Modelled (roofline bound from published peaks; not measured), {dtype}", ""]
        lines += [f"- {part}: {PEAKS[part]['source']}" for part in parts if part in PEAKS]
        lines += ["", "Bound: the roofline of the operation, fused and as the unfused chain, from useful FLOPs. "
                  "Kernel: this kernel's modelled time with the config the launcher picks for the part "
                  "(triton-convt-workmodel): the largest of its bytes at the part's bandwidth, the MACs it issues "
                  "(issued/useful) at the tensor-core peak, and the warp instructions it issues (issue: per program, "
                  "the hot loop read from the SASS of the layer's own build times its iterations, plus the rest of "
                  "the kernel once, over four warp instructions per SM per clock). A lower bound: latency, "
                  "shared-memory and L2 bandwidth and the launch are left out."]  # fmt: skip
        if any(r.get("nvidia_model_ms") for r in model):
            lines += [
                "",
                "NVIDIA model: NVIDIA's analytic GEMM model (nvidia-matmul-heuristics, run on the CPU: a "
                "model figure, not a measurement) of the layer as tuned Triton GEMMs, one per stride phase "
                "(M = N*Q_h*Q_w output pixels, N = C_out/groups, K = C_in/groups*taps, per group), summed; "
                "phases of one shape and the groups as one batched GEMM, so that the model's fixed latency "
                "per kernel (10-13 us) is paid once per shape, as the kernel's single launch pays it once.",
            ]
        else:
            lines += ["", "NVIDIA model: empty, nvidia-matmul-heuristics is not installed where the model ran "
                      '(pip install "triton_convt[heuristics]").']  # fmt: skip
        lines += rule_lines(model)
        header = "| layer | GFLOP | min MB | unfused MB | FLOP/B | " + " | ".join(
            f"{p} bound us (fused / unfused), bound by | {p} issued/useful | {p} issue us | {p} kernel us, bound by "
            f"| {p} NVIDIA model us" for p in parts) + " |"  # fmt: skip
        lines += ["", header, "|" + "---|" * (5 + 5 * len(parts))]
        for name in plots.layer_names(model):
            mine = {(r["device"], r["impl"]): r for r in model if r["layer"] == name and r["dtype"] == dtype}
            first = mine[(parts[0], FUSED)]
            cells = [name, f"{first['flops'] / 1e9:.2f}", f"{first['fused_bytes'] / 1e6:.1f}",
                     f"{first['unfused_bytes'] / 1e6:.1f}", f"{first['intensity']:.0f}"]  # fmt: skip
            for p in parts:
                f, u = mine[(p, FUSED)], mine[(p, UNFUSED)]
                cells += [f"{f['model_ms'] * 1e3:.1f} / {u['model_ms'] * 1e3:.1f}, {f['bound']}",
                          f"{f['issued_over_useful']:.2f}",
                          f"{f['issue_ms'] * 1e3:.1f}" if f.get("issue_ms") is not None else "",
                          f"{f['kernel_model_ms'] * 1e3:.1f}, {f['kernel_bound']}",
                          f"{f['nvidia_model_ms'] * 1e3:.1f}" if f.get("nvidia_model_ms") else ""]  # fmt: skip
            lines.append("| " + " | ".join(cells) + " |")
    if profile:
        lines += profile_lines(profile)
    return lines


def rule_lines(model: list[dict]) -> list[str]:
    """Issue 19's rule over the model rows that hold it (H100, 16-bit, :func:`.cpu.rule_applies`): how many layers
    meet it, and the modelled time over the memory bound of those that do not (a model)."""
    held = [r for r in model if r["impl"] == FUSED and r.get("meets_rule") is not None]
    if not held:
        return []
    lines = []
    for dtype in dict.fromkeys(r["dtype"] for r in held):
        mine = [r for r in held if r["dtype"] == dtype]
        failing = [r for r in mine if not r["meets_rule"]]
        memory = lambda r: r["fused_bytes"] / (r["peak_gbps"] * 1e9) * 1e3  # noqa: E731 - ms, the memory bound
        text = (f"Rule (issue 19, {mine[0]['device']}, {dtype}; a model): {len(mine) - len(failing)} of {len(mine)} "
                f"layers issue at most {workmodel.RULE_ISSUED:g}x their useful MACs or sit within "
                f"{workmodel.RULE_MEMORY:g}x of their memory bound")  # fmt: skip
        if failing:
            text += "; not: " + ", ".join(f"{r['layer']} ({r['issued_over_useful']:.2f}x the MACs, "
                                          f"{r['kernel_model_ms'] / memory(r):.1f}x its memory bound, "
                                          f"{r['kernel_bound']}-bound)" for r in failing)  # fmt: skip
        lines += ["", text + "."]
    return lines


#: Columns of the summary's table of narrow builds: (header, function of a profile record).
NARROW_COLUMNS = (
    ("layer", lambda r: r["layer"]),
    ("arch", lambda r: arch_name(r["arch"])),
    ("dtype", lambda r: r["dtype"] + ("" if r["precision"] == "ieee" else f" ({r['precision']})")),
    ("config", lambda r: "x".join(str(v) for k, v in r["config"].items() if k.startswith("BLOCK"))
     + f"-w{r['config']['num_warps']}-s{r['config']['num_stages']}"),
    ("regs", lambda r: r.get("registers", "")),
    ("spill B", lambda r: r.get("spill_bytes", "")),
    ("MMA/it", lambda r: r.get("hot_tensor_core") or ""),
    ("instr/it", lambda r: r.get("hot_instructions") or ""),
    ("instr (kernel)", lambda r: r.get("kernel_instructions", "")),
    ("LDG scalar/vector",
     lambda r: f"{r['hot_scalar_loads']}/{r['hot_vector_loads']}" if r.get("hot_tensor_core") else ""),
    ("LDGSTS", lambda r: r.get("hot_ldgsts") if r.get("hot_tensor_core") else ""),
    ("wgmma wait", lambda r: "" if r.get("wgmma_wait") is None else r["wgmma_wait"]),
    ("vs GEMM", lambda r: f"{r['reference_ratio']:.2f}" if r.get("reference_ratio") is not None else ""),
)  # fmt: skip


def profile_lines(profile: dict) -> list[str]:
    """The summary's static-profile section: totals of the shipped builds, the hot-loop rule, and the narrow
    builds (the report's layers built with a tile of at most 32 columns, :func:`.hotloop.narrow`) with their hot
    loops."""
    records = profile["builds"]
    shipped = [r for r in records if not r.get("layer")]
    built = [r for r in records if r.get("layer")]
    bad = [r for r in records if "error" in r or spilled(r)]
    archs = ", ".join(arch_name(a) for a in profile["archs"])
    registers = [r["registers"] for r in records if "registers" in r] or [0]
    tensor_cores = sum(1 for r in records if r.get("tensor_core_instructions"))
    lines = ["", f"## Static profile of the phase GEMM (compiled for {archs} without a GPU; no timing)", "",
             f"{len(shipped)} builds of the shipped configs (x dtypes x layouts x archs, and the 1-D and 3-D sample "
             f"problems) and {len(built)} of the report's layers with each file's pick (the work model's issue "
             f"term); {len(bad)} failed or spilled; {min(registers)}-{max(registers)} registers; {tensor_cores} use "
             "tensor-core instructions. Full table: profile/profile.md."]  # fmt: skip
    lines += [f"- {'FAILED' if 'error' in r else 'SPILLED'}: {r.get('layer') or r.get('sample') or 'sample problem'}, "
              f"{arch_name(r['arch'])} {r['dtype']} {r['layout']} "
              f"{'x'.join(str(v) for k, v in r['config'].items() if k.startswith('BLOCK'))}"
              + ("" if "error" in r else f": {r.get('spill_bytes', 0)} spill bytes, {r.get('registers')} registers")
              for r in bad]  # fmt: skip
    gated = [r for r in records if hotloop.gated(r)]
    if gated:
        failing = hotloop.gate(records)
        wide = [r for r in gated if not hotloop.narrow(r)]
        layouts = ", ".join(sorted({f"{r['kernel']} {r['layout']}" for r in gated}))
        lines += ["", f"Hot loop (read from the SASS): {len(failing)} of {len(gated)} 16-bit builds ({layouts}) fail "
                  f"issue 13's rule (at most {hotloop.RATIO_LIMIT}x the reference GEMM's non-tensor-core instructions "
                  f"per tensor-core instruction, held on the {len(wide)} builds but channels_last's narrow tiles of "
                  f"at most {hotloop.NARROW_COLUMNS} columns; no scalar global loads and wgmma overlap on sm_90, held "
                  "on all)."]  # fmt: skip
    narrow = [r for r in built if hotloop.narrow(r) and r["dtype_class"] == "16bit" and "error" not in r]
    if narrow:
        lines += [
            "",
            "Narrow builds: the report's layers whose 16-bit pick has at most "
            f"{hotloop.NARROW_COLUMNS} columns, built at full size (their hot loop per iteration, the whole "
            "kernel's instructions, and the ratio to the tutorial GEMM at the same tile, which narrow tiles are "
            "not held to: the layer's modelled time above judges them).",
            "",
            "| " + " | ".join(h for h, _ in NARROW_COLUMNS) + " |",
            "|" + "---|" * len(NARROW_COLUMNS),
        ]
        lines += ["| " + " | ".join(str(f(r)) for _, f in NARROW_COLUMNS) + " |" for r in narrow]
    return lines


def write_results(rows: list[dict], out: str, meta: dict, profile: dict | None) -> list[str]:
    """results.csv, results.json, plots and summary into ``out`` (each row as :func:`file_row` keeps it); returns
    the file names."""
    os.makedirs(out, exist_ok=True)
    rows = [file_row(r) for r in rows]
    write_csv(rows, os.path.join(out, "results.csv"))
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({"meta": meta, "peaks": PEAKS, "rows": rows, "static_profile": profile}, f, indent=1)
    return ["results.csv", "results.json"] + render(rows, out, meta, profile)
