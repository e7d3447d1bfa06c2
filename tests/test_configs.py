"""Config files and config choice: the file schema, pruning, file selection, tuning keys and the tuning cache.

The GPU path of :func:`triton_convt.launch.configs.config_for` runs here with fakes standing in for the GPU (its limits,
and the benchmark); every shipped forward config also runs under the interpreter against torch.
"""

import json
from importlib import resources

import pytest
import torch
import torch.nn.functional as F
import triton
from helpers import assert_close_to_reference, tiered, tile_volume

from triton_convt import launch
from triton_convt.functional.conv_transpose import check_call
from triton_convt.launch import configs
from triton_convt.launch.conv_transpose_fwd import allocate_output, forward_plan

#: Config choice and tuning logic run with the GPU stood in for, on CPU tensors; --device cuda skips it.
pytestmark = pytest.mark.interpreter_only

FWD = "conv_transpose2d_fwd"


def _plan(shape=(2, 8, 5, 7), c_out=12, *, channels_last=False, config=None, dtype=torch.float32, **kwargs):
    """A forward plan (k4 s2 p1 unless ``kwargs`` say otherwise) on CPU tensors, with its tensors."""
    kwargs = {"stride": 2, "padding": 1, **kwargs}
    groups = kwargs.get("groups", 1)
    x = torch.randn(shape, dtype=dtype)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    w = torch.randn(shape[1], c_out // groups, 4, 4, dtype=dtype)
    b = torch.randn(c_out, dtype=dtype)
    params = check_call(x, w, b, kwargs["stride"], kwargs["padding"], kwargs.get("output_padding", 0), groups,
                        kwargs.get("dilation", 1))  # fmt: skip
    y = allocate_output(x, w, params)
    return forward_plan(x, w, b, y, params, config=config), (x, w, b, y, params)


def test_files_have_the_schema_and_the_triton_version():
    targets = configs.available_targets()
    assert {"default", "sm80", "sm90"} <= set(targets)
    for target in targets:
        data = configs.load(target)
        assert data["triton"] == triton.__version__ and data["target"] == target
        assert FWD in configs.kernel_keys(data)
        for kernel in configs.kernel_keys(data):
            for cls, candidates in data[kernel].items():
                assert cls in configs.ITEMSIZE and candidates, (target, kernel, cls)
                for c in candidates:
                    assert {"num_warps", "num_stages"} <= set(c) and any(k.startswith("BLOCK") for k in c), c
                    assert all(isinstance(v, int) and v > 0 for v in c.values()), c
                # The last entry is the list's smallest tile (fitting() keeps it for any problem): no other entry
                # is smaller along every tile dimension.
                last = candidates[-1]
                assert not any(all(c[k] <= last[k] for k in last if k.startswith("BLOCK")) and c != last
                               and any(c[k] < last[k] for k in last if k.startswith("BLOCK"))
                               for c in candidates), (target, kernel, cls)  # fmt: skip


def test_dumps_reproduces_every_file_byte_for_byte():
    # tune rewrites files with dumps(); a shipped file in another format would make its diff unreadable.
    for target in configs.available_targets():
        text = resources.files(configs.PACKAGE).joinpath(f"{target}.json").read_text()
        assert configs.dumps(json.loads(text)) == text, target


CANDIDATES = [
    {"BLOCK_M": 128, "BLOCK_N": 128, "BLOCK_K": 64, "num_warps": 4, "num_stages": 4},
    {"BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_K": 32, "num_warps": 4, "num_stages": 3},
    {"BLOCK_M": 64, "BLOCK_N": 32, "BLOCK_K": 32, "num_warps": 4, "num_stages": 2},
    {"BLOCK_M": 32, "BLOCK_N": 16, "BLOCK_K": 16, "num_warps": 4, "num_stages": 2},
]


def test_fitting_never_comes_back_empty():
    # A list whose last tile is not the smallest along every dimension (sm80's 16-bit forward list) still yields
    # its last entry for a problem smaller than every tile.
    candidates = [{"BLOCK_M": 64, "BLOCK_N": 128, "BLOCK_K": 32}, {"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 64}]
    assert configs.fitting(candidates, {"BLOCK_M": 9, "BLOCK_N": 2, "BLOCK_K": 3}) == [candidates[-1]]


def test_fitting_drops_tiles_far_larger_than_the_problem_and_keeps_the_smallest():
    big = {"BLOCK_M": 10_000, "BLOCK_N": 512, "BLOCK_K": 512}
    assert configs.fitting(CANDIDATES, big) == CANDIDATES
    # 100 output channels round up to 128, so a 128 tile is not far larger; 30 input channels round up to 32,
    # so a 64 tile is.
    assert configs.fitting(CANDIDATES, {"BLOCK_M": 10_000, "BLOCK_N": 100, "BLOCK_K": 30}) == CANDIDATES[1:]
    # Depthwise (1 channel per group): only the list's smallest tiles remain, never nothing.
    assert configs.fitting(CANDIDATES, {"BLOCK_M": 10_000, "BLOCK_N": 1, "BLOCK_K": 1}) == CANDIDATES[3:]


def test_padding_is_issued_over_needed_tile_work():
    config = {"BLOCK_M": 64, "BLOCK_N": 16, "BLOCK_K": 16}
    assert configs.padding(config, {"BLOCK_M": 128, "BLOCK_N": 32, "BLOCK_K": 64}) == 1.0
    assert configs.padding(config, {"BLOCK_M": 100, "BLOCK_N": 3, "BLOCK_K": 100}) == (128 / 100) * (16 / 3) * (
        112 / 100
    )


def test_preferred_keeps_the_first_tile_unless_it_pads_more_than_the_slack():
    exact = {"BLOCK_M": 4096, "BLOCK_N": 256, "BLOCK_K": 256}
    assert configs.preferred(CANDIDATES, exact) == CANDIDATES[0]
    # 100 input channels: K tiles of 64 and 32 issue 128 (1.28), 16 issues 112 (1.12): none is within 1.10, so
    # the least padded wins, although it is last in the order of preference.
    assert configs.preferred(CANDIDATES, {"BLOCK_M": 4096, "BLOCK_N": 256, "BLOCK_K": 100}) == CANDIDATES[3]
    # 1.5% padding along M is within the slack: the preferred large tile stays.
    assert configs.preferred(CANDIDATES, {"BLOCK_M": 4096 - 60, "BLOCK_N": 256, "BLOCK_K": 256}) == CANDIDATES[0]
    # 96 output channels: 128 pads 1.33, 64 and 32 do not pad; the first of those is taken.
    assert configs.preferred(CANDIDATES, {"BLOCK_M": 4096, "BLOCK_N": 96, "BLOCK_K": 256}) == CANDIDATES[2]


def test_prune_drops_configs_over_the_devices_shared_memory():
    sizes = {"BLOCK_M": 10_000, "BLOCK_N": 512, "BLOCK_K": 512}
    estimate = [configs.shared_memory_estimate(c, "fp32") for c in CANDIDATES]
    assert estimate[0] == 4 * (128 * 64 + 64 * 128) * 4  # stages x (A + B tiles) x 4 bytes
    limit = estimate[1]
    assert configs.prune(CANDIDATES, "fp32", sizes, limit) == CANDIDATES[1:]
    # Nothing fits a device with no shared memory: the least hungry config is kept so the launch can report it.
    assert configs.prune(CANDIDATES, "fp32", sizes, 0) == CANDIDATES[3:]
    assert configs.shared_memory_estimate({"BLOCK": 1024, "num_warps": 4, "num_stages": 1}, "fp32") == 0


def test_the_interpreter_runs_the_first_fitting_default_config():
    plan, (x, *_rest) = _plan()
    sizes = {"BLOCK_M": 2 * 5 * 7, "BLOCK_N": 12, "BLOCK_K": 8}  # phase 0 of a 10 x 14 output
    expected = configs.choose(FWD, x.dtype, sizes)
    assert launch.interpreter_active() and expected in configs.load("default")[FWD]["fp32"]
    assert {k: v for k, v in plan.args.items() if k.startswith("BLOCK")} == {
        k: v for k, v in expected.items() if k.startswith("BLOCK")
    }
    assert (plan.num_warps, plan.num_stages) == (expected["num_warps"], expected["num_stages"])


def test_target_for_prefers_capability_then_device_name_then_default():
    available = ["default", "nvidia-a10", "sm80", "sm90"]
    assert configs.target_for((9, 0), "NVIDIA H100 80GB HBM3", available) == "sm90"
    assert configs.target_for((8, 0), "NVIDIA A10", available) == "sm80"  # capability first
    assert configs.target_for((8, 6), "NVIDIA A10", available) == "nvidia-a10"
    assert configs.target_for((8, 9), "NVIDIA L4", available) == "default"


def test_target_for_an_amd_gpu_is_its_gfx_file_and_never_an_nvidia_one():
    available = ["default", "gfx942", "sm80", "sm90"]
    assert configs.target_for("gfx942:sramecc+:xnack-", "AMD Instinct MI300X", available) == "gfx942"
    assert configs.target_for("gfx942", "AMD Instinct MI325X", available) == "gfx942"
    # An MI250 reports capability 9.0 under ROCm: its gfx name, not the capability, picks the file.
    assert configs.target_for("gfx90a:sramecc+:xnack-", "AMD Instinct MI250X", available) == "default"
    assert configs.target_for("gfx942", "AMD Instinct MI300X", ["default", "sm90"]) == "default"
    assert "gfx942" in configs.available_targets()


def test_device_arch_is_the_capability_on_cuda_and_the_gfx_name_on_rocm():
    from types import SimpleNamespace

    mi300 = SimpleNamespace(major=9, minor=4, gcnArchName="gfx942:sramecc+:xnack-", name="AMD Instinct MI300X")
    assert configs.device_arch(mi300, hip="6.4.43482") == "gfx942:sramecc+:xnack-"
    h100 = SimpleNamespace(major=9, minor=0, name="NVIDIA H100 80GB HBM3")
    assert configs.device_arch(h100, hip=None) == (9, 0)
    assert configs.own_target((9, 0)) == "sm90" and configs.own_target(mi300.gcnArchName) == "gfx942"


AMD_GPUS = [("gfx942:sramecc+:xnack-", "AMD Instinct MI300X", "gfx942"),
            ("gfx90a:sramecc+:xnack-", "AMD Instinct MI250X", "default")]  # fmt: skip


@pytest.mark.parametrize("arch, name, expected", AMD_GPUS)
def test_config_for_on_an_amd_gpu_benchmarks_its_own_candidates(monkeypatch, tmp_path, arch, name, expected):
    # Stand in for a ROCm GPU (64 KB of LDS): the candidates benchmarked come from the gfx file on an MI300 and from
    # default.json on another AMD GPU, never from sm80/sm90.
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    plan, (x, w, b, y, params) = _plan((2, 64, 16, 16), 64, dtype=torch.float16)
    sizes = {"BLOCK_M": 2 * 16 * 16, "BLOCK_N": 64, "BLOCK_K": 64}
    seen = []

    def fake_tune(plans):
        seen.extend({k: p.args[k] for k in p.args if k.startswith("BLOCK")} for p in plans)
        return 0

    def plan_for(config):
        return forward_plan(x, w, b, y, params, config=config)

    got = configs.config_for(FWD, x.dtype, torch.device("cuda"), sizes, plan_for, limits=(arch, name, 64 * 1024),
                             tune=fake_tune, cache_directory=str(tmp_path))  # fmt: skip
    expected_candidates = configs.prune(configs.load(expected)[FWD]["16bit"], "16bit", sizes, 64 * 1024)
    blocks = [{k: v for k, v in c.items() if k.startswith("BLOCK")} for c in expected_candidates]
    assert len(blocks) > 1 and seen == blocks and got == expected_candidates[0]


def test_tuning_key_is_shared_within_a_bucket_and_separates_structure():
    def key(shape=(2, 8, 5, 7), c_out=12, **kwargs):
        plan, (x, w, b, y, params) = _plan(shape, c_out, **kwargs)
        sizes = {"BLOCK_M": plan.args["N"] * 5 * 7, "BLOCK_N": c_out, "BLOCK_K": shape[1]}
        return configs.tuning_key(FWD, sizes, plan)

    base = key()
    assert key(c_out=14) == base  # 12 and 14 channels share the bucket of 16
    assert key(c_out=20) != base  # 20 does not
    assert key(channels_last=True) != base  # the layout reaches the compiler through unit strides
    assert key(dtype=torch.float64) != base
    assert key(stride=3) != base


def test_tuning_cache_persists_and_ignores_stale_or_broken_entries(tmp_path):
    a, b = CANDIDATES[1], CANDIDATES[2]
    configs.TuningCache.for_device("NVIDIA H100", "sm90", str(tmp_path)).put("k", a)
    again = configs.TuningCache.for_device("NVIDIA H100", "sm90", str(tmp_path))  # as another process would
    assert again.get("k", CANDIDATES) == a
    assert again.get("k", [b]) is None  # the file's list no longer offers it
    assert configs.TuningCache.for_device("NVIDIA A100", "sm80", str(tmp_path)).get("k", CANDIDATES) is None
    with open(again.path, "w") as f:
        f.write("{not json")
    assert again.get("k", CANDIDATES) is None
    again.put("k", b)
    assert again.get("k", CANDIDATES) == b


def test_cache_dir_is_the_user_cache_not_the_repository(monkeypatch, tmp_path):
    monkeypatch.delenv("TRITON_CONVT_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert configs.cache_dir() == str(tmp_path / "triton_convt")
    monkeypatch.setenv("TRITON_CONVT_CACHE_DIR", str(tmp_path / "x"))
    assert configs.cache_dir() == str(tmp_path / "x")


def test_config_for_on_a_gpu_tunes_once_per_bucket_and_persists(monkeypatch, tmp_path):
    # Stand in for a GPU: compiled kernels (not the interpreter), sm_90 limits, and a benchmark that picks the
    # second candidate. Plans are still built from CPU tensors; only their arguments are looked at.
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    cuda = torch.device("cuda")
    calls = []

    def fake_tune(plans):
        calls.append([{k: p.args[k] for k in p.args if k.startswith("BLOCK")} for p in plans])
        return 1

    def choice(shape, c_out, limits=((9, 0), "NVIDIA H100", 227 * 1024)):
        plan, (x, w, b, y, params) = _plan(shape, c_out, dtype=torch.float16)
        sizes = {"BLOCK_M": plan.args["N"] * (y.shape[2] // 2) * (y.shape[3] // 2), "BLOCK_N": c_out,
                 "BLOCK_K": shape[1]}  # fmt: skip

        def plan_for(config):
            return forward_plan(x, w, b, y, params, config=config)

        return configs.config_for(FWD, x.dtype, cuda, sizes, plan_for, limits=limits, tune=fake_tune,
                                  cache_directory=str(tmp_path))  # fmt: skip

    candidates = configs.prune(configs.load("sm90")[FWD]["16bit"], "16bit",
                               {"BLOCK_M": 2 * 16 * 16, "BLOCK_N": 64, "BLOCK_K": 64}, 227 * 1024)  # fmt: skip
    assert len(candidates) > 1, "the sm90 16-bit list must offer a choice for this test"
    first = choice((2, 64, 16, 16), 64)
    assert first == candidates[1] and len(calls) == 1 and len(calls[0]) == len(candidates)
    # Same bucket, read back from the file. (Input channels are kept a multiple of every K tile: whether the channel
    # blocks divide evenly is a constexpr of the kernel, so it is part of the key.)
    assert choice((2, 64, 16, 16), 60) == first and len(calls) == 1
    choice((8, 64, 16, 16), 64)  # four times the rows: another bucket
    assert len(calls) == 2
    # A device with too little shared memory for all but one candidate: nothing to tune.
    tiny = configs.shared_memory_estimate(configs.load("sm90")[FWD]["16bit"][-1], "16bit")
    only = choice((2, 64, 16, 16), 64, limits=((9, 0), "small", tiny))
    assert len(calls) == 2 and configs.shared_memory_estimate(only, "16bit") <= tiny


def test_config_for_cpu_and_interpreter_never_tunes():
    plan, (x, w, b, y, params) = _plan()

    def no_tune(plans):
        raise AssertionError("tuned without a GPU")

    sizes = {"BLOCK_M": 70, "BLOCK_N": 12, "BLOCK_K": 8}
    got = configs.config_for(FWD, x.dtype, x.device, sizes, None, tune=no_tune)
    assert got == configs.choose(FWD, x.dtype, sizes)
    # CUDA tensors under the interpreter: still the deterministic choice (triton.autotune cannot benchmark).
    assert configs.config_for(FWD, x.dtype, torch.device("cuda"), sizes, None, tune=no_tune) == got


def test_autotune_plans_hands_triton_autotune_each_plans_own_arguments():
    _, tensors = _plan(c_out=100)
    plans = [forward_plan(*tensors, config=c) for c in CANDIDATES[1:]]  # one problem, three configs
    seen = {}

    class FakeTuner:
        def __getitem__(self, grid):
            def launch(**kwargs):
                seen["kwargs"] = kwargs
                seen["grids"] = [grid({**kwargs, **c.kwargs}) for c in seen["configs"]]
                self.best_config = seen["configs"][2]

            return launch

    def fake_autotune(configs, key):
        seen["configs"] = configs
        return lambda kernel: FakeTuner()

    assert configs.autotune_plans(plans, autotune=fake_autotune) == 2
    tuned = {"BLOCK_M", "BLOCK_N", "BLOCK_K", "M_TILES", "N_TILES"}
    assert set(seen["configs"][0].kwargs) == tuned and not tuned & set(seen["kwargs"])
    assert seen["grids"] == [p.grid for p in plans]
    assert [(c.num_warps, c.num_stages) for c in seen["configs"]] == [(p.num_warps, p.num_stages) for p in plans]
    assert all(seen["kwargs"][k] is plans[0].args[k] for k in ("x_ptr", "w_ptr", "y_ptr"))


def _shipped_forward_configs():
    """Every distinct (key, tiles) of the forward kernel over all files, with a dtype of its class: 16-bit tiles in
    fp16 and bf16 by turns in order of size, so that each 16-bit dtype meets half the tiles (the quick tier: each
    dtype's smallest).

    Configs that differ only in warps or stages are one case: the interpreter ignores both, so it would run the
    same computation again (gfx942.json runs some of the others' tiles with other warps). Under the interpreter a
    tile's fp16 and bf16 runs differ only in the loads' and stores' rounding (bf16's tl.dot takes fp32 operands
    there, compat.dot_in_fp32), which both dtypes' cases check: running every tile in both would repeat the tile's
    indexing for no new check."""
    dtypes = {"16bit": (torch.float16, torch.bfloat16), "fp32": (torch.float32,), "fp64": (torch.float64,)}
    tiles_seen = {}
    for target in configs.available_targets():
        data = configs.load(target)
        lists = [(key, lists) for key in (FWD, FWD + "_nchw") if key in data for lists in data[key].items()]
        for key, (cls, candidates) in lists:
            for c in candidates:
                tiles = {k: v for k, v in c.items() if k.startswith("BLOCK")}
                tiles_seen.setdefault(json.dumps([key, cls, tiles]), (key, cls, c))
    cases = []
    for key, cls in dict.fromkeys((key, cls) for key, cls, _ in tiles_seen.values()):
        ordered = sorted((c for k, k_cls, c in tiles_seen.values() if (k, k_cls) == (key, cls)), key=tile_volume)
        choices = dtypes[cls]
        cases += [(key, choices[i % len(choices)], c) for i, c in enumerate(ordered)]
    return cases


# Quick tier: the smallest tile of each key (layout) and dtype; -m full: every other one.
@pytest.mark.parametrize("key, dtype, config", tiered(_shipped_forward_configs(), key=lambda k, d, c: (k, d),
                                                      rank=lambda k, d, c: tile_volume(c)),
                         ids=lambda v: str(v).replace(" ", ""))  # fmt: skip
def test_every_shipped_config_is_correct_under_the_interpreter(key, dtype, config, count_launches):
    # Every extent is cut by every tile: 2 x 5 x 7 = 70 rows per phase (tiles of 32 and 64), and input and output
    # channels per group (two groups) of one and a half tiles, so row, column and channel tiles all end partially,
    # and programs past a phase's rows exist. Sized by the tile, so that small tiles do not mean many programs. The
    # NCHW key's configs run in NCHW, on the window variant, whose tiles hold BLOCK_N / 4 channels of a k4 layer.
    nchw = key.endswith("_nchw")
    c_in_g, c_out_g = config["BLOCK_K"] * 3 // 2 + 1, config["BLOCK_N"] // (4 if nchw else 1) * 3 // 2 + 1
    x = torch.randn(2, 2 * c_in_g, 5, 7, dtype=dtype)
    if not nchw:
        x = x.to(memory_format=torch.channels_last)
    w = torch.randn(2 * c_in_g, c_out_g, 4, 4, dtype=dtype)
    b = torch.randn(2 * c_out_g, dtype=dtype)
    params = check_call(x, w, b, 2, 1, 0, 2, 1)
    y = allocate_output(x, w, params)
    plan = forward_plan(x, w, b, y, params, activation="relu", config=config)
    assert plan.args["W_WINDOW"] == nchw
    plan.launch()
    assert count_launches() == 1
    ref = F.relu(F.conv_transpose2d(x.double(), w.double(), b.double(), stride=2, padding=1, groups=2))
    assert_close_to_reference(y, ref)


def test_tune_ranks_winners_first_and_keeps_other_kernels():
    from triton_convt.tools.tune import merge_winners

    a, b, c, d = CANDIDATES
    data = {"triton": "x", FWD: {"16bit": [a, b, c, d], "fp32": [a]}, "other_kernel": {"16bit": [d]}}
    merged = merge_winners(data, FWD, "16bit", [c, b, c, b, d])
    assert merged[FWD]["16bit"] == [c, b, d, a]  # two wins each: first win first; then d; then the rest
    assert merged[FWD]["fp32"] == [a] and merged["other_kernel"] == data["other_kernel"]
    assert data[FWD]["16bit"] == [a, b, c, d]  # the input is not modified


@pytest.mark.parametrize("name, channels", [("fcn8s-upscore8-dw", 4), ("unet-up4-k2s2", 16)])
def test_tune_layer_tunes_the_kernel_the_launcher_runs(name, channels):
    # The GPU part stood in for: CPU tensors under the interpreter, and a benchmark that picks the last candidate.
    from triton_convt.tools import layers, tune, workmodel

    layer = layers.select([name])[0].scaled(pixels=9, channels=channels).layer
    kernel = workmodel.kernel_of(layer)
    assert kernel == ("conv_transpose2d_fwd_depthwise" if layer.c_in_g == 1 else FWD)
    # sm90.json lists the GEMM kernel only: the depthwise candidates come from default.json.
    assert configs.source(kernel, "sm90") == ("default" if layer.c_in_g == 1 else "sm90")
    listed = configs.load(configs.source(kernel, "sm90"))[kernel]["fp32"]
    candidates = configs.prune(listed, "fp32", workmodel.problem_sizes(layer), 227 * 1024)
    benchmarked = []
    got = tune.tune_layer(layer, torch.float32, "nchw", "sm90", 227 * 1024, device="cpu",
                          benchmark=lambda plans: benchmarked.extend(plans) or len(plans) - 1)  # fmt: skip
    assert got == candidates[-1]
    if len(candidates) > 1:  # every candidate was correct and went to the benchmark as a launch of its kernel
        blocks = [{k: v for k, v in p.args.items() if k.startswith("BLOCK")} for p in benchmarked]
        assert blocks == [{k: v for k, v in c.items() if k.startswith("BLOCK")} for c in candidates]
    else:
        assert benchmarked == [] and kernel == "conv_transpose2d_fwd_depthwise"
    sm90 = configs.load("sm90")
    merged = tune.merge_all(sm90, "fp32", {kernel: [got]})
    assert merged[kernel]["fp32"][0] == got and set(merged[kernel]) == set(configs.load("default")[kernel])


def test_tune_without_a_gpu_exits_with_a_message_and_changes_nothing(tmp_path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "triton_convt.tools.tune", "--configs", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 2 and "GPU" in done.stderr
    assert list(tmp_path.iterdir()) == []
