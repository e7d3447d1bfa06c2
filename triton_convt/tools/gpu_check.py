"""``triton-convt-gpu-check``: everything worth knowing from a GPU that is lent for minutes, in one command.

``triton-convt-gpu-check --out DIR [--budget-s 480] [--dry-run]``, run from a checkout on a machine with a CUDA GPU:

1. prints the environment (GPU, driver, CUDA, torch, triton, cuDNN);
2. runs a curated quick subset of the correctness tests on the GPU (``pytest --device cuda``: the compiled kernels
   against torch in fp64) when the checkout's ``tests/`` is there;
3. tunes and times a curated subset of the report's layers, 16-bit channels_last first, then NCHW, then fp32
   (:data:`PHASES`), against cuDNN (``cudnn.benchmark`` off and on) and ``torch.compile``, every output checked
   against torch in fp64 before it is timed (:func:`triton_convt.tools.report.gpu.measure_case`).

It writes at most 8 flat files into DIR (``environment.json``, ``tests.txt``, and the report's ``results.csv``,
``results.json``, ``throughput.png``, ``speedup.png``, ``summary.md``), rewritten after every measured case, so
the results so far survive when the budget (or the machine) runs out; a case whose estimate no longer fits the
budget is not started. It exits with 1 when a correctness check failed (a test, or a measured output), else 0.
``--dry-run`` works on any machine: it prints each step with its estimated seconds and runs nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import triton

#: The layers timed (names in layers.json), most common decoder shapes first: k2 s2 (SAM, UNet), k4 s2 p1 (DCGAN),
#: k3 s2 op1 (VAE), then depthwise (FCN) and an odd dilated one.
LAYERS = ("sam-up1-k2s2", "unet-up1-k2s2", "dcgan-g3-k4s2p1", "vae-k3s2p1op1", "fcn8s-upscore2-dw", "odd-k3s2-d2")
#: (dtype, layout, how many of LAYERS) in the order they are measured: what decoders run in first, all layers;
#: then fewer of them, so that the whole check fits a GPU lent for eight minutes.
PHASES = (("float16", "channels_last", 6), ("bfloat16", "channels_last", 3), ("float16", "nchw", 4),
          ("float32", "channels_last", 3), ("float32", "nchw", 2))  # fmt: skip
#: The quick correctness subset: pytest node ids and -k expressions under ``tests/`` (each compiles a handful of
#: kernel variants; the whole suite would compile hundreds).
TESTS = ("tests/test_opinfo.py", "tests/test_epilogue.py", "tests/test_launch_discipline.py",
         "tests/test_hardening.py::test_non_finite_weights_on_cuda_differ_from_torch_only_by_border_nan",
         "tests/test_autograd.py::test_gradcheck")  # fmt: skip
#: Estimated seconds: the tests (compiles included), and one measured case (triton_convt tuned over its candidates,
#: cuDNN twice, torch.compile of the chain, each checked then timed by do_bench).
TESTS_SECONDS, CASE_SECONDS, START_SECONDS = 120.0, 15.0, 10.0
#: The tests get at most this share of the budget, so that some layers are always measured.
TESTS_SHARE = 0.4


@dataclass
class Step:
    """One step of the check: what it does and how long it is expected to take."""

    name: str
    seconds: float


def plan(budget_s: float, has_tests: bool) -> list[Step]:
    """The steps in the order they run, with their estimates (the dry run prints this)."""
    steps = [Step("print the environment (GPU, driver, CUDA, torch, triton, cuDNN)", START_SECONDS)]
    if has_tests:
        steps.append(
            Step(
                f"pytest --device cuda on {len(TESTS)} curated test selections",
                min(TESTS_SECONDS, budget_s * TESTS_SHARE),
            )
        )
    steps += [Step(f"tune, check and time {layer} ({dtype}, {layout}) against cuDNN and torch.compile", CASE_SECONDS)
              for dtype, layout, layer in cases()]  # fmt: skip
    return steps


def cases() -> list[tuple[str, str, str]]:
    """``(dtype, layout, layer)`` of every measured case, in order."""
    return [(dtype, layout, layer) for dtype, layout, count in PHASES for layer in LAYERS[:count]]


def environment() -> dict:
    """What a GPU result depends on (the report's environment), plus the driver's version."""
    from .report.gpu import gpu_environment

    env = gpu_environment("cuda")
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20)  # fmt: skip
        env["driver"] = done.stdout.strip().splitlines()[0] if done.returncode == 0 else "unknown"
    except (OSError, subprocess.TimeoutExpired, IndexError):
        env["driver"] = "unknown"
    return env


def run_tests(out: str, timeout_s: float, root: str) -> bool:
    """The curated CUDA tests in a child pytest (stopped after ``timeout_s``); its output goes to ``tests.txt``.
    True when they passed."""
    cmd = [sys.executable, "-m", "pytest", "--device", "cuda", "-q", "-p", "no:cacheprovider", *TESTS]
    try:
        done = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=max(1.0, timeout_s))
        text, ok = done.stdout + done.stderr, done.returncode == 0
    except subprocess.TimeoutExpired as e:
        text = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        text, ok = text + f"\n[stopped after {timeout_s:.0f} s: the budget's share for tests]\n", True
    with open(os.path.join(out, "tests.txt"), "w") as f:
        f.write(" ".join(cmd) + "\n\n" + text)
    print(text.strip().splitlines()[-1] if text.strip() else "no test output", flush=True)
    return ok


def measure_layers(out: str, meta: dict, deadline: float, measure: Callable,
                   clock: Callable[[], float] = time.monotonic,
                   write: Callable | None = None) -> list[dict]:  # fmt: skip
    """Measure :data:`LAYERS` x :data:`PHASES` in order with ``measure(spec, dtype, layout)`` (rows of one case),
    rewriting the results after each case; a case is started only if its estimate fits before ``deadline``."""
    from .layers import select
    from .report.render import write_results

    write = write or (lambda rows: write_results(rows, out, meta, None))
    specs = {spec.name: spec for spec in select(list(LAYERS))}
    rows: list[dict] = []
    for dtype, layout, name in cases():
        if clock() + CASE_SECONDS > deadline:
            print(f"budget spent: stopping before {name} {dtype} {layout}; results so far are in {out}")
            return rows
        case = measure(specs[name], dtype, layout)
        rows += case
        write(rows)
        print(f"{name} {dtype} {layout}: " + ", ".join(
            f"{r['impl']} {r['median_ms']:.4f} ms" if r.get("median_ms") else f"{r['impl']} WRONG (not timed)"
            for r in case), flush=True)  # fmt: skip
    return rows


def measure_on_cuda(spec, dtype: str, layout: str) -> list[dict]:
    """One case on the GPU: the report's implementations, checked, then timed with do_bench."""
    from .report.gpu import do_bench_timer, implementations, measure_case
    from .report.rows import make_inputs

    x, w, b = make_inputs(spec, getattr(torch, dtype), layout, "cuda")
    impls = implementations(spec, x, w, b, ["triton_convt", "cudnn", "cudnn_benchmark", "torch_compile"])
    return measure_case(spec, x, w, b, impls, do_bench_timer, torch.cuda.get_device_name())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="triton-convt-gpu-check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="directory for the (at most 8, flat) result files")
    parser.add_argument("--budget-s", type=float, default=480.0, help="wall-clock budget in seconds (default 480)")
    parser.add_argument("--dry-run", action="store_true", help="print the steps and their estimates; run nothing")
    args = parser.parse_args(argv)
    root = os.getcwd()
    has_tests = os.path.isdir(os.path.join(root, "tests"))
    steps = plan(args.budget_s, has_tests)
    if args.dry_run:
        cuda = "available" if torch.cuda.is_available() else "not available"
        print(f"triton-convt-gpu-check plan (budget {args.budget_s:.0f} s; torch {torch.__version__}, triton "
              f"{triton.__version__}, CUDA {cuda}):")  # fmt: skip
        elapsed = 0.0
        for i, step in enumerate(steps, 1):
            elapsed += step.seconds
            late = "" if elapsed <= args.budget_s else "  [left out: past the budget]"
            print(f"  {i:2d}. ~{step.seconds:4.0f} s  {step.name}{late}")
        print(f"estimated {sum(s.seconds for s in steps):.0f} s in all, budget {args.budget_s:.0f} s")
        return 0
    if not torch.cuda.is_available():
        print("triton-convt-gpu-check: no CUDA GPU (torch.cuda.is_available() is False); nothing was run. "
              "--dry-run shows the plan on any machine.", file=sys.stderr)  # fmt: skip
        return 2
    start = time.monotonic()
    deadline = start + args.budget_s
    os.makedirs(args.out, exist_ok=True)
    meta = environment()
    print("\n".join(f"{k}: {v}" for k, v in meta.items()), flush=True)
    with open(os.path.join(args.out, "environment.json"), "w") as f:
        json.dump(meta, f, indent=1)
    tests_ok = True
    if has_tests:
        tests_ok = run_tests(args.out, min(TESTS_SECONDS * 2, args.budget_s * TESTS_SHARE), root)
    rows = measure_layers(args.out, meta, deadline, measure_on_cuda)
    wrong = [r for r in rows if not r["ok"]]
    print(f"{len(rows) - len(wrong)} of {len(rows)} measured outputs correct; tests "
          f"{'passed' if tests_ok else 'FAILED'}; {time.monotonic() - start:.0f} s; files in {args.out}")  # fmt: skip
    return exit_status(tests_ok, rows)


def exit_status(tests_ok: bool, rows: list[dict]) -> int:
    """1 when a correctness check failed (a test, or a measured output), else 0."""
    return 0 if tests_ok and all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
