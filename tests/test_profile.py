"""Every shipped config compiles for sm_80 and sm_90, in both layouts, into code without spills that fits the
target's shared memory and uses the tensor cores (``python -m triton_convt.profile``, run without the
interpreter in a subprocess: the interpreter's kernels cannot be compiled)."""

import json
import os
import subprocess
import sys

import pytest
import torch
import triton

from triton_convt.launch import configs
from triton_convt.tools.aot import SHARED_LIMIT, local_memory_in_loops, sass
from triton_convt.tools.profile import cubin_name
from triton_convt.tools.samples import DTYPE_VARIANTS, SAMPLE_PLANS


@pytest.fixture(scope="module")
def profile(tmp_path_factory):
    out = tmp_path_factory.mktemp("profile")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    # bfloat16 compiles to the same tiles, registers and spills as float16 (the profile command builds both; the
    # suite's time budget does not): float16 stands for the 16-bit class here.
    cmd = [sys.executable, "-m", "triton_convt.tools.profile", "--arch", "sm90", "--arch", "sm80", "--out", str(out),
           "--dtype", "float16", "--dtype", "float32", "--dtype", "float64"]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert os.path.exists(out / "profile.json"), done.stderr[-3000:]
    with open(out / "profile.json") as f:
        data = json.load(f)
    return out, done, data


def test_every_build_compiled(profile):
    out, done, data = profile
    failed = [b for b in data["builds"] if "error" in b]
    assert not failed, failed[0]["error"]
    assert (out / "profile.md").read_text().strip() in done.stdout  # the table is printed too
    for b in data["builds"]:
        assert (out / cubin_name(b)).read_bytes()[:4] == b"\x7fELF"


def test_every_shipped_config_is_built_for_its_targets_in_both_layouts(profile):
    _, _, data = profile
    built = {(b["arch"], b["kernel"], json.dumps(b["config"]), b["layout"], b["dtype"], b["precision"])
             for b in data["builds"]}  # fmt: skip
    for target in configs.available_targets():
        archs = [int(target[2:])] if target.startswith("sm") else [80, 90]
        data_t = configs.load(target)
        for kernel in configs.kernel_keys(data_t):
            if kernel not in SAMPLE_PLANS:
                continue  # reported by test_every_kernel_key_has_a_sample_plan
            for cls in data_t[kernel]:
                dtypes = [(str(d).split(".")[1], p) for d, p in DTYPE_VARIANTS[cls] if d != torch.bfloat16]
                for c in configs.usable(target, kernel, cls):  # those the installed Triton can compile
                    for arch in archs:
                        for layout in ("channels_last", "nchw"):
                            for dtype, precision in dtypes:
                                assert (arch, kernel, json.dumps(c), layout, dtype, precision) in built, (target, c)


def test_every_kernel_key_has_a_sample_plan(profile):
    _, _, data = profile
    assert data["missing"] == [], (
        "these kernel keys of autotune_configs/ have no sample plan, so their configs are never compiled: register "
        "a builder in triton_convt.aot.SAMPLE_PLANS"
    )


@pytest.mark.parametrize("arch", [80, 90])
def test_no_spills_shared_memory_within_limits_and_tensor_cores(profile, arch):
    out, _, data = profile
    builds = [b for b in data["builds"] if b["arch"] == arch and "error" not in b]
    assert builds
    gemm = {k: "DOT_PRECISION" in make(torch.float32, "nchw").args for k, make in SAMPLE_PLANS.items()}
    for b in builds:
        where = (b["kernel"], b["dtype"], b["precision"], b["layout"], b["config"])
        if triton.__version__ == configs.load("default")["triton"]:  # the Triton the configs were written for
            assert b["spill_bytes"] == 0 and b["local_memory_instructions"] == 0, (where, b["registers"])
        elif b["spill_bytes"] or b["local_memory_instructions"]:
            # Another release's code may make ptxas save a value or two across the loops (triton 3.6: 8 to 16
            # bytes in 7 bwd_input builds, 2 to 6 instructions); never inside a loop, where the time goes.
            assert local_memory_in_loops(sass((out / cubin_name(b)).read_bytes())) == 0, (where, b["registers"])
        assert b["shared_bytes"] <= SHARED_LIMIT[arch], where
        # The estimate pruning uses must bound what the compiler allocates, or pruning could keep a config the
        # device cannot launch.
        assert b["shared_bytes"] <= b["shared_estimate"] or b["shared_estimate"] == 0, where
        # fp32 with TF32 off runs the exact ("ieee") FMA path; every other build of a GEMM kernel must use the
        # tensor cores (the elementwise and reduction kernels have no tl.dot).
        if gemm[b["kernel"]] and (b["precision"] != "ieee" or b["dtype"] != "float32"):
            assert b["tensor_core_instructions"] > 0, where
