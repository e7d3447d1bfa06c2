"""The SASS hot-loop reader behind the profile's hot-loop columns and CI rule (``triton_convt.tools.hotloop``): on
handwritten SASS, whose answers are known by construction, and on a real compile of the reference GEMM (the
tutorial's loop), whose tensor-core instructions per iteration must multiply out to exactly one K step of its tile.
The forward kernel's own builds are held to the rule in ``tests/test_profile.py``."""

import json
import os
import re
import subprocess
import sys

import pytest

from triton_convt.tools import hotloop

#: Compiles for GPU targets without a GPU (a subprocess) and reads text; nothing depends on --device.
pytestmark = pytest.mark.interpreter_only


def sass(*functions: list[tuple[int, str]]) -> str:
    """``cuobjdump --dump-sass`` text of ``functions`` (each a list of ``(address, instruction)``)."""
    text = "\n\tcode for sm_90\n"
    for i, code in enumerate(functions):
        text += f'\t\tFunction : kernel_{i}\n\t.headerflags\t@"EF_CUDA_SM90"\n'
        for addr, instruction in code:
            text += f"        /*{addr:04x}*/                   {instruction} ;   /* 0x0000000000000000 */\n"
            text += " " * 90 + "/* 0x0000000000000000 */\n"
    return text


#: An sm_80-style loop: a scalar weight load, a 128-bit and a cp.async input load, two HMMAs, and instructions that
#: never issue (NOP, @!PT), between the prologue and the epilogue.
SM80_LOOP = [
    (0x00, "MOV R1, c[0x0][0x28]"),
    (0x10, "@P0 EXIT"),
    (0x20, "LDGSTS.E.BYPASS.128 [R3], desc[UR4][R8.64], P1"),
    (0x30, "@P2 LDG.E.U16 R10, desc[UR4][R12.64]"),  # loop starts here
    (0x40, "LDG.E.128 R16, desc[UR4][R14.64]"),
    (0x50, "LDGSTS.E.BYPASS.128 [R3+0x1000], desc[UR4][R8.64], P1"),
    (0x60, "@!PT LDS RZ, [RZ]"),
    (0x70, "HMMA.16816.F32 R20, R4, R6, R20"),
    (0x80, "HMMA.16816.F32 R24, R4, R7, R24"),
    (0x90, "NOP"),
    (0xA0, "IADD3 R8, P3, R8, 0x40, RZ"),
    (0xB0, "LDG.E.64 R30, desc[UR4][R14.64+0x10]"),
    (0xC0, "@P1 BRA 0x30"),
    (0xD0, "STG.E [R2.64], R20"),
    (0xE0, "EXIT"),
    (0xF0, "BRA 0xf0"),  # the trap loop after the end: no MMA, not a hot loop
]


def test_one_loop_counted_per_iteration():
    got = hotloop.hot_loop(sass(SM80_LOOP))
    assert got == {"hot_tensor_core": 2, "hot_instructions": 8, "hot_other": 6, "hot_scalar_loads": 1,
                   "hot_vector_loads": 2, "hot_ldgsts": 1, "hot_utmaldg": 0, "wgmma_wait": None,
                   "mma_loops": 1}  # fmt: skip
    # The whole kernel, each instruction once: the 16 lines less the NOP and the @!PT load, which never issue.
    assert hotloop.kernel_instructions(sass(SM80_LOOP)) == 14
    assert hotloop.kernel_instructions(sass(SM80_LOOP, SM80_LOOP)) == 28


def test_one_loop_per_tap_inside_an_outer_loop_counts_the_inner_ones_and_reports_the_largest():
    taps = [
        (0x00, "S2R R0, SR_CTAID.X"),
        (0x10, "IMAD R2, R0, 0x4, RZ"),  # outer loop (over phases, say) from here
        (0x20, "LDG.E.U16 R4, desc[UR4][R2.64]"),  # tap 1: one MMA, one scalar load
        (0x30, "HMMA.16816.F32 R8, R4, R6, R8"),
        (0x40, "@P0 BRA 0x20"),
        (0x50, "LDG.E.128 R4, desc[UR4][R2.64]"),  # tap 2: two MMAs
        (0x60, "HMMA.16816.F32 R8, R4, R6, R8"),
        (0x70, "HMMA.16816.F32 R12, R4, R7, R12"),
        (0x80, "@P1 BRA 0x50"),
        (0x90, "@P2 BRA 0x10"),
        (0xA0, "EXIT"),
    ]
    got = hotloop.hot_loop(sass(taps))
    assert got["mma_loops"] == 2 and got["hot_tensor_core"] == 2 and got["hot_instructions"] == 4
    assert got["hot_vector_loads"] == 1 and got["hot_scalar_loads"] == 0
    # A second function (cuobjdump restarts the addresses) adds its loops to the count.
    assert hotloop.hot_loop(sass(taps, SM80_LOOP))["mma_loops"] == 3


