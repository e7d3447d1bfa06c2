"""The report's second yardstick: NVIDIA's GEMM model of each layer's phases (``triton_convt.tools.nvmodel``).
Model figures only; nothing here is measured."""

import dataclasses

import pytest

from triton_convt.tools import layers, nvmodel, workmodel
from triton_convt.tools.report import cpu, render
from triton_convt.tools.report.rows import FUSED

GEMM_LAYERS = [s for s in layers.load() if not workmodel.is_depthwise(s.layer)]


@pytest.mark.parametrize("spec", GEMM_LAYERS, ids=lambda s: s.name)
def test_phase_gemms_are_the_kernels_work_without_tile_padding(spec):
    # One row, one column, one channel per tile: the kernel issues exactly each phase's M x N x K per group.
    unit = {"BLOCK_M": 1, "BLOCK_N": 1, "BLOCK_K": 1}
    gemms = nvmodel.phase_gemms(spec.layer)
    assert sum(m * n * k * g for m, n, k, g in gemms) == workmodel.work(spec.layer, unit).issued_macs
    layer = spec.layer
    assert all(n == layer.c_out_g and g == layer.groups and k % layer.c_in_g == 0 for _, n, k, g in gemms)


def test_the_estimate_is_positive_and_grows_with_the_problem():
    pytest.importorskip("nvMatmulHeuristics")  # in the test extra wherever its wheel exists (Linux x86-64)
    layer = layers.select(["vitdet-sfp-s2"])[0].layer
    for gpu in ("H100_SXM", "A100_SXM_80GB"):
        for dtype in ("float16", "bfloat16", "float32"):
            small = nvmodel.layer_estimate_ms(layer, dtype, gpu)
            large = nvmodel.layer_estimate_ms(dataclasses.replace(layer, n=layer.n * 8), dtype, gpu)
            assert 0 < small < large, (gpu, dtype, small, large)
    # The slower part takes longer by NVIDIA's model too, on a compute-heavy layer.
    big = dataclasses.replace(layer, n=layer.n * 8)
    assert nvmodel.layer_estimate_ms(big, "float16", "A100_SXM_80GB") > nvmodel.layer_estimate_ms(
        big, "float16", "H100_SXM"
    )


def test_without_the_package_the_column_is_empty_and_the_summary_says_so(monkeypatch):
    monkeypatch.setattr(nvmodel, "_module", lambda: None)
    assert not nvmodel.available()
    spec = layers.select(["sam-up2-gelu"])[0]
    assert nvmodel.layer_estimate_ms(spec.layer, "float16", "H100_SXM") is None
    rows = cpu.model_rows([spec], ["float16"])
    assert all(r.get("nvidia_model_ms") is None for r in rows)
    summary = "\n".join(render.summary_lines(rows, {}, {}, None))
    assert "nvidia-matmul-heuristics is not installed" in summary
    table = [line for line in summary.splitlines() if line.startswith("| sam-up2-gelu")]
    assert table and table[0].endswith("|  |")  # the last part's NVIDIA-model cell is empty


def test_with_the_package_the_fused_rows_carry_the_estimate():
    pytest.importorskip("nvMatmulHeuristics")
    spec = layers.select(["sam-up2-gelu"])[0]
    rows = cpu.model_rows([spec], ["float16"])
    for r in rows:
        if r["impl"] == FUSED:
            expected = nvmodel.layer_estimate_ms(spec.layer, "float16", cpu.PEAKS[r["device"]]["nvidia_gpu"])
            assert r["nvidia_model_ms"] == expected and expected > 0
        else:  # a model of the GEMM, not of the unfused chain
            assert "nvidia_model_ms" not in r
    summary = "\n".join(render.summary_lines(rows, {}, {}, None))
    assert "not a measurement" in summary and "not installed" not in summary


def test_phases_of_one_shape_are_one_batched_gemm():
    # k4 s2: four phases of 2x2 taps, one shape; k3 s2 p1 op1: phases of 1, 2, 2 and 4 taps, three shapes.
    same = layers.select(["pix2pix-up-k4s2p1"])[0].layer
    ((m, n, k, batch),) = nvmodel.batched_gemms(same)
    assert batch == 4 * same.groups and nvmodel.phase_gemms(same) == [(m, n, k, same.groups)] * 4
    vae = layers.select(["vae-k3s2p1op1"])[0].layer
    assert sorted(b for *_, b in nvmodel.batched_gemms(vae)) == [1, 1, 2]
    for spec in GEMM_LAYERS:
        merged = nvmodel.batched_gemms(spec.layer)
        per_phase = nvmodel.phase_gemms(spec.layer)
        assert sum(m * n * k * b for m, n, k, b in merged) == sum(m * n * k * g for m, n, k, g in per_phase)
