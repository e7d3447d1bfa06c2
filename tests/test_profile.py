"""Every shipped config compiles for sm_80, sm_90 and gfx942 (AMD MI300), in both layouts, into code without
spills that fits the target's shared memory (LDS on AMD) and uses the tensor cores (matrix cores on AMD)
(``python -m triton_convt.tools.profile``, run without the interpreter in a subprocess: the interpreter's kernels
cannot be compiled).

Every test runs on two profiles: one shipped config per kernel and arch (``--one-per-kernel``, the quick tier: every
kernel compiled for every target on every run) and every shipped config (``-m full``)."""

import json
import os
import re
import subprocess
import sys

import pytest
import torch
import triton

from triton_convt.launch import configs
from triton_convt.tools import aot, hotloop
from triton_convt.tools.aot import SHARED_LIMIT, sass, spilled
from triton_convt.tools.profile import code_name
from triton_convt.tools.samples import SAMPLE_PLANS, dtype_variants, layouts_of, uses_dot

#: Compiles for GPU targets without a GPU (a subprocess); nothing in it depends on --device, the CPU run covers it.
pytestmark = pytest.mark.interpreter_only


#: gfx942's configs are held (zero spills, v_mfma present) on the Triton they were written and compiled for; an
#: older HIP backend compiles other code (triton 3.6 fails a depthwise build outright), and the oldest-Triton CI job
#: checks what differs on the NVIDIA targets only.
GFX942_HELD = triton.__version__ == configs.load("gfx942")["triton"]


#: The profile runs of this process, by which builds: each is compiled once, whichever tests ask for it (a test that
#: names its profile with indirect parametrization gets a fixture instance of its own, not a second run).
_RUNS: dict[str, tuple] = {}


@pytest.fixture(scope="module", params=["one-per-kernel", pytest.param("shipped", marks=pytest.mark.full)])
def profile(request, tmp_path_factory):
    """``(out, done, data)`` of a profile run: its directory, the finished process and profile.json; the param says
    which builds (``one-per-kernel``: ``--one-per-kernel``; ``shipped``: every shipped config)."""
    if request.param not in _RUNS:
        _RUNS[request.param] = _run_profile(request.param, tmp_path_factory)
    return _RUNS[request.param]


def _run_profile(which: str, tmp_path_factory) -> tuple:
    out = tmp_path_factory.mktemp(f"profile-{which}")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    # bfloat16 compiles to the same tiles, registers and spills as float16 (the profile command builds both; the
    # suite's time budget does not): float16 stands for the 16-bit class here.
    archs = ["sm90", "sm80"] + (["gfx942"] if GFX942_HELD else [])
    cmd = [sys.executable, "-m", "triton_convt.tools.profile", *(a for arch in archs for a in ("--arch", arch)),
           "--out", str(out), "--dtype", "float16", "--dtype", "float32", "--dtype", "float64"]  # fmt: skip
    if which == "one-per-kernel":
        cmd.append("--one-per-kernel")
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert os.path.exists(out / "profile.json"), done.stderr[-3000:]
    with open(out / "profile.json") as f:
        data = json.load(f)
    return out, done, data


def test_every_build_compiled(profile):
    out, done, data = profile
    failed = [b for b in data["builds"] if "error" in b]
    assert not failed, failed[0]["error"]
    archs = {80, 90} | ({"gfx942"} if GFX942_HELD else set())
    assert {(b["arch"], b["kernel"]) for b in data["builds"]} == {(a, k) for a in archs for k in SAMPLE_PLANS}
    assert (out / "profile.md").read_text().strip() in done.stdout  # the tables are printed too
    for b in data["builds"]:
        code = (out / code_name(b)).read_bytes()
        if b["arch"] == "gfx942":
            assert code.startswith(b'\t.amdgcn_target "amdgpu9.42-amd-amdhsa-unknown-gfx942"'), code_name(b)
        else:
            assert code[:4] == b"\x7fELF", code_name(b)


@pytest.mark.parametrize("arch", [80, 90])
def test_every_cuda_build_names_its_cubin_and_its_hot_loop(profile, arch):
    out, _, data = profile
    builds = [b for b in data["builds"] if b["arch"] == arch and "error" not in b]
    for b in builds:
        where = (b["kernel"], b["dtype"], b["precision"], b["layout"], b["config"])
        assert b["cubin"] == code_name(b) and (out / b["cubin"]).read_bytes()[:4] == b"\x7fELF", where
        assert set(hotloop.KEYS) <= set(b), where
        # The SASS reader finds a tensor-core loop exactly where the PTX has tensor-core instructions, and every
        # such build is held against the reference GEMM at its tile.
        assert bool(b["hot_tensor_core"]) == bool(b["tensor_core_instructions"]), where
        if b["hot_tensor_core"]:
            assert b["mma_loops"] >= 1 and b["hot_instructions"] > b["hot_tensor_core"], where
            assert b["reference_ratio"] > 0 and "reference_error" not in b, where
    # The table shows the columns.
    assert (
        "| MMA/it | instr/it | LDG scalar/vector | LDGSTS | UTMALDG | MMA loops | wgmma wait | vs GEMM |"
        in (out / "profile.md").read_text()
    )