def test_sm90_wait_depth_tma_loads_and_an_out_of_line_retry_are_read():
    tma = [
        (0x00, "@P0 EXIT"),
        (0x10, "SYNCS.PHASECHK.TRANS64.TRYWAIT P0, [UR13+0x18000], R4"),  # loop from here
        (0x20, "@!P0 BRA 0x100"),  # the wait's retry, placed after EXIT
        (0x30, "WARPGROUP.ARRIVE"),
        (0x40, "HGMMA.64x128x16.F32 R24, gdesc[UR8].tnspB, R24"),
        (0x50, "HGMMA.64x128x16.F32 R24, gdesc[UR12].tnspB, R24, gsb0"),
        (0x60, "WARPGROUP.DEPBAR.LE gsb0, 0x1"),
        (0x70, "@UP2 UTMALDG.2D [UR16], [UR32]"),
        (0x80, "@UP3 UTMALDG.2D [UR20], [UR12]"),
        (0x90, "@P1 BRA 0x10"),
        (0xA0, "WARPGROUP.DEPBAR.LE gsb0, 0x0"),  # the drain after the loop: not the loop's wait
        (0xB0, "EXIT"),
        (0x100, "SYNCS.PHASECHK.TRANS64.TRYWAIT P0, [UR13+0x18000], R4"),
        (0x110, "@!P0 BRA 0x100"),
        (0x120, "BRA 0x30"),  # back into the loop: a span holding EXIT, not a loop
    ]
    got = hotloop.hot_loop(sass(tma))
    assert got["mma_loops"] == 1 and got["hot_tensor_core"] == 2 and got["hot_instructions"] == 9
    assert got["hot_utmaldg"] == 2 and got["wgmma_wait"] == 1 and got["hot_scalar_loads"] == 0
    # Waiting for every group inside the loop (today's forward kernel): depth 0, the smallest in the loop.
    serial = tma[:7] + [(0x68, "WARPGROUP.DEPBAR.LE gsb0, 0x0")] + tma[7:]
    assert hotloop.hot_loop(sass(serial))["wgmma_wait"] == 0


def test_no_tensor_core_loop_gives_no_figures_and_an_unreadable_branch_is_an_error():
    fma = [(0x00, "FFMA R2, R4, R6, R2"), (0x10, "@P0 BRA 0x0"), (0x20, "EXIT")]
    assert hotloop.hot_loop(sass(fma)) == dict.fromkeys(hotloop.KEYS)
    with pytest.raises(ValueError, match="unreadable branch"):
        hotloop.hot_loop(sass([(0x00, "HMMA.16816.F32 R8, R4, R6, R8"), (0x10, "BRA `(.L_x_1)")]))


def _record(**changes) -> dict:
    good = {"kernel": "conv_transpose2d_fwd", "arch": 90, "dtype": "bfloat16", "precision": "ieee",
            "layout": "channels_last", "config": {"BLOCK_M": 128}, "cubin": "good.cubin", "hot_tensor_core": 8,
            "hot_scalar_loads": 0, "wgmma_wait": 1, "reference_ratio": 1.05}  # fmt: skip
    return {**good, **changes}


def test_the_gate_passes_a_good_record_and_names_each_fault_of_a_bad_one():
    assert hotloop.gate([_record(), _record(arch=80, wgmma_wait=None, reference_ratio=1.15)]) == []
    bad = _record(cubin="bad.cubin", reference_ratio=1.4, hot_scalar_loads=8, wgmma_wait=0)
    (violation,) = hotloop.gate([_record(), bad])
    assert violation.startswith("bad.cubin:")
    assert "1.40 > 1.15" in violation and "8 scalar global loads" in violation and "0 groups" in violation
    assert hotloop.gate([_record(error="Traceback ...")]) == ["good.cubin: build failed"]
    assert "no tensor-core loop" in hotloop.gate([_record(hot_tensor_core=None)])[0]
    assert "no ratio" in hotloop.gate([_record(reference_ratio=None)])[0]
    # A narrow tile (at most 32 columns) is judged by the modelled time of the layers that take it, not by the
    # ratio; its loads and wgmma overlap are still held.
    narrow = _record(config={"BLOCK_M": 256, "BLOCK_N": 8}, reference_ratio=1.9)
    assert hotloop.narrow(narrow) and hotloop.gate([narrow]) == []
    (violation,) = hotloop.gate([{**narrow, "hot_scalar_loads": 2}])
    assert "2 scalar global loads" in violation and "reference GEMM" not in violation
    assert not hotloop.narrow(_record(config={"BLOCK_M": 128, "BLOCK_N": 64}))
    # Outside the rule: other kernels, fp32, a key's builds in the other layout, gfx942, builds on the 1-D/3-D
    # samples and on the layer set.
    for other in (dict(kernel="conv_transpose2d_bwd_input"), dict(kernel="conv_transpose2d_bwd_weight"),
                  dict(dtype="float32"), dict(layout="nchw"), dict(kernel="conv_transpose2d_fwd_nchw"),
                  dict(kernel="conv2d_pixel_shuffle_nchw", layout="nchw"), dict(arch="gfx942"),
                  dict(sample="1d-k16s8"), dict(layer="dcgan-g4-tanh")):  # fmt: skip
        assert hotloop.gate([{**bad, **other}]) == []
    # Inside it: the NCHW forward and the NCHW input gradient (the window variant), held to the same limits.
    for nchw in ("conv_transpose2d_fwd_nchw", "conv_transpose2d_bwd_input_nchw"):
        (violation,) = hotloop.gate([{**bad, "kernel": nchw, "layout": "nchw"}])
        assert "1.40 > 1.15" in violation and "8 scalar global loads" in violation and "0 groups" in violation
    # An NCHW config's BLOCK_N counts W taps x channels: 32 columns are not a narrow tile there, the ratio holds.
    nchw_32 = {**bad, "kernel": "conv_transpose2d_fwd_nchw", "layout": "nchw", "config": {"BLOCK_N": 32}}
    assert not hotloop.narrow(nchw_32) and "1.40 > 1.15" in hotloop.gate([nchw_32])[0]


