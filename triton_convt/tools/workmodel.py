"""The work model: what the forward kernel issues, the bytes a call moves (counted in :mod:`.workcount`, whose
names this module also offers) and the time that takes on published parts (plain Python; a model, nothing here is
measured on a GPU).

Time (:func:`modelled`, on the parts of :data:`PEAKS`: H100 SXM with ``sm90.json``'s pick, A100 SXM with
``sm80.json``'s). A lower bound, the largest of three terms, each a part's published figure or a count read from
the compiled code, never a measurement:

- memory: the fused call's bytes over the part's memory bandwidth (the layer's *memory bound*);
- tensor cores: the MACs the kernel issues (whole tiles, masked taps included) at the part's dense peak;
- instruction issue (:func:`issue_seconds`): the warp instructions the programs issue, from the SASS of the
  layer's own build with that config (:func:`.profile.layer_builds`: the layer at full size, its column count,
  taps, channel blocks, epilogue and index width): per program, the hot loop's instructions times the program's
  iterations (its phase's taps times the channel blocks) plus the rest of the kernel once per tile (row decoding,
  border masks, the pipeline's prologue, bias, activation and store; a window-variant program computes one tile per
  (D, H) phase), times the warps; over four warp instructions per
  clock per SM (one per scheduler), at the part's SM count and the clock its published 16-bit peak implies.

What it leaves out, so a measured time can only be longer: latency (a loop's wait for its loads when too few warps
are resident to hide it), shared-memory and L2 bandwidth (a narrow tile reads its A tile from shared memory for
few columns; the gather reads each input pixel once per tap, ``taps`` times the input's bytes through L2),
instructions that take more than one issue slot, programs that exit at once, tail effects and the launch itself.

The rule of issue 19 on H100 (:func:`meets_rule`): every 16-bit layer of the set issues at most
:data:`RULE_ISSUED` times its useful MACs, or its modelled time is within :data:`RULE_MEMORY` times its memory bound.

:data:`LAYERS` is the report's layer set (decoder layers, from ``layers.json``); ``python -m
triton_convt.tools.workmodel`` prints the model for it with the config the launcher would pick from each config
file, and the modelled time on each part from the SASS of the layers' builds (compiled without a GPU); then the
nearest-upsample + conv layers (:func:`upsampler_work`) and the conv2d + pixel_shuffle layers
(:func:`pixel_shuffle_work`) against the op chains torch runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass

import torch

from ..launch import configs, interpreter_active
from . import layers
from .workcount import (  # noqa: F401  (the counting half, offered here too: one import for the model's users)
    LAYERS,
    MMA_MINIMUM,
    PIXEL_SHUFFLE_KERNEL,
    Work,
    axis_taps,
    floor,
    is_depthwise,
    kernel_of,
    launcher_config,
    mma_minimum,
    phase_work,
    phases,
    pixel_shuffle_work,
    problem_rows,
    problem_sizes,
    runs_window,
    shipped_floor,
    spec_traffic,
    traffic,
    upsampler_work,
    window_work,
    work,
)

#: Published figures of the parts the model runs on: dense tensor-core TFLOP/s per dtype (no sparsity; fp32 is
#: TF32, torch's default for convolutions), memory bandwidth in bytes/s, SM count, dense 16-bit tensor-core FLOPs
#: per SM per clock (with the 16-bit peak and the SM count, the clock: :func:`clock_hz`), the config file the
#: launcher reads on the part, and the part's name among NVIDIA's GEMM model's predefined GPUs
#: (:mod:`triton_convt.tools.nvmodel`).
PEAKS = {
    "H100 SXM": {
        "tflops": {"bfloat16": 989.4, "float16": 989.4, "float32": 494.7},
        "bandwidth": 3.35e12,
        "sms": 132,
        "flops_per_sm_clock": 4096,
        "target": "sm90",
        "nvidia_gpu": "H100_SXM",
        "source": "NVIDIA H100 Tensor Core GPU datasheet, H100 SXM5 80GB: BF16/FP16 989.4 and TF32 494.7 dense "
        "tensor TFLOP/s (half the 'with sparsity' figures), HBM3 3.35 TB/s; 132 SMs, 4096 dense FP16 FLOP per SM "
        "per clock (the Hopper architecture whitepaper)",
    },
    "A100 SXM": {
        "tflops": {"bfloat16": 312.0, "float16": 312.0, "float32": 156.0},
        "bandwidth": 2.039e12,
        "sms": 108,
        "flops_per_sm_clock": 2048,
        "target": "sm80",
        "nvidia_gpu": "A100_SXM_80GB",
        "source": "NVIDIA A100 Tensor Core GPU datasheet, A100 SXM4 80GB: BF16/FP16 312 and TF32 156 dense tensor "
        "TFLOP/s, HBM2e 2,039 GB/s; 108 SMs, 2048 dense FP16 FLOP per SM per clock (the Ampere architecture "
        "whitepaper)",
    },
}

#: Warp instructions one SM issues per clock: four schedulers (one per SM sub-partition), each issuing at most one
#: warp instruction per clock, on sm_80 and sm_90.
ISSUE_PER_SM_CLOCK = 4


def clock_hz(part: str) -> float:
    """The SM clock at which ``part`` reaches its published 16-bit peak: ``peak / (SMs * FLOPs per SM per
    clock)`` (H100 SXM: 1.83 GHz; A100 SXM: 1.41 GHz)."""
    peak = PEAKS[part]
    return peak["tflops"]["float16"] * 1e12 / (peak["sms"] * peak["flops_per_sm_clock"])


def issue_seconds(wk: Work, config: dict, reading: dict, part: str) -> float | None:
    """The instruction-issue term of :func:`modelled`: the warp instructions of a launch over ``part``'s issue rate
    (:data:`ISSUE_PER_SM_CLOCK` per SM per clock, :func:`clock_hz`). Each program that runs issues, per warp, its
    hot loop (``reading["hot_instructions"]``, :func:`.hotloop.hot_loop`) once per iteration and the rest of the
    kernel (``reading["kernel_instructions"]`` less the loop, :func:`.hotloop.kernel_instructions`) once per tile it
    computes (the window variant's programs: one per (D, H) phase, :attr:`.workcount.Work.passes`); ``None`` when
    the build has no tensor-core loop to read (fp32 on the exact FMA path)."""
    loop, whole = reading.get("hot_instructions"), reading.get("kernel_instructions")
    if not loop or not whole:
        return None
    rest = (whole - loop) * wk.active_programs * wk.passes
    warp_instructions = config["num_warps"] * (loop * wk.iterations + rest)
    return warp_instructions / (ISSUE_PER_SM_CLOCK * PEAKS[part]["sms"] * clock_hz(part))


@dataclass(frozen=True)
class Timing:
    """The modelled time of one layer on one part (a model: seconds, each term a lower bound of its own)."""

    config: dict  #: the launcher's untuned pick from the part's config file
    issued: float  #: issued over useful MACs with that config
    memory_s: float  #: the fused call's bytes at the part's bandwidth: the layer's memory bound
    mma_s: float  #: the issued MACs at the part's dense tensor-core peak
    issue_s: float | None  #: the warp instructions at the part's issue rate (None: no SASS reading)

    @property
    def seconds(self) -> float:
        """The modelled time: the largest term."""
        return max(t for t in (self.memory_s, self.mma_s, self.issue_s) if t is not None)

    @property
    def bound(self) -> str:
        """Which term sets :attr:`seconds`: ``memory``, ``compute`` (the tensor cores) or ``issue``."""
        terms = {"memory": self.memory_s, "compute": self.mma_s, "issue": self.issue_s}
        return max((t, name) for name, t in terms.items() if t is not None)[1]

    @property
    def over_memory(self) -> float:
        """:attr:`seconds` over the memory bound (1.0: the layer runs at its memory bound)."""
        return self.seconds / self.memory_s


def modelled(spec: layers.LayerSpec, dtype: torch.dtype, part: str, reading: dict | None = None) -> Timing:
    """The modelled time of a layer of the set on ``part`` (see the module docstring), with the config the part's
    file gives untuned; ``reading`` is the SASS record of the layer's build with that config
    (:func:`sass_readings`), without which the issue term is left out."""
    layer, target = spec.layer, PEAKS[part]["target"]
    config = launcher_config(layer, dtype, target if target in configs.available_targets() else "default")
    wk = work(layer, config)
    name = str(dtype).split(".")[1]
    moved = spec_traffic(spec, torch.empty((), dtype=dtype).element_size())["fused"]
    peak = PEAKS[part]["tflops"][name] * 1e12
    issue = None
    if reading is not None and _same_config(reading.get("config"), config):
        issue = issue_seconds(wk, config, reading, part)
    return Timing(config, wk.ratio, moved / PEAKS[part]["bandwidth"], spec.flops * wk.ratio / peak, issue)


def _same_config(a: dict | None, b: dict) -> bool:
    return a is not None and all(a.get(k) == v for k, v in b.items())


#: Issue 19's rule, held on H100 for every 16-bit layer of the set (:func:`meets_rule`): issued over useful MACs
#: at most this ...
RULE_ISSUED = 2.0
#: ... or the modelled time within this factor of the layer's memory bound.
RULE_MEMORY = 1.25


def meets_rule(timing: Timing) -> bool:
    """Whether a layer's modelled time meets issue 19's rule: at most :data:`RULE_ISSUED` times its useful MACs
    issued, or within :data:`RULE_MEMORY` times its memory bound (which needs the issue term: a timing without a
    SASS reading meets it through its MACs only)."""
    if timing.issued <= RULE_ISSUED:
        return True
    return timing.issue_s is not None and timing.seconds <= RULE_MEMORY * timing.memory_s


def readings_of(records: list[dict]) -> dict[tuple[str, int, str], dict]:
    """The layer builds among static-profile ``records`` (:func:`.profile.layer_builds`) keyed by ``(layer, arch,
    dtype class)``, for :func:`modelled`; failed builds are left out."""
    return {(r["layer"], r["arch"], r["dtype_class"]): r for r in records if r.get("layer") and "error" not in r}


def sass_readings(
    names: list[str] | None = None,
    archs: tuple[int, ...] = (80, 90),
    dtypes: tuple[str, ...] = ("float16", "float32"),
    jobs: int | None = None,
) -> dict:
    """Compile the layer builds (:func:`.profile.layer_builds`) of the layers ``names`` (all GEMM layers when None)
    for ``archs`` and ``dtypes`` and return :func:`readings_of` their records. Compiling needs a process without
    the interpreter: under ``TRITON_INTERPRET=1`` (the tests, the report's checks) it runs
    ``triton-convt-profile --layers`` in a child process."""
    if names is not None and not names:
        return {}
    jobs = jobs or os.cpu_count() or 1
    arch_args = [a for arch in archs for a in ("--arch", f"sm{arch}")]
    dtype_args = [a for d in dtypes for a in ("--dtype", d)]
    with tempfile.TemporaryDirectory() as out:
        if interpreter_active():
            env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
            env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
            cmd = [sys.executable, "-m", "triton_convt.tools.profile", "--layers", *(names or []), *arch_args,
                   *dtype_args, "--out", out, "--jobs", str(jobs), "--no-reference"]  # fmt: skip
            done = subprocess.run(cmd, env=env, capture_output=True, text=True)
            path = os.path.join(out, "profile.json")
            if not os.path.exists(path):
                raise RuntimeError(f"the layer builds failed to compile:\n{done.stderr[-3000:]}")
            with open(path) as f:
                records = json.load(f)["builds"]
        else:
            from . import profile

            records = profile.compile_builds(profile.layer_builds(list(archs), list(dtypes), names), out, jobs,
                                             references=False)  # fmt: skip
    return readings_of(records)


def part_of(target: str) -> str | None:
    """The part of :data:`PEAKS` whose launcher reads ``target``'s config file (None: no part modelled)."""
    return next((part for part, peak in PEAKS.items() if peak["target"] == target), None)


def _arch_of(target: str) -> int:
    return int(target[2:])


def report(targets: list[str], dtype: torch.dtype, readings: dict | None = None) -> str:
    """A markdown table of the model for :data:`LAYERS` with each target's pick; for the targets a part of
    :data:`PEAKS` reads (sm90: H100 SXM, sm80: A100 SXM), the modelled time's terms (:func:`modelled`, the issue
    term from ``readings``, :func:`sass_readings`) and, on H100 for 16-bit dtypes, issue 19's rule."""
    itemsize = torch.empty((), dtype=dtype).element_size()
    cls = configs.dtype_class(dtype)
    lines = [
        f"Work model for {str(dtype).split('.')[1]} (a model, not a measurement)",
        "",
        "| layer | target | config (M x N x K, warps, stages) | programs (empty) | issued/useful MACs "
        "| floor | in-range/useful | fused MB | unfused MB | part | memory us | MMA us | issue us "
        "| model us, bound | over memory bound | rule |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for spec in layers.load():
        layer, moved = spec.layer, spec_traffic(spec, itemsize)
        for target in targets:
            c = launcher_config(layer, dtype, target)
            wk = work(layer, c)
            tile = (
                f"{'x'.join(str(v) for k, v in c.items() if k.startswith('BLOCK'))}, {c['num_warps']}, "
                f"{c['num_stages']}"
            )
            cells = ["", "", "", "", "", "", ""]
            part = part_of(target)
            if part is not None and str(dtype).split(".")[1] in PEAKS[part]["tflops"]:
                reading = (readings or {}).get((layer.name, _arch_of(target), cls))
                t = modelled(spec, dtype, part, reading)
                issue = "" if t.issue_s is None else f"{t.issue_s * 1e6:.1f}"
                rule = ("yes" if meets_rule(t) else "NO") if part == "H100 SXM" and cls == "16bit" else ""
                cells = [part, f"{t.memory_s * 1e6:.1f}", f"{t.mma_s * 1e6:.1f}", issue,
                         f"{t.seconds * 1e6:.1f}, {t.bound}", f"{t.over_memory:.2f}", rule]  # fmt: skip
            lines.append(
                f"| {layer.name} | {target} | {tile} | {wk.programs} ({wk.empty_programs}) | {wk.ratio:.3f} "
                f"| {floor(layer, dtype, target):.3f} | {wk.in_range_macs / wk.useful_macs:.3f} "
                f"| {moved['fused'] / 1e6:.1f} | {moved['unfused'] / 1e6:.1f} | " + " | ".join(cells) + " |"
            )
    return "\n".join(lines)


def upsampler_report(dtype: torch.dtype) -> str:
    """A markdown table of :func:`upsampler_work` for the report's nearest-upsample + conv layers."""
    itemsize = torch.empty((), dtype=dtype).element_size()
    lines = [
        f"Nearest-upsample + conv, fused vs interpolate + conv2d, {str(dtype).split('.')[1]} (a model, not a "
        "measurement)", "",
        "| layer | chain GMACs | fused GMACs | MAC ratio | chain MB | fused MB | byte ratio |",
        "|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for spec in layers.load_upsamplers():
        m = upsampler_work(spec, itemsize)
        lines.append(
            f"| {spec.name} | {m['chain_macs'] / 1e9:.2f} | {m['fused_macs'] / 1e9:.2f} "
            f"| {m['chain_macs'] / m['fused_macs']:.2f} | {m['chain_bytes'] / 1e6:.1f} | {m['fused_bytes'] / 1e6:.1f} "
            f"| {m['chain_bytes'] / m['fused_bytes']:.2f} |"
        )
    return "\n".join(lines)


def pixel_shuffle_report(targets: list[str], dtype: torch.dtype) -> str:
    """A markdown table of :func:`pixel_shuffle_work` for the report's conv2d + pixel_shuffle layers."""
    lines = [
        f"Conv2d + PixelShuffle, fused vs conv2d, pixel_shuffle (+ activation) as torch runs them, "
        f"{str(dtype).split('.')[1]} (a model, not a measurement)", "",
        "| layer | target | config (M x N x K, warps, stages) | GMACs | issued/useful MACs | chain MB | fused MB "
        "| byte ratio | launches chain/fused |",
        "|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for spec in layers.load_pixel_shuffles():
        for target in targets:
            m = pixel_shuffle_work(spec, dtype, target)
            c = m["config"]
            tile = (
                f"{'x'.join(str(v) for k, v in c.items() if k.startswith('BLOCK'))}, {c['num_warps']}, "
                f"{c['num_stages']}"
            )
            lines.append(
                f"| {spec.name} | {target} | {tile} | {m['useful_macs'] / 1e9:.2f} "
                f"| {m['issued_macs'] / m['useful_macs']:.3f} | {m['chain_bytes'] / 1e6:.1f} "
                f"| {m['fused_bytes'] / 1e6:.1f} | {m['chain_bytes'] / m['fused_bytes']:.2f} "
                f"| {m['chain_launches']}/{m['fused_launches']} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="triton-convt-workmodel",
        description="Print the work model of the report's layer set (model figures, not measurements).",
    )
    parser.add_argument("--dtype", default="float16", choices=("float16", "bfloat16", "float32", "float64"))
    parser.add_argument("--no-sass", action="store_true",
                        help="leave out the issue term (compiles nothing; the layers' builds take a minute or "
                        "two)")  # fmt: skip
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="compile processes (default: cores)")
    args = parser.parse_args(argv)
    dtype = getattr(torch, args.dtype)
    readings = None
    if not args.no_sass and dtype != torch.float64:  # fp64 has no tensor-core loop on these parts
        os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
        build_dtype = "float16" if configs.dtype_class(dtype) == "16bit" else "float32"
        readings = sass_readings(dtypes=(build_dtype,), jobs=args.jobs)
    print(report(configs.available_targets(), dtype, readings))
    print()
    print(upsampler_report(getattr(torch, args.dtype)))
    print()
    print(pixel_shuffle_report(configs.available_targets(), getattr(torch, args.dtype)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