def test_16bit_forward_builds_in_both_layouts_and_nchw_input_gradient_builds_run_at_gemm_efficiency(profile):
    # Issue 13's rule, extended to NCHW by issue 20: each fp16/bf16 forward build on sm_80 and sm_90 with channels
    # innermost (the transposed convolution's and conv2d + pixel_shuffle's) and the transposed convolution's in
    # NCHW (the window variant), and each NCHW input-gradient build, issues at most 1.15x the tutorial GEMM's
    # non-tensor-core instructions per tensor-core instruction in its hot loop, no scalar global loads there, and
    # (sm_90) keeps wgmma groups in flight across its loads.
    # The ratio is held on the Triton the config files were chosen on (another Triton schedules other code; the
    # oldest-Triton job still checks the loads, the single loop's MMAs and wgmma's overlap).
    _, _, data = profile
    held = {(b["arch"], b["kernel"]) for b in data["builds"] if hotloop.gated(b)}
    assert held == {(a, k) for a in (80, 90) for k in hotloop.GATED["kernels"]}
    violations = hotloop.gate(data["builds"])
    if triton.__version__ != configs.load("sm90")["triton"]:
        kept = []
        for violation in violations:
            name, problems = violation.split(": ", 1)
            rest = [p for p in problems.split("; ") if not p.startswith("ratio to the reference GEMM")]
            kept += [f"{name}: {'; '.join(rest)}"] if rest else []
        violations = kept
    assert not violations, f"{len(violations)} builds fail the hot-loop rule:\n" + "\n".join(violations)


@pytest.mark.full
@pytest.mark.parametrize("profile", ["shipped"], indirect=True)
def test_nchw_reaches_channels_last_tiles_without_spilling(profile):
    # Issue 20: NCHW inputs take tiles as large as channels_last's (sm_90 256x128x64, the area of channels_last's
    # 128x256x64, which spills for NCHW on triton 3.6; sm_80 128x128x64), and none of their builds spills, on the
    # oldest Triton CI runs too; their loads are 16-byte cp.async copies (no scalar loads, checked above). Every
    # shipped NCHW build (the quick tier's one build per kernel is checked for spills by the test below).
    _, _, data = profile
    nchw = [b for b in data["builds"] if b["kernel"] == "conv_transpose2d_fwd_nchw" and b["dtype"] == "float16"]
    largest = {a: max((b["config"]["BLOCK_M"] * b["config"]["BLOCK_N"], b["config"]["BLOCK_K"])
                      for b in nchw if b["arch"] == a) for a in (80, 90)}  # fmt: skip
    assert largest == {80: (128 * 128, 64), 90: (128 * 256, 64)}
    assert nchw and not [b for b in nchw if spilled(b)]
    assert all(b["hot_ldgsts"] > 0 for b in nchw if b["arch"] in (80, 90))


def _expected_archs(target: str, kernel: str) -> list:
    """Where the launcher can run a file's candidates of ``kernel``: its own target; default.json (and any
    device-named file) on every NVIDIA GPU without a file of its own, for which sm_80 and sm_90 stand in, and on
    gfx942 for the kernels gfx942.json does not list."""
    if target in ("sm80", "sm90"):
        return [int(target[2:])]
    if target == "gfx942":
        return ["gfx942"] if GFX942_HELD else []
    return [80, 90] + (["gfx942"] if GFX942_HELD and kernel not in configs.load("gfx942") else [])


@pytest.mark.full
@pytest.mark.parametrize("profile", ["shipped"], indirect=True)
def test_every_shipped_config_is_built_for_its_targets_in_both_layouts(profile):
    _, _, data = profile
    built = {(b["arch"], b["kernel"], json.dumps(b["config"]), b["layout"], b["dtype"], b["precision"])
             for b in data["builds"]}  # fmt: skip
    for target in configs.available_targets():
        data_t = configs.load(target)
        for kernel in configs.kernel_keys(data_t):
            if kernel not in SAMPLE_PLANS:
                continue  # reported by test_every_kernel_key_has_a_sample_plan
            for cls in data_t[kernel]:
                dtypes = [(str(d).split(".")[1], p) for d, p in dtype_variants(kernel, cls) if d != torch.bfloat16]
                for c in configs.usable(target, kernel, cls):  # those the installed Triton can compile
                    for arch in _expected_archs(target, kernel):
                        for layout in layouts_of(kernel):
                            for dtype, precision in dtypes:
                                assert (arch, kernel, json.dumps(c), layout, dtype, precision) in built, (target, c)
    # The NVIDIA files are never built for AMD: their tiles were chosen for 32-lane warps.
    assert not [b for b in data["builds"] if b["arch"] == "gfx942" and {"sm80", "sm90"} & set(b["targets"])]


