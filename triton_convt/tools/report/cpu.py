"""The report without a GPU: its CPU evidence and its model, none of it a measured speed.

``check``: every layer, shrunk by :meth:`~triton_convt.tools.layers.LayerSpec.scaled`, through the Triton kernel
under the interpreter, against torch in fp64 (correctness only: interpreter time says nothing about GPU speed).
``model``: from the layer's full size, FLOPs, minimum bytes (fused) and the unfused chain's bytes
(:func:`triton_convt.tools.workmodel.spec_traffic`), arithmetic intensity, and the roofline bound on the published
H100 and A100 peaks (:data:`PEAKS`), with the work model's issued/useful MACs for the config each GPU's file
gives and its modelled time (:func:`triton_convt.tools.workmodel.modelled`: bytes, issued MACs and the instruction
issue read from the SASS of the layer's build), and NVIDIA's GEMM model of the layer's phases as tuned Triton GEMMs
(:mod:`triton_convt.tools.nvmodel`, when ``nvidia-matmul-heuristics`` is installed). ``profile``: the static
compile profile (:mod:`triton_convt.tools.profile`) of the forward kernel's shipped configs for sm80 and sm90 in
both layouts (and of the NCHW input gradient's, the same kernel), of its builds on the 1-D and 3-D sample problems
in both layouts (:func:`~triton_convt.tools.profile.nd_builds`) and of its builds on the report's layers with each
file's pick (:func:`~triton_convt.tools.profile.layer_builds`, the model's issue term), run in a child process
without the interpreter (compiled kernels and interpreted ones cannot share a process).
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
from ...launch.phase_gemm import NCHW_SUFFIX, reads_in_place
from .. import checking, nvmodel, profile, workmodel
from ..cli import arch_name
from ..layers import LayerSpec
from .gpu import _error_of
from .rows import CHECK, FORWARD, FUSED, LAYOUTS, MODEL, UNFUSED, base_row, make_inputs, ours, progress

#: Published peaks the roofline uses (the work model's parts, :data:`triton_convt.tools.workmodel.PEAKS`): dense
#: tensor-core TFLOP/s per dtype (fp32 is TF32, torch's default for convolutions), memory bandwidth in bytes/s, SM
#: count and FLOPs per SM per clock (the issue term's clock), the config file the work model reads for the part,
#: and the part's name among NVIDIA's GEMM model's predefined GPUs (:mod:`triton_convt.tools.nvmodel`).
PEAKS = workmodel.PEAKS


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


def model_rows(specs: Iterable[LayerSpec], dtypes: list[str], readings: dict | None = None) -> list[dict]:
    """The roofline bound of each full-size layer on each part of :data:`PEAKS`, fused and unfused, and the
    kernel's modelled time (fused rows; its issue term from ``readings``,
    :func:`triton_convt.tools.workmodel.readings_of` the static profile's layer builds): a model."""
    available = configs.available_targets()
    rows = []
    for spec in specs:
        for dtype in dtypes:
            moved = workmodel.spec_traffic(spec, torch.empty((), dtype=getattr(torch, dtype)).element_size())
            for part, peak in PEAKS.items():
                target = peak["target"] if peak["target"] in available else "default"
                cls = configs.dtype_class(getattr(torch, dtype))
                reading = (readings or {}).get((spec.name, int(target[2:]), cls)) if target != "default" else None
                timing = workmodel.modelled(spec, getattr(torch, dtype), part, reading)
                config, issued = timing.config, timing.issued
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
                    if impl == FUSED:  # this kernel's modelled time: the MACs it issues, its bytes, its instructions
                        row.update(kernel_model_ms=timing.seconds * 1e3, kernel_bound=timing.bound,
                                   issue_ms=None if timing.issue_s is None else timing.issue_s * 1e3,
                                   meets_rule=workmodel.meets_rule(timing) if rule_applies(part, dtype) else None,
                                   nvidia_model_ms=nvmodel.layer_estimate_ms(spec.layer, dtype,
                                                                             peak["nvidia_gpu"]))  # fmt: skip
                    rows.append(row)
    return rows


def rule_applies(part: str, dtype: str) -> bool:
    """Whether issue 19's rule (:func:`triton_convt.tools.workmodel.meets_rule`) is held for ``part`` and ``dtype``:
    on H100, for the 16-bit dtypes."""
    return part == "H100 SXM" and dtype in ("bfloat16", "float16")


def layer_dtypes(dtypes: list[str]) -> list[str]:
    """The dtypes the layer builds of a report on ``dtypes`` are compiled in: float16 for the 16-bit class (it
    stands for bfloat16 too), float32 for fp32."""
    return [d for d in ("float16", "float32") if d in dtypes or (d == "float16" and "bfloat16" in dtypes)]


#: The kernel keys whose shipped configs the report's static profile builds: the transposed convolution's forward
#: in both layouts and its input gradient in NCHW, the phase GEMM's builds held to the hot-loop rule
#: (:data:`.hotloop.GATED`; conv2d + pixel_shuffle's are the profile's, ``triton-convt-profile``).
PROFILED = (FORWARD, FORWARD + NCHW_SUFFIX, "conv_transpose2d_bwd_input" + NCHW_SUFFIX)


def static_profile(
    out: str, archs: list[int | str], dtypes: list[str], jobs: int, names: list[str] | None = None
) -> dict:
    """Compile every shipped config of the transposed convolution's GEMM keys (:data:`PROFILED`: the forward in both
    layouts, the NCHW input gradient) for ``archs``, the launcher's pick on the 1-D and 3-D sample problems in both
    layouts, and the layer builds of the layers ``names`` (all when None; :func:`.profile.layer_builds`, the work
    model's issue term) (this process must not run the interpreter); writes ``profile.json`` and ``profile.md``
    into ``out`` and the cubins into ``out/cubins``. Returns the JSON."""
    builds, _ = profile.shipped_builds(archs, dtypes)
    builds = [b for b in builds if b["kernel"] in PROFILED] + profile.nd_builds(archs, dtypes)
    builds += profile.layer_builds(archs, layer_dtypes(dtypes), names)
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


def start_static_profile(
    out: str, archs: list[int | str], dtypes: list[str], jobs: int, names: list[str] | None = None
) -> subprocess.Popen:
    """Run :func:`static_profile` in a child process without ``TRITON_INTERPRET`` (``--only profile``)."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    cmd = [sys.executable, "-m", "triton_convt.tools.report", "--only", "profile", "--out", out, "--jobs", str(jobs),
           "--dtypes", *dtypes] + [a for arch in archs for a in ("--arch", arch_name(arch))]  # fmt: skip
    if names:
        cmd += ["--layers", *names]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def cpu_environment() -> dict:
    """What the CPU report's files record of the environment: the versions its figures depend on. Not the machine
    (its core count, its architecture), nor what differs between installs of one version (torch's local label,
    ``+cpu`` for the CPU wheel; Python's patch release): the files must read the same wherever the report is rerun
    with the README's versions."""
    return dict(device="cpu (no GPU: Triton interpreter checks, model, static profile)",
                torch=torch.__version__.split("+")[0], triton=triton.__version__,
                python=".".join(platform.python_version_tuple()[:2]))  # fmt: skip


def machine() -> str:
    """The machine and installs the report ran on, for the console (never for the files)."""
    python = platform.python_version()
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {python}, torch {torch.__version__}"
