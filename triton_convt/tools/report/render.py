"""The report's files: ``results.csv`` (one tidy row per measurement, check or model figure), ``results.json``, the
PNG plots (:mod:`.plots`) and ``summary.md``. ``--from-csv`` renders the plots and summary again from a CSV
measured elsewhere. ``perf_reports/README.md`` explains every column and plot."""

from __future__ import annotations

import csv
import json
import os

from .. import hotloop
from ..aot import spilled
from ..cli import arch_name
from . import plots
from .cpu import PEAKS
from .rows import CHECK, COLUMNS, FUSED, MEASURED, MODEL, TEXT_COLUMNS, UNFUSED


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
        lines += ["", "## Measured on the GPU (triton.testing.do_bench, median of its runs)", "",
                  f"{len(measured) - len(wrong)} of {len(measured)} outputs correct against torch in fp64."]
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
                             f"| {r['tflops']:.1f} | {r['gbps']:.0f} | {speedups[0]:.2f} | {speedups[1]:.2f} |")
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
                  "Kernel: this kernel's own bound, from the MACs it issues (issued/useful) with the config the "
                  "launcher picks for the part."]  # fmt: skip
        if any(r.get("nvidia_model_ms") for r in model):
            lines += ["", "NVIDIA model: NVIDIA's analytic GEMM model (nvidia-matmul-heuristics, run on the CPU: a "
                      "model figure, not a measurement) of the layer as tuned Triton GEMMs, one per stride phase "
                      "(M = N*Q_h*Q_w output pixels, N = C_out/groups, K = C_in/groups*taps, per group), summed; "
                      "phases of one shape and the groups as one batched GEMM, so that the model's fixed latency "
                      "per kernel (10-13 us) is paid once per shape, as the kernel's single launch pays it once."]
        else:
            lines += ["", "NVIDIA model: empty, nvidia-matmul-heuristics is not installed where the model ran "
                      '(pip install "triton_convt[heuristics]").']  # fmt: skip
        header = "| layer | GFLOP | min MB | unfused MB | FLOP/B | " + " | ".join(
            f"{p} bound us (fused / unfused), bound by | {p} issued/useful | {p} kernel us, bound by "
            f"| {p} NVIDIA model us" for p in parts) + " |"  # fmt: skip
        lines += ["", header, "|" + "---|" * (5 + 4 * len(parts))]
        for name in plots.layer_names(model):
            mine = {(r["device"], r["impl"]): r for r in model if r["layer"] == name and r["dtype"] == dtype}
            first = mine[(parts[0], FUSED)]
            cells = [name, f"{first['flops'] / 1e9:.2f}", f"{first['fused_bytes'] / 1e6:.1f}",
                     f"{first['unfused_bytes'] / 1e6:.1f}", f"{first['intensity']:.0f}"]  # fmt: skip
            for p in parts:
                f, u = mine[(p, FUSED)], mine[(p, UNFUSED)]
                cells += [f"{f['model_ms'] * 1e3:.1f} / {u['model_ms'] * 1e3:.1f}, {f['bound']}",
                          f"{f['issued_over_useful']:.2f}",
                          f"{f['kernel_model_ms'] * 1e3:.1f}, {f['kernel_bound']}",
                          f"{f['nvidia_model_ms'] * 1e3:.1f}" if f.get("nvidia_model_ms") else ""]  # fmt: skip
            lines.append("| " + " | ".join(cells) + " |")
    if profile:
        records = profile["builds"]
        bad = [r for r in records if "error" in r or spilled(r)]
        archs = ", ".join(arch_name(a) for a in profile["archs"])
        registers = [r["registers"] for r in records if "registers" in r] or [0]
        tensor_cores = sum(1 for r in records if r.get("tensor_core_instructions"))
        lines += ["", f"## Static profile of the forward kernel (compiled for {archs} without a GPU; no timing)", "",
                  f"{len(records)} builds (shipped configs x dtypes x layouts x archs), {len(bad)} failed or spilled; "
                  f"{min(registers)}-{max(registers)} registers; {tensor_cores} use tensor-core instructions. "
                  "Full table: profile/profile.md."]  # fmt: skip
        gated = [r for r in records if hotloop.gated(r)]
        if gated:
            failing = hotloop.gate(records)
            lines += ["", f"Hot loop (read from the SASS): {len(failing)} of {len(gated)} 16-bit channels_last builds "
                      f"fail issue 13's rule (at most {hotloop.RATIO_LIMIT}x the reference GEMM's non-tensor-core "
                      "instructions per tensor-core instruction, no scalar global loads, wgmma overlap on sm_90)."]
    return lines


def write_results(rows: list[dict], out: str, meta: dict, profile: dict | None) -> list[str]:
    """results.csv, results.json, plots and summary into ``out``; returns the file names."""
    os.makedirs(out, exist_ok=True)
    write_csv(rows, os.path.join(out, "results.csv"))
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({"meta": meta, "peaks": PEAKS, "rows": rows, "static_profile": profile}, f, indent=1)
    return ["results.csv", "results.json"] + render(rows, out, meta, profile)
