"""``triton-convt-gpu-check`` without a GPU: its dry run, its refusal, and its measuring loop (budget, order,
partial results, at most 8 flat files, exit status) with the GPU stood in for by CPU tensors and a fake timer (no
time here is a measurement)."""

import os

import pytest
import torch

from triton_convt.tools import gpu_check
from triton_convt.tools.report import gpu, rows

#: CPU logic with the GPU stood in for; --device cuda skips it.
pytestmark = pytest.mark.interpreter_only


def test_dry_run_prints_every_step_with_its_estimate_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    assert gpu_check.main(["--dry-run", "--out", str(out), "--budget-s", "100"]) == 0
    text = capsys.readouterr().out
    steps = gpu_check.plan(100.0, has_tests=True)
    assert all(f"~{step.seconds:4.0f} s  {step.name}" in text for step in steps)
    assert "left out: past the budget" in text and not out.exists()
    first = next(line for line in text.splitlines() if "tune, check and time" in line)
    assert "(float16, channels_last)" in first  # 16-bit channels_last first


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_without_a_gpu_it_refuses_and_writes_nothing(tmp_path, capsys):
    assert gpu_check.main(["--out", str(tmp_path / "out")]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_the_default_plan_fits_eight_minutes():
    assert sum(step.seconds for step in gpu_check.plan(480.0, has_tests=True)) <= 480
    order = [(d, l) for d, l, _ in gpu_check.cases()]
    assert order.index(("float16", "nchw")) > order.index(("bfloat16", "channels_last"))
    assert order[-1][0] == "float32"


def fake_measure(wrong_at=None):
    """A case measured on CPU tensors (interpreter) with a fake timer; the triton_convt output is spoiled at the
    case numbered ``wrong_at``."""
    count = []

    def measure(spec, dtype, layout):
        count.append(1)
        small = spec.scaled()
        x, w, b = rows.make_inputs(small, getattr(torch, dtype), layout, "cpu")
        impls = gpu.implementations(small, x, w, b, ["triton_convt", "cudnn"])
        if len(count) == wrong_at:
            right = impls[0].fn
            impls[0].fn = lambda: right() + 1
        return gpu.measure_case(small, x, w, b, impls, lambda fn: (1.0, 0.9, 1.1), "fake")

    return measure


def test_the_loop_keeps_partial_results_within_the_budget_in_at_most_8_flat_files(tmp_path):
    now = [0.0]
    clock = lambda: now[0]  # noqa: E731
    writes = []

    def measure(spec, dtype, layout):
        now[0] += gpu_check.CASE_SECONDS  # every case takes its estimate
        return fake_measure()(spec, dtype, layout)

    out = str(tmp_path)
    from triton_convt.tools.report.render import write_results

    write = lambda r: writes.append(len(r)) or write_results(r, out, {"gpu": "fake"}, None)  # noqa: E731
    got = gpu_check.measure_layers(out, {"gpu": "fake"}, 3.5 * gpu_check.CASE_SECONDS, measure, clock, write)
    assert len(got) == 3 * 2 and writes == [2, 4, 6]  # three cases fit; results rewritten after each
    assert [r["layer"] for r in got[::2]] == list(gpu_check.LAYERS[:3])
    assert all(r["dtype"] == "float16" and r["layout"] == "channels_last" for r in got)
    files = os.listdir(out)
    assert len(files) <= 8 and all(os.path.isfile(os.path.join(out, f)) for f in files)
    assert all(os.path.getsize(os.path.join(out, f)) <= 16 * 2**20 for f in files)
    assert {"results.csv", "summary.md"} <= set(files)
    assert gpu_check.exit_status(True, got) == 0 and gpu_check.exit_status(False, got) == 1


def test_a_wrong_output_makes_the_check_fail(tmp_path):
    calls = []
    clock = lambda: len(calls) * gpu_check.CASE_SECONDS  # noqa: E731  (each case takes its estimate)
    measure = fake_measure(wrong_at=2)
    counted = lambda spec, dtype, layout: calls.append(1) or measure(spec, dtype, layout)  # noqa: E731
    got = gpu_check.measure_layers(str(tmp_path), {}, 2.5 * gpu_check.CASE_SECONDS, counted, clock, lambda r: None)
    bad = [r for r in got if not r["ok"]]
    assert len(got) == 4 and len(bad) == 1 and bad[0]["layer"] == gpu_check.LAYERS[1] and "median_ms" not in bad[0]
    assert gpu_check.exit_status(True, got) == 1
