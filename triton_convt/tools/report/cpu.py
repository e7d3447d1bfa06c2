"""The report without a GPU: its CPU evidence and its model, none of it a measured speed.

``check``: every layer, shrunk by :meth:`~triton_convt.tools.layers.LayerSpec.scaled`, through the Triton kernel
under the interpreter, against torch in fp64 (correctness only: interpreter time says nothing about GPU speed).
``model``: from the layer's full size, FLOPs, minimum bytes (fused) and the unfused chain's bytes
(:func:`triton_convt.tools.workmodel.spec_traffic`), arithmetic intensity, and the roofline bound on the published
H100 and A100 peaks (:data:`PEAKS`), with the work model's issued/useful MACs for the config each GPU's file
gives, and NVIDIA's GEMM model of the layer's phases as tuned Triton GEMMs (:mod:`triton_convt.tools.nvmodel`,
when ``nvidia-matmul-heuristics`` is installed). ``profile``: the static compile profile
(:mod:`triton_convt.tools.profile`) of the forward kernel's shipped configs for sm80 and sm90, and of its builds on
the 1-D and 3-D sample problems (:func:`~triton_convt.tools.profile.nd_builds`), run in a child process without the
interpreter (compiled kernels and interpreted ones cannot share a process).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterable

import torch
import triton

from ... import launch
from ...launch import configs
from ...launch.kernel_plan import spatial_3d
from ...launch.phase_gemm import reads_in_place
from .. import checking, nvmodel, profile, workmodel
from ..cli import arch_name
from ..layers import LayerSpec
from .gpu import _error_of
from .rows import CHECK, FORWARD, FUSED, LAYOUTS, MODEL, UNFUSED, base_row, make_inputs, ours, progress

#: Published peaks the roofline uses: dense tensor-core TFLOP/s (no sparsity) per dtype (fp32 is TF32, torch's
#: default for convolutions), memory bandwidth in bytes/s, the config file the work model reads for the part, and
#: the part's name among NVIDIA's GEMM model's predefined GPUs (:mod:`triton_convt.tools.nvmodel`).
PEAKS = {
    "H100 SXM": {
        "tflops": {"bfloat16": 989.4, "float16": 989.4, "float32": 494.7},
        "bandwidth": 3.35e12,
        "target": "sm90",
        "nvidia_gpu": "H100_SXM",
        "source": "NVIDIA H100 Tensor Core GPU datasheet, H100 SXM5 80GB: BF16/FP16 989.4 and TF32 494.7 dense "
        "tensor TFLOP/s (half the 'with sparsity' figures), HBM3 3.35 TB/s",
    },
    "A100 SXM": {
        "tflops": {"bfloat16": 312.0, "float16": 312.0, "float32": 156.0},
        "bandwidth": 2.039e12,
        "target": "sm80",
        "nvidia_gpu": "A100_SXM_80GB",
        "source": "NVIDIA A100 Tensor Core GPU datasheet, A100 SXM4 80GB: BF16/FP16 312 and TF32 156 dense tensor "
        "TFLOP/s, HBM2e 2,039 GB/s",
    },
}


def check_rows(specs: Iterable[LayerSpec], dtypes: list[str], show_progress=True) -> list[dict]:
    """Every layer, scaled down, in every dtype and layout through the Triton kernel under the interpreter (the
    launches counted, so the CPU fallback cannot pass for it: :func:`expected_launches`), checked against torch in
    fp64."""
    if not launch.interpreter_active():
        raise RuntimeError("the interpreter checks need TRITON_INTERPRET=1 set before triton_convt is imported")
    cases = [(s.scaled(), d, l) for s in specs for d in dtypes for l in LAYOUTS]
    rows = []
    for spec, dtype, layout in progress(cases, "check", show_progress):
        torch.manual_seed(0)
        x, w, b = make_inputs(spec, getattr(torch, dtype), layout, "cpu")
        row = base_row(CHECK, "cpu (Triton interpreter)", spec, dtype, layout, "triton_convt")
        ref = checking.reference(x, w, b, spec.conv_args, spec.activation)
        before = launch.launch_count()
        conv = ours(spec)
        error = _error_of(lambda: conv(x, w, b, *spec.conv_args, activation=spec.activation), ref, row)  # noqa: B023 - called at once
        tol = checking.tolerance(x.dtype, x.device)
        launched = launch.launch_count() - before
        row.update(max_rel_error=error, tolerance=tol, ok=error <= tol and launched == expected_launches(w, spec))
        rows.append(row)
    return rows


def expected_launches(w: torch.Tensor, spec: LayerSpec) -> int:
    """The launches one call of ``spec`` with weight ``w`` makes: the forward kernel's, after the one that copies the
    weight into channels_last order when the GEMM kernel cannot read it in place (the report's weights are in
    torch's default layout, as a model's are; the depthwise kernel reads any weight)."""
    return 1 + (spec.c_in // spec.groups != 1 and not reads_in_place(spatial_3d(w)))


def model_rows(specs: Iterable[LayerSpec], dtypes: list[str]) -> list[dict]:
    """The roofline bound of each full-size layer on each part of :data:`PEAKS`, fused and unfused (a model)."""
    available = configs.available_targets()
    rows = []
    for spec in specs:
        for dtype in dtypes:
            moved = workmodel.spec_traffic(spec, torch.empty((), dtype=getattr(torch, dtype)).element_size())
            for part, peak in PEAKS.items():
                target = peak["target"] if peak["target"] in available else "default"
                config = workmodel.launcher_config(spec.layer, getattr(torch, dtype), target)
                issued = workmodel.work(spec.layer, config).ratio
                for impl, moved_bytes in ((FUSED, moved["fused"]), (UNFUSED, moved["unfused"])):
                    compute_s = spec.flops / (peak["tflops"][dtype] * 1e12)
                    memory_s = moved_bytes / peak["bandwidth"]
                    seconds = max(compute_s, memory_s)
                    row = base_row(MODEL, part, spec, dtype, "any", impl)
                    row.update(
                        flops=spec.flops, bytes=moved_bytes, intensity=spec.flops / moved_bytes,
                        peak_tflops=peak["tflops"][dtype], peak_gbps=peak["bandwidth"] / 1e9,
                        model_ms=seconds * 1e3, model_tflops=spec.flops / seconds / 1e12,
                        bound="compute" if compute_s >= memory_s else "memory",
                        fused_bytes=moved["fused"], unfused_bytes=moved["unfused"],
                        config=f"{target}: {profile.config_name(config)}", issued_over_useful=issued,
                    )  # fmt: skip
                    if impl == FUSED:  # this kernel's own bound: the MACs it issues, not the useful ones
                        row.update(kernel_model_ms=max(compute_s * issued, memory_s) * 1e3,
                                   kernel_bound="compute" if compute_s * issued >= memory_s else "memory",
                                   nvidia_model_ms=nvmodel.layer_estimate_ms(spec.layer, dtype,
                                                                             peak["nvidia_gpu"]))  # fmt: skip
                    rows.append(row)
    return rows


def static_profile(out: str, archs: list[int | str], dtypes: list[str], jobs: int) -> dict:
    """Compile every shipped forward config for ``archs``, and the launcher's pick on the 1-D and 3-D sample
    problems (this process must not run the interpreter); writes
    ``profile.json`` and ``profile.md`` into ``out`` and the cubins into ``out/cubins``. Returns the JSON."""
    builds, _ = profile.shipped_builds(archs, dtypes)
    builds = [b for b in builds if b["kernel"] == FORWARD] + profile.nd_builds(archs, dtypes)
    cubins = os.path.join(out, "cubins")
    os.makedirs(cubins, exist_ok=True)
    records = profile.compile_builds(builds, cubins, jobs)
    for record in records:  # named relative to ``out``, where profile.json is
        if "cubin" in record:
            record["cubin"] = f"cubins/{record['cubin']}"
    data = {"triton": triton.__version__, "archs": archs, "kernel": FORWARD, "builds": records}
    with open(os.path.join(out, "profile.json"), "w") as f:
        json.dump(data, f, indent=1)
    with open(os.path.join(out, "profile.md"), "w") as f:
        f.write(profile.markdown(records, []) + "\n")
    return data


def start_static_profile(out: str, archs: list[int | str], dtypes: list[str], jobs: int) -> subprocess.Popen:
    """Run :func:`static_profile` in a child process without ``TRITON_INTERPRET`` (``--only profile``)."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    cmd = [sys.executable, "-m", "triton_convt.tools.report", "--only", "profile", "--out", out, "--jobs", str(jobs),
           "--dtypes", *dtypes] + [a for arch in archs for a in ("--arch", arch_name(arch))]  # fmt: skip
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def cpu_environment() -> dict:
    return dict(device="cpu (no GPU: Triton interpreter checks, model, static profile)", torch=torch.__version__,
                triton=triton.__version__, python=platform.python_version(), machine=platform.machine(),
                cores=os.cpu_count())  # fmt: skip