_REFERENCE = """
import json, torch
from triton_convt.tools import aot, hotloop, reference_gemm
out = []
for arch, config in ((80, {"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 32, "num_warps": 4, "num_stages": 3}),
                     (90, {"BLOCK_M": 128, "BLOCK_N": 128, "BLOCK_K": 64, "num_warps": 8, "num_stages": 3})):
    code = aot.sass(aot.compile_plan(reference_gemm.reference_plan(config, torch.float16), arch).asm["cubin"])
    start, end = hotloop.mma_loops(hotloop.instructions(code)[0])[0]
    body = [t for a, t in hotloop.instructions(code)[0] if start <= a <= end]
    mmas = [hotloop.opcode(t) for t in body if hotloop.TENSOR_CORE.match(hotloop.opcode(t).split(".")[0])]
    out.append({"arch": arch, "config": config, "figures": hotloop.hot_loop(code), "mmas": mmas,
                "cached": reference_gemm.reference(config, arch, "float16") == hotloop.hot_loop(code)})
print(json.dumps(out))
"""


def test_the_reference_gemm_compiles_to_one_pipelined_loop_of_one_k_step():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, "-c", _REFERENCE], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    for got in json.loads(done.stdout.splitlines()[-1]):
        config, figures = got["config"], got["figures"]
        assert got["cached"] and figures["mma_loops"] == 1 and figures["hot_scalar_loads"] == 0
        # The MMAs of one iteration, per warp (HMMA.16816: 16x8x16) or per warpgroup of 4 warps (HGMMA.64xNx16),
        # multiply out to exactly the tile's one K step: the loop found is the whole reduction step, nothing more.
        macs = 0
        for op in got["mmas"]:
            if op.startswith("HMMA.16816"):
                macs += 16 * 8 * 16 * config["num_warps"]
            else:
                m, n, k = map(int, re.match(r"HGMMA\.(\d+)x(\d+)x(\d+)", op).groups())
                macs += m * n * k * config["num_warps"] // 4
        assert macs == config["BLOCK_M"] * config["BLOCK_N"] * config["BLOCK_K"], got
        assert figures["hot_tensor_core"] == len(got["mmas"])
        if got["arch"] == 80:  # both operands by 16-byte cp.async
            assert figures["hot_ldgsts"] >= 2 and figures["wgmma_wait"] is None
        else:  # wgmma with the next loads in flight: the tutorial's loop overlaps
            assert figures["hot_ldgsts"] >= 2 and figures["wgmma_wait"] >= 1
        assert hotloop.ratio(figures, figures) == 1.0


def test_local_memory_counts_in_the_tensor_core_loops_only():
    # A spill inside the MMA loop is paid per K step; one in an outer loop around it (the NCHW window variant's loop
    # over phases) or outside every loop is not counted.
    code = [
        (0x00, "STL [R1], R2"),  # outside every loop
        (0x10, "LDL R2, [R1]"),  # the outer loop from here
        (0x20, "STL [R1+0x4], R3"),  # the MMA loop from here
        (0x30, "HMMA.16816.F32 R8, R4, R6, R8"),
        (0x40, "LDL R3, [R1+0x4]"),
        (0x50, "@P0 BRA 0x20"),
        (0x60, "STL [R1+0x8], R4"),  # the outer loop's epilogue
        (0x70, "@P1 BRA 0x10"),
        (0x80, "EXIT"),
    ]
    assert hotloop.local_memory_in_mma_loops(sass(code)) == 2
