"""The forward kernel compiles for sm_80 and sm_90 without a GPU, so a compile error cannot hide behind the
interpreter (which never compiles anything)."""

import json
import os
import subprocess
import sys

import pytest


@pytest.fixture(scope="module")
def builds():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    cmd = [sys.executable, "-m", "triton_convt.aot", "--arch", "80", "--arch", "90", "--layout", "channels_last"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_every_dtype_compiles_for_both_targets(builds):
    seen = {(b["arch"], b["dtype"]) for b in builds}
    assert seen == {(a, d) for a in (80, 90) for d in ("float16", "bfloat16", "float32", "float64")}
    assert any(b.get("index") == "int64" for b in builds)


@pytest.mark.parametrize("arch, limit", [(80, 163 * 1024), (90, 227 * 1024)])
def test_builds_fit_shared_memory_and_use_tensor_cores(builds, arch, limit):
    for b in (b for b in builds if b["arch"] == arch):
        assert b["shared_bytes"] <= limit, b
        # fp32 with TF32 off runs the exact ("ieee") FMA path; every other build must use the tensor cores.
        if b["precision"] != "ieee" or b["dtype"] != "float32":
            assert b["tensor_core_instructions"] > 0, b
