"""The forward kernel's int64 index path compiles for sm_80 and sm_90 without a GPU, and ``triton-convt-profile
--picked`` reports the build the launcher would pick. Every shipped config, in every dtype and layout, is compiled
by ``tests/test_profile.py``; this adds the int64 path, which that profile does not build, and shows that the gfx942
reader the profile relies on does report spills and a missing matrix core."""

import json
import os
import subprocess
import sys

import pytest
import torch
import triton

from triton_convt.launch import configs
from triton_convt.tools import hotloop
from triton_convt.tools.aot import SHARED_LIMIT, local_memory_in_loops, sass
from triton_convt.tools.samples import ND_FORWARD_SAMPLES

#: Compiles for GPU targets without a GPU (a subprocess); nothing in it depends on --device, the CPU run covers it.
pytestmark = pytest.mark.interpreter_only


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    out = tmp_path_factory.mktemp("picked")
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "TRITON_DEFAULT_FP_FUSION")}
    cmd = [sys.executable, "-m", "triton_convt.tools.profile", "--picked", "--arch", "sm80", "--arch", "sm90",
           "--dtype", "float16", "--out", str(out)]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "profile.md").read_text().strip() in done.stdout  # a table, not raw JSON
    records = json.loads((out / "profile.json").read_text())["builds"]
    return [{**b, "sass": sass((out / b["cubin"]).read_bytes())} for b in records]


def test_both_targets_and_both_index_widths_compile(builds):
    seen = {(b["arch"], b.get("index", "int32")) for b in builds}
    assert seen == {(a, i) for a in (80, 90) for i in ("int32", "int64")}


@pytest.mark.parametrize("arch", [80, 90])
def test_builds_fit_shared_memory_use_tensor_cores_and_do_not_spill(builds, arch):
    for b in (b for b in builds if b["arch"] == arch):
        assert b["shared_bytes"] <= SHARED_LIMIT[arch], b
        assert b["tensor_core_instructions"] > 0, b
        if triton.__version__ == configs.load("default")["triton"]:  # the Triton the configs were written for
            assert b["spill_bytes"] == 0 and b["local_memory_instructions"] == 0, b
        else:  # another release may save a value or two (triton 3.6: 8 bytes in the NCHW 3-D k2 s2 sm_80 build),
            assert hotloop.local_memory_in_mma_loops(b["sass"]) == 0, b  # never in a tensor-core loop


def test_1d_and_3d_builds_are_reported_with_their_hot_loop_and_not_gated(builds):
    # Issue 15: the forward kernel on the 1-D and 3-D sample problems, built with the launcher's pick, shows its hot
    # loop and its ratio to the reference GEMM in the profile; the CI gate holds the 2-D configs only.
    nd = [b for b in builds if b.get("sample")]
    # In both layouts (issue 20: NCL and NCDHW run the window variant, as NCHW does).
    expected = {(a, s, layout) for a in (80, 90) for s in ND_FORWARD_SAMPLES for layout in ("channels_last", "nchw")}
    assert {(b["arch"], b["sample"], b["layout"]) for b in nd} == expected
    for b in nd:
        assert "error" not in b and b["hot_tensor_core"] and b["mma_loops"] >= 1, b
        assert b["reference_ratio"] > 0 and not hotloop.gated(b), b
    assert hotloop.gated(next(b for b in builds if not b.get("sample")))


