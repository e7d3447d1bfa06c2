"""The perf report: the layer set, the CPU report end to end, --from-csv, and the GPU path's checking and timing
logic run on CPU tensors with a fake timer (no time in these tests is a real measurement)."""

import csv
import json
import math

import pytest
import torch

from triton_convt.tools import checking, hotloop, layers, nvmodel, workmodel
from triton_convt.tools.report import cli, cpu, gpu, render
from triton_convt.tools.report import rows as vocab
from triton_convt.tools.report.gpu import Impl

#: The report's CPU parts and its GPU loop with a fake timer, on CPU tensors; triton-convt-gpu-check runs the real one.
pytestmark = pytest.mark.interpreter_only

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def meta_output_shape(spec):
    x = torch.empty(spec.n, spec.c_in, *spec.hw, device="meta")
    w = torch.empty(spec.c_in, spec.c_out // spec.groups, *spec.kernel, device="meta")
    return tuple(checking.torch_conv_transpose(x)(x, w, None, *spec.conv_args).shape)


@pytest.mark.parametrize("spec", layers.load(), ids=lambda s: s.name)
def test_each_layer_follows_the_formula_full_size_and_scaled(spec):
    assert spec.source and spec.after is not None
    for s in (spec, spec.scaled()):
        assert meta_output_shape(s) == (s.n, s.c_out, *s.output_hw)
    small = spec.scaled()
    # What decides the kernel's path survives the shrinking.
    keep = ("kernel", "stride", "padding", "output_padding", "dilation", "activation", "bias")
    assert all(getattr(small, k) == getattr(spec, k) for k in keep)
    assert (small.c_in // small.groups == 1) == (spec.c_in // spec.groups == 1)  # depthwise stays depthwise
    assert (small.groups > 1) == (spec.groups > 1)
    assert small.n == 1 and math.prod(small.hw) <= 16 and all(a <= b for a, b in zip(small.hw, spec.hw))
    assert small.ndim == spec.ndim and len(small.output_hw) == spec.ndim


def test_layer_set_covers_the_issues_models_and_odd_shapes():
    specs = layers.load()
    names = " ".join(s.name for s in specs)
    for family in ("dcgan", "pix2pix", "unet", "sam", "maskrcnn", "vitdet", "fcn8s", "vae"):
        assert family in names
    assert any(s.stride[0] == 3 for s in specs)
    assert any(s.dilation != (1, 1) for s in specs)
    assert any(s.kernel[0] != s.kernel[1] and s.hw[0] != s.hw[1] for s in specs)
    assert any(s.groups == s.c_in == s.c_out and s.kernel == (16, 16) and s.stride == (8, 8) for s in specs)
    assert any(s.output_padding != (0, 0) for s in specs)
    assert {s.activation for s in specs} >= {None, "relu", "tanh", "gelu"}
    with pytest.raises(KeyError, match="unknown layers"):
        layers.select(["no-such-layer"])


def test_layer_set_has_the_issues_1d_and_3d_decoders():
    by_name = {s.name: s for s in layers.load()}
    # HiFi-GAN V1's upsamplers chain at their sequence lengths: 86 mel frames -> 688 -> 5504 -> 11008 -> 22016.
    hifigan = [s for s in by_name.values() if s.name.startswith("hifigan-v1-up")]
    assert [(s.c_in, s.c_out, s.kernel, s.stride, s.padding) for s in hifigan] == [
        (512, 256, (16,), (8,), (4,)), (256, 128, (16,), (8,), (4,)), (128, 64, (4,), (2,), (1,)),
        (64, 32, (4,), (2,), (1,))]  # fmt: skip
    assert [s.hw[0] for s in hifigan] + [hifigan[-1].output_hw[0]] == [86, 688, 5504, 11008, 22016]
    assert all(a.output_hw == b.hw for a, b in zip(hifigan, hifigan[1:]))
    codecs = [s for s in by_name.values() if s.name.startswith(("encodec", "dac"))]
    assert codecs and all(s.ndim == 1 and s.kernel == (2 * s.stride[0],) for s in codecs)
    # nnU-Net's decoder: k2 s2 from the 4x4x4 bottleneck to the 128^3 patch, 320 -> ... -> 32 channels.
    nnunet = [s for s in by_name.values() if s.name.startswith("nnunet3d")]
    assert [(s.c_in, s.c_out) for s in nnunet] == [(320, 320), (320, 256), (256, 128), (128, 64), (64, 32)]
    assert nnunet[0].hw == (4, 4, 4) and nnunet[-1].output_hw == (128, 128, 128)
    assert all(
        s.kernel == s.stride == (2, 2, 2) and a.output_hw == b.hw for a, b in zip(nnunet, nnunet[1:]) for s in (a, b)
    )
    monai = by_name["monai-unet3d-up-k3s2op1"]
    assert (monai.kernel, monai.stride, monai.padding, monai.output_padding) == ((3,) * 3, (2,) * 3, (1,) * 3, (1,) * 3)
    assert monai.output_hw == tuple(2 * v for v in monai.hw)


@pytest.mark.parametrize("ndim", [1, 3])
def test_nd_layer_rows_describe_check_and_model_the_call(ndim):
    # One layer of each new dimensionality through the report's row makers: the inputs in both layouts (1-D's
    # "channels_last" is stride(1) == 1; 3-D's is channels_last_3d), the description, and the model rows.
    spec = next(s for s in layers.load() if s.ndim == ndim)
    small = spec.scaled()
    x, w, b = vocab.make_inputs(small, torch.float32, "channels_last", "cpu")
    assert x.dim() == ndim + 2 and x.stride(1) == 1 and vocab.layout_of(x) == "channels_last"
    assert vocab.layout_of(vocab.make_inputs(small, torch.float32, "nchw", "cpu")[0]) == "nchw"
    assert vocab.describe(spec).startswith(f"{spec.n}x{spec.c_in}x{'x'.join(map(str, spec.hw))} -> ")
    model = cpu.model_rows([spec], ["float16"])
    assert len(model) == 2 * len(cpu.PEAKS)
    fused = [r for r in model if r["impl"] == vocab.FUSED]
    assert all(r["flops"] == 2 * math.prod((spec.n, spec.c_in, spec.c_out // spec.groups, *spec.hw, *spec.kernel))
               for r in model)  # fmt: skip
    assert all(r["issued_over_useful"] >= workmodel.floor(spec.layer, torch.float16) - 1e-12 for r in fused)
    y_bytes = spec.n * spec.c_out * math.prod(spec.output_hw) * 2
    assert model[1]["bytes"] - model[0]["bytes"] == 2 * y_bytes  # bias, no activation: one more pass over y


def test_workmodel_layers_are_the_layer_set():
    assert workmodel.LAYERS == tuple(s.layer for s in layers.load())


def test_invalid_entry_is_refused_with_its_name():
    with pytest.raises(ValueError, match="'bad'"):
        layers.parse({"name": "bad", "source": "x", "input": [1, 3, 4, 4], "c_out": 4, "kernel": [2, 2], "groups": 2})
    with pytest.raises(ValueError, match="'bad-act'"):
        entry = {
            "name": "bad-act",
            "source": "x",
            "input": [1, 4, 4, 4],
            "c_out": 4,
            "kernel": 2,
            "activation": "swish",
        }
        layers.parse(entry)


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_cpu_report_end_to_end(tmp_path):
    out = tmp_path / "cpu"
    chosen = ["sam-up2-gelu", "odd-k3s2-d2"]
    argv = ["--layers", *chosen, "--dtypes", "float32", "--arch", "sm80", "--out", str(out), "--no-progress"]
    assert cli.main(argv) == 0

    rows = read_rows(out / "results.csv")
    assert list(rows[0]) == list(vocab.COLUMNS)
    checks = [r for r in rows if r["kind"] == vocab.CHECK]
    model = [r for r in rows if r["kind"] == vocab.MODEL]
    assert not [r for r in rows if r["kind"] == vocab.MEASURED] and not any(r["median_ms"] for r in rows)
    assert {(r["layer"], r["layout"]) for r in checks} == {(n, l) for n in chosen for l in vocab.LAYOUTS}
    # A passing check's error is not in the files (it differs from machine to machine): its tolerance and ok are.
    assert all(r["ok"] == "True" and r["max_rel_error"] == "" and float(r["tolerance"]) > 0 for r in checks)
    assert len(model) == len(chosen) * len(cpu.PEAKS) * 2  # fused and unfused per part
    spec = layers.select(["sam-up2-gelu"])[0]
    for r in model:
        if r["layer"] == spec.name:
            peak = cpu.PEAKS[r["device"]]
            bound = max(spec.flops / (peak["tflops"]["float32"] * 1e12), float(r["bytes"]) / peak["bandwidth"])
            assert float(r["flops"]) == spec.flops and math.isclose(float(r["model_ms"]), bound * 1e3, rel_tol=1e-5)
            assert r["bound"] == "memory"  # 43 FLOP/B, below both ridge points
        if r["impl"] == vocab.FUSED:  # the kernel's modelled time counts the MACs and instructions it issues
            peak = cpu.PEAKS[r["device"]]
            issued = float(r["issued_over_useful"]) * float(r["flops"])
            # The issue term is read from the layer's build in the static profile: sm80 only here, so A100 only.
            assert (r["issue_ms"] != "") == (r["device"] == "A100 SXM"), r
            issue = float(r["issue_ms"] or 0) / 1e3
            kernel = max(issued / (peak["tflops"]["float32"] * 1e12), float(r["bytes"]) / peak["bandwidth"], issue)
            assert math.isclose(float(r["kernel_model_ms"]), kernel * 1e3, rel_tol=1e-5)
            assert float(r["kernel_model_ms"]) >= float(r["model_ms"])
            assert r["meets_rule"] == ""  # the rule is held on H100's 16-bit rows; this run is fp32
            # NVIDIA's GEMM model, when installed (the test extra brings it on Linux x86-64); the summary says which.
            assert (float(r["nvidia_model_ms"]) > 0) if nvmodel.available() else r["nvidia_model_ms"] == ""
        else:
            assert r["kernel_model_ms"] == "" and r["kernel_bound"] == ""
    # GELU and bias: the unfused chain reads and writes the output twice more.
    y_bytes = spec.n * spec.c_out * math.prod(spec.output_hw) * 4
    assert float(model[1]["bytes"]) - float(model[0]["bytes"]) == 4 * y_bytes

    data = json.loads((out / "results.json").read_text())
    assert len(data["rows"]) == len(rows) and data["peaks"]["H100 SXM"]["bandwidth"] == 3.35e12
    builds = data["static_profile"]["builds"]
    # The transposed convolution's GEMM keys the hot-loop rule holds: the forward in both layouts and the NCHW
    # input gradient.
    assert builds and all(b["arch"] == 80 and b["kernel"] in cpu.PROFILED and "error" not in b for b in builds)
    assert {b["kernel"] for b in builds} == set(cpu.PROFILED)
    assert all(hotloop.GATED["kernels"][k] for k in cpu.PROFILED)
    # The layers' own builds (the issue term's SASS), one per GEMM layer, with sm80.json's pick.
    assert {b["layer"] for b in builds if b.get("layer")} == set(chosen)
    assert "cores" not in data["meta"] and "machine" not in data["meta"]
    assert (out / "profile" / "profile.md").exists()
    assert all((out / "profile" / b["cubin"]).read_bytes()[:4] == b"\x7fELF" for b in builds)  # named from profile/
    for png in ("roofline.png", "bytes.png", "checks.png"):
        content = (out / png).read_bytes()
        assert content.startswith(PNG_MAGIC) and len(content) > 10_000
    summary = (out / "summary.md").read_text()
    assert "4 of 4 checks passed" in summary and "not measured" in summary and "![roofline.png]" in summary

    # A rerun writes the same bytes (the committed CPU report stays clean when it is regenerated on the same tree):
    # nothing run-dependent (times, compile seconds, uninitialised sample weights) reaches a file.
    again = tmp_path / "again"
    assert cli.main(argv[:-3] + ["--out", str(again), "--no-progress"]) == 0
    written = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file() and "cubins" not in p.parts)
    assert written == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file() and "cubins" not in p.parts)
    for name in written:
        assert (out / name).read_bytes() == (again / name).read_bytes(), name


def test_the_cpu_reports_files_do_not_change_with_the_checks_last_digits(tmp_path):
    # The interpreter's fp32 errors differ from machine to machine in their last digits (numpy's BLAS): the files a
    # CPU report writes must not. Two runs whose errors differ (all within tolerance) write the same bytes.
    specs = layers.select(["dcgan-g4-tanh", "sam-up2-gelu"])
    model = cpu.model_rows(specs, ["float16"])
    written = []
    for scale in (1.0, 1.0 + 3e-7, 0.37):
        rows = []
        for spec in specs:
            for dtype, tol in (("float16", 2e-3), ("float32", 2e-5)):
                for layout in vocab.LAYOUTS:
                    row = vocab.base_row(vocab.CHECK, "cpu (Triton interpreter)", spec.scaled(), dtype, layout,
                                         "triton_convt")  # fmt: skip
                    rows.append({**row, "max_rel_error": tol * 0.01234567 * scale, "tolerance": tol, "ok": True})
        out = tmp_path / str(scale)
        render.write_results(rows + model, str(out), cpu.cpu_environment(), None)
        written.append({p.name: p.read_bytes() for p in out.iterdir()})
    assert set(written[0]) == {"results.csv", "results.json", "roofline.png", "bytes.png", "checks.png", "summary.md"}
    assert written[0] == written[1] == written[2]
    # The PNGs carry no matplotlib version (a "Software" text chunk).
    assert all(b"Software" not in content for name, content in written[0].items() if name.endswith(".png"))
    # A failed check keeps its error in the files: it is what needs looking at.
    rows[0] = {**rows[0], "ok": False, "max_rel_error": 0.5}
    render.write_results(rows + model, str(tmp_path / "failed"), cpu.cpu_environment(), None)
    assert "5.00e-01" in (tmp_path / "failed" / "summary.md").read_text()
    assert render.check_error_lines(rows)[0].endswith("float16 2.5e+02, float32 0.0046")


def fake_timer(times):
    """A do_bench stand-in: each implementation's (median, q20, q80) by its function; records what it timed."""
    calls = []

    def timer(fn):
        calls.append(fn)
        return times[fn]

    return timer, calls


def small_case(dtype=torch.float32):
    spec = layers.select(["sam-up2-gelu"])[0].scaled()
    return spec, *vocab.make_inputs(spec, dtype, "channels_last", "cpu")


def test_measure_case_checks_times_and_flags_a_wrong_output():
    spec, x, w, b = small_case()
    right = gpu.implementations(spec, x, w, b, ["triton_convt", "cudnn"])
    wrong = Impl("wrong", lambda: right[1].fn() * 1.01)
    broken = Impl("broken", lambda: 1 / 0)
    timer, calls = fake_timer({right[0].fn: (1.0, 0.9, 1.2), right[1].fn: (2.0, 1.9, 2.5), wrong.fn: (0.1, 0.1, 0.1)})
    rows = {r["impl"]: r for r in gpu.measure_case(spec, x, w, b, right + [wrong, broken], timer, "fake")}

    assert calls == [right[0].fn, right[1].fn]  # wrong outputs are not timed
    ours, cudnn = rows["triton_convt"], rows["cudnn"]
    assert ours["ok"] and cudnn["ok"] and ours["layout"] == "channels_last" and ours["kind"] == vocab.MEASURED
    assert (ours["median_ms"], ours["q20_ms"], ours["q80_ms"]) == (1.0, 0.9, 1.2)
    assert ours["tflops"] == pytest.approx(spec.flops / 1e-3 / 1e12)
    assert ours["gbps"] == pytest.approx(workmodel.spec_traffic(spec, 4)["fused"] / 1e-3 / 1e9)
    assert ours["speedup_vs_cudnn"] == 2.0 and ours["speedup_vs_best_torch"] == 2.0 and cudnn["speedup_vs_cudnn"] == 1.0
    assert not rows["wrong"]["ok"] and rows["wrong"]["max_rel_error"] > rows["wrong"]["tolerance"]
    assert "median_ms" not in rows["wrong"] and "speedup_vs_cudnn" not in rows["wrong"]
    assert not rows["broken"]["ok"] and "ZeroDivisionError" in rows["broken"]["error"]


def test_cudnn_benchmark_is_set_for_each_implementation_and_restored():
    spec, x, w, b = small_case()
    seen = {}
    impls = gpu.implementations(spec, x, w, b, ["cudnn", "cudnn_benchmark"])
    for impl in impls:
        fn = impl.fn
        impl.fn = lambda fn=fn, name=impl.name: (
            seen.setdefault(name, torch.backends.cudnn.benchmark) is not None and fn()
        )
    before = torch.backends.cudnn.benchmark
    timer = lambda fn: (1.0, 1.0, 1.0)  # noqa: E731
    gpu.measure_case(spec, x, w, b, impls, timer, "fake")
    assert seen == {"cudnn": False, "cudnn_benchmark": True} and torch.backends.cudnn.benchmark == before


def test_fp32_tolerance_follows_tf32_only_on_cuda():
    cudnn = torch.backends.cudnn
    with cudnn.flags(
        enabled=cudnn.enabled, benchmark=cudnn.benchmark, deterministic=cudnn.deterministic, allow_tf32=True
    ):
        assert checking.tolerance(torch.float32, "cuda") == checking.TF32_TOLERANCE
        assert checking.tolerance(torch.float32, "cpu") == checking.TOLERANCE[torch.float32]


def test_gpu_loop_rows_render_from_csv(tmp_path):
    # The GPU loop on CPU tensors with a fake timer (triton_convt 2x faster than cuDNN on one layer, 0.5x on the
    # other), written like a GPU run, then rendered again from its CSV alone.
    specs = [s.scaled() for s in layers.select(["sam-up2-gelu", "unet-up1-k2s2"])]

    def timer(fn):
        ours = "activation" in fn.__code__.co_names  # the triton_convt implementation's lambda passes activation=
        return (1.0, 0.9, 1.1) if not ours else ((0.5, 0.4, 0.6) if timer.layer == 0 else (2.0, 1.9, 2.1))

    rows = []
    for i, spec in enumerate(specs):
        timer.layer = i
        rows += gpu.gpu_rows([spec], ["float16"], "cpu", timer, ["triton_convt", "cudnn", "cudnn_benchmark"], False)
    assert len(rows) == 2 * 2 * 3 and all(r["ok"] for r in rows)
    measured = tmp_path / "gpu"
    render.write_results(rows, str(measured), {"gpu": "fake"}, None)
    rendered = tmp_path / "again"
    assert cli.main(["--from-csv", str(measured / "results.csv"), "--out", str(rendered)]) == 0
    for png in ("throughput.png", "speedup.png"):
        assert (rendered / png).read_bytes().startswith(PNG_MAGIC)
    summary = (rendered / "summary.md").read_text()
    assert "float16/channels_last: 1.00x" in summary and "float16/nchw: 1.00x" in summary  # geomean of 2x and 0.5x
    assert "gpu: fake" in summary and "12 of 12 outputs correct" in summary


def test_gpu_loop_runs_1d_and_3d_layers():
    # The GPU loop's implementations for 1-D and 3-D layers (triton_convt's and torch's conv_transpose1d/3d), on
    # CPU tensors with a fake timer: each checked against torch in fp64, in both layouts.
    specs = [next(s for s in layers.load() if s.ndim == n).scaled() for n in (1, 3)]
    rows = gpu.gpu_rows(specs, ["float32"], "cpu", lambda fn: (1.0, 1.0, 1.0), ["triton_convt", "cudnn"], False)
    assert len(rows) == 2 * 2 * 2 and all(r["ok"] for r in rows), [r for r in rows if not r["ok"]]
    assert {r["layout"] for r in rows} == set(vocab.LAYOUTS)