def test_every_kernel_key_has_a_sample_plan(profile):
    _, _, data = profile
    assert data["missing"] == [], (
        "these kernel keys of autotune_configs/ have no sample plan, so their configs are never compiled: register "
        "a builder in triton_convt.tools.samples.SAMPLE_PLANS"
    )


@pytest.mark.parametrize("arch", [80, 90])
def test_no_spills_shared_memory_within_limits_and_tensor_cores(profile, arch):
    out, _, data = profile
    builds = [b for b in data["builds"] if b["arch"] == arch and "error" not in b]
    assert builds
    for b in builds:
        where = (b["kernel"], b["dtype"], b["precision"], b["layout"], b["config"])
        if triton.__version__ == configs.load("default")["triton"]:  # the Triton the configs were written for
            assert b["spill_bytes"] == 0 and b["local_memory_instructions"] == 0, (where, b["registers"])
        elif b["spill_bytes"] or b["local_memory_instructions"]:
            # Another release's code may make ptxas save a value or two across the loops (triton 3.6: 8 to 16
            # bytes in 7 bwd_input builds, 2 to 6 instructions); never inside a tensor-core loop, where the time goes.
            assert hotloop.local_memory_in_mma_loops(sass((out / code_name(b)).read_bytes())) == 0, (
                where,
                b["registers"],
            )
        assert b["shared_bytes"] <= SHARED_LIMIT[arch], where
        # The estimate pruning uses must bound what the compiler allocates, or pruning could keep a config the
        # device cannot launch.
        assert b["shared_bytes"] <= b["shared_estimate"] or b["shared_estimate"] == 0, where
        # fp32 with TF32 off runs the exact ("ieee") FMA path; every other build of a GEMM kernel must use the
        # tensor cores (the elementwise and reduction kernels have no tl.dot).
        if uses_dot(b["kernel"]) and (b["precision"] != "ieee" or b["dtype"] != "float32"):
            assert b["tensor_core_instructions"] > 0, where


@pytest.mark.skipif(not GFX942_HELD, reason="gfx942's configs are held on the Triton they were written for")
def test_gfx942_no_spills_lds_within_limits_and_matrix_cores(profile):
    _, _, data = profile
    builds = [b for b in data["builds"] if b["arch"] == "gfx942" and "error" not in b]
    assert {b["kernel"] for b in builds} == set(SAMPLE_PLANS)
    # What tl.dot becomes on gfx942's matrix cores, per dtype and fp32 precision: unlike sm_80/sm_90, exact fp32
    # ("ieee") has matrix-core instructions of its own (v_mfma_f32_*_f32), and TF32 runs as xf32.
    kinds = {("float16", "ieee"): "_f16", ("float32", "tf32"): "_xf32", ("float32", "ieee"): "_f32",
             ("float64", "ieee"): "_f64"}  # fmt: skip
    for b in builds:
        where = (b["kernel"], b["dtype"], b["precision"], b["layout"], b["config"])
        # SGPR spills go to VGPR lanes rather than scratch memory, so they are checked apart from scratch.
        assert b["vgpr_spills"] == 0 and b["sgpr_spills"] == 0 and b["scratch_bytes"] == 0, (where, b["vgprs"])
        assert b["shared_bytes"] <= SHARED_LIMIT["gfx942"], where
        assert b["shared_bytes"] <= b["shared_estimate"] or b["shared_estimate"] == 0, where
        if uses_dot(b["kernel"]):
            assert b["tensor_core_instructions"] > 0, where
            suffix = kinds[(b["dtype"], b["precision"])]
            assert b["matrix_instructions"] and all(op.endswith(suffix) for op in b["matrix_instructions"]), where
        else:
            assert b["tensor_core_instructions"] == 0, where


def test_the_batched_sass_is_cuobjdumps(profile):
    # The profile reads its builds' SASS in a few nvdisasm runs over the functions laid end to end
    # (aot.sass_many); what it reads must be what cuobjdump prints of each cubin alone: every instruction at its
    # address, branch and return targets included. On the forward kernel for sm_90 (wgmma) and the unfold kernel for
    # sm_80 (calls and returns: its integer division), laid end to end.
    out, _, data = profile
    cubins = []
    for arch, kernel in ((90, "conv_transpose2d_fwd"), (80, "upsample_unfold")):
        build = next(b for b in data["builds"] if (b["arch"], b["kernel"]) == (arch, kernel))
        cubins.append((out / build["cubin"]).read_bytes())
    line = re.compile(r"/\*([0-9a-f]{4,})\*/\s+([^;]*);")

    def listing(text):
        return re.findall(r"Function : (\S+)", text), [(a, t.strip()) for a, t in line.findall(text)]

    for cubin, batched in zip(cubins, aot.sass_many(cubins)):
        assert listing(batched) == listing(aot._cuobjdump("--dump-sass", cubin))