def test_refuses_to_run_under_the_interpreter():
    env = dict(os.environ, TRITON_INTERPRET="1")
    cmd = [sys.executable, "-m", "triton_convt.tools.profile", "--picked", "--arch", "sm80", "--out", "unused"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "TRITON_INTERPRET" in done.stderr


_AMD_BUILD = """
import json, torch
from triton_convt.functional.conv_transpose import check_call
from triton_convt.launch.conv_transpose_fwd import forward_plan
from triton_convt.tools import aot, samples
# An NCHW input on the phase path: a tile of 8 columns cannot hold the 16 W taps of one channel, so the window
# variant leaves it to the phase path, which gathers the input element by element.
config = {"BLOCK_M": 64, "BLOCK_N": 8, "BLOCK_K": 32, "num_warps": 4, "num_stages": 3}
x = samples._sample(2, 256, 16, 16, dtype=torch.float16)
w = samples._sample(256, 256, 4, 16, dtype=torch.float16, layout="channels_last")
params = check_call(x, w, None, 2, 1, 0, 1, 1)
plan = forward_plan(x, w, None, samples._output(x, w, params, "nchw"), params, config=config)
assert not plan.args["W_WINDOW"]
print(json.dumps({"attrs": repr(aot.jit_specialization(plan, aot.gpu_target("gfx942"))[2]),
                  "record": aot.measure(plan, "gfx942")[0]}))
"""


@pytest.mark.skipif(
    triton.__version__ != configs.load("gfx942")["triton"],
    reason="gfx942's compiled code is held on the Triton its configs were written for",
)
def test_the_amd_reader_sees_spills_and_a_missing_matrix_core():
    # A tile only 8 columns wide (default.json's, for 3-channel RGB outputs on NVIDIA GPUs) is below gfx942's
    # narrowest matrix-core tile (16) and falls back to FMA, and an NCHW input on the phase path needs more scalar
    # registers than gfx942 has: the reader behind the gfx942 profile must report both, or its zero-spill,
    # v_mfma-present checks prove nothing. This is why gfx942.json has no tile narrower than 16.
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, "-c", _AMD_BUILD], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.splitlines()[-1])
    record = got["record"]
    assert record["tensor_core_instructions"] == 0 and record["matrix_instructions"] == []
    assert record["sgpr_spills"] > 0 and record["sgprs"] > 0 and record["vgprs"] > 0 and record["occupancy"] > 0
    # The HIP backend's own specialisation: pointers to tensors under 2 GB get buffer-load hints.
    assert "tt.pointer_range" in got["attrs"]


def sass_line(addr: int, text: str) -> str:
    """One instruction as ``cuobjdump --dump-sass`` prints it (with its encoding line)."""
    return f"        /*{addr:04x}*/                   {text} ;   /* 0x0000000000000000 */\n" + " " * 90 + "/* 0x0 */\n"


def test_local_memory_in_loops_counts_only_spill_traffic_between_a_backward_branch_and_its_target():
    # Saved before the loop, restored after it: the cold spill ptxas makes of triton 3.6's bwd_input code.
    cold = [(0x10, "STL [R1], R16"), (0x20, "HMMA.16816.F32 R4, R8, R12, R4"), (0x30, "@P1 BRA 0x20"),
            (0x40, "LDL.LU R16, [R1]"), (0x50, "EXIT")]  # fmt: skip
    assert local_memory_in_loops("".join(sass_line(a, t) for a, t in cold)) == 0
    hot = cold[:1] + [(0x20, "LDL R18, [R1+0x4]")] + cold[2:]
    assert local_memory_in_loops("".join(sass_line(a, t) for a, t in hot)) == 1
    forward_only = [(0x10, "@P0 BRA 0x40"), (0x20, "STL [R1], R2"), (0x40, "EXIT")]
    assert local_memory_in_loops("".join(sass_line(a, t) for a, t in forward_only)) == 0
    with pytest.raises(ValueError, match="unreadable branch"):
        local_memory_in_loops(sass_line(0x10, "BRA `(.L_x_1)"))


def test_the_sample_launches_are_the_same_on_every_run():
    # The profile compiles these plans: their operands must not be uninitialised memory, or the launcher's read of
    # the weights (the masked-products variant for non-finite ones) would pick the build by chance.
    from triton_convt.tools import samples

    first, second = (samples.forward_sample_plan(torch.float16, "nchw") for _ in range(2))
    for name in ("x_ptr", "w_ptr", "bias_ptr"):
        assert torch.equal(first.args[name], second.args[name]) and first.args[name].isfinite().all()
    assert first.args["MASK_PRODUCTS"] is False
