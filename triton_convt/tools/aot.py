"""Compile the kernels for real GPU targets without a GPU, and read what the compiler produced.

A :class:`~triton_convt.launch.KernelPlan` built from CPU tensors holds exactly the arguments a launch would pass.
:func:`compile_plan` hands them to ``triton.compile`` with the specialisation the JIT of the target's backend would
apply on a GPU (pointers and integers divisible by 16 marked so, integers equal to 1 turned into constants, which is
how the memory layout reaches the compiler; on AMD also pointers whose tensors span under 2 GB, which enables buffer
loads), for ``GPUTarget("cuda", 80|90, 32)`` or ``GPUTarget("hip", "gfx942", 64)`` (targets are named as in
:mod:`.cli`). :func:`measure` compiles one plan and reads what the build needs: for CUDA, registers, stack and
local memory from the cubin (``cuobjdump``, shipped in the triton wheel), and shared memory, tensor-core
instructions and vector or asynchronous global loads from the metadata and PTX, and the hot loop's figures per
iteration and the whole kernel's instruction count from the SASS (:mod:`.hotloop`); for AMD, VGPR/AGPR/SGPR counts,
spill counts, scratch and occupancy from the kernel descriptor and metadata note of the ``.amdgcn`` assembly, and
matrix-core (``v_mfma``) instructions and 128-bit loads from its code.

The plans come from :mod:`.samples` (a sample problem per kernel key); :mod:`.profile` is the command that
compiles them. Compiling needs a process without ``TRITON_INTERPRET`` (the interpreter's kernels cannot be
compiled).
"""

from __future__ import annotations

import bisect
import os
import re
import struct
import subprocess
import tempfile
import traceback
from collections.abc import Sequence
from pathlib import Path

import triton
from triton._C.libtriton import native_specialize_impl
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource, make_backend

from ..launch import KernelPlan
from . import hotloop
from .cli import is_cuda

#: Tensor-core instructions in the PTX of each target: mma.sync on sm_80, wgmma (or mma.sync for shapes and
#: dtypes wgmma does not take, such as fp64) on sm_90.
TENSOR_CORE_PTX = {80: ("mma.sync",), 90: ("wgmma.mma_async", "mma.sync")}

#: Shared memory one block may use (the opt-in maximum) on each target: A100 163 KB, H100 227 KB; MI300's LDS is
#: 64 KB per workgroup.
SHARED_LIMIT = {80: 163 * 1024, 90: 227 * 1024, "gfx942": 64 * 1024}

#: Threads per warp (NVIDIA) or wavefront (AMD CDNA) of each target family.
WARP_SIZE = {"cuda": 32, "hip": 64}

_BIN = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin")


def gpu_target(arch: int | str) -> GPUTarget:
    """triton's compile target for a target of :mod:`.cli` (80 -> cuda sm_80, ``"gfx942"`` -> hip gfx942)."""
    backend = "cuda" if is_cuda(arch) else "hip"
    return GPUTarget(backend, arch, WARP_SIZE[backend])


def jit_specialization(plan: KernelPlan, target: GPUTarget | None = None) -> tuple[dict, dict, dict]:
    """``(signature, constexprs, attrs)`` for ``ASTSource``, as the JIT of ``target``'s backend (default sm_80)
    derives them from the launch arguments: the backend decides which hints an argument gets (the HIP backend
    adds ``tt.pointer_range`` for tensors under 2 GB, the CUDA one does not), so it is asked, not imitated."""
    backend = make_backend(target or gpu_target(80))
    signature, constexprs, attrs = {}, {}, {}
    for i, param in enumerate(plan.kernel.params):
        value = plan.args[param.name]
        if param.is_constexpr:
            signature[param.name] = "constexpr"
            constexprs[param.name] = value
            continue
        ty, key = native_specialize_impl(backend, value, False, True, True)
        signature[param.name] = ty
        if ty == "constexpr":  # an integer equal to 1, or None
            constexprs[param.name] = value
        elif isinstance(key, str) and backend.parse_attr(key):  # "D": divisible by 16; "S" (HIP): under 2 GB
            attrs[(i,)] = backend.parse_attr(key)
    return signature, constexprs, attrs


def compile_plan(plan: KernelPlan, arch: int | str):
    """Compile ``plan`` for ``arch`` (80, 90, ``"gfx942"``); returns triton's CompiledKernel (``.asm`` holds ptx and
    cubin for CUDA, amdgcn and hsaco for AMD)."""
    target = gpu_target(arch)
    signature, constexprs, attrs = jit_specialization(plan, target)
    source = ASTSource(fn=plan.kernel, signature=signature, constexprs=constexprs, attrs=attrs)
    options = {"num_warps": plan.num_warps, "num_stages": plan.num_stages}
    return triton.compile(source, target=target, options=options)


def tensor_core_instructions(compiled, arch: int) -> int:
    """How many tensor-core instructions the PTX of ``compiled`` holds."""
    ptx = compiled.asm["ptx"]
    return sum(ptx.count(op) for op in TENSOR_CORE_PTX[arch])


def vector_global_loads(ptx: str) -> int:
    """128-bit global loads (``ld.global[.qualifiers].v4.b32`` and the like) in ``ptx``."""
    return len(re.findall(r"\bld\.global(?:\.[a-z0-9_:]+)*\.v4\.(?:b|u|s|f)32\b", ptx))


def async_copies(ptx: str) -> int:
    """Asynchronous global-to-shared copies in ``ptx``: ``cp.async.{ca,cg}`` (sm_80+) and bulk/TMA copies."""
    return len(re.findall(r"\bcp\.async\.(?:ca|cg|bulk)\.shared", ptx))


def _cuobjdump(flag: str, cubin: bytes) -> str:
    """``cuobjdump <flag>`` on ``cubin`` (written to a temporary file, removed afterwards)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "kernel.cubin")
        with open(path, "wb") as f:
            f.write(cubin)
        done = subprocess.run([os.path.join(_BIN, "cuobjdump"), flag, path], capture_output=True, text=True, check=True)
    return done.stdout


def resource_usage(cubin: bytes) -> dict[str, int]:
    """Registers per thread, stack and local bytes, and static shared bytes of the (single) kernel in ``cubin``.

    Triton kernels call no functions and keep no per-thread arrays, so any stack or local memory is register
    spilling.
    """
    line = re.search(r"REG:(\d+) STACK:(\d+) SHARED:(\d+) LOCAL:(\d+)", _cuobjdump("--dump-resource-usage", cubin))
    registers, stack, shared, local = map(int, line.groups())
    return {"registers": registers, "stack_bytes": stack, "local_bytes": local, "static_shared_bytes": shared}


#: A SASS load or store of local memory.
_LOCAL = re.compile(r"\b(?:STL|LDL)(?:\.\w+)*\s")


def local_memory_instructions(cubin: bytes) -> int:
    """SASS loads and stores of local memory (``STL``/``LDL``): the spill traffic itself."""
    return len(_LOCAL.findall(sass(cubin)))


def sass(cubin: bytes) -> str:
    """The SASS of ``cubin``, as ``cuobjdump --dump-sass`` prints it (:func:`sass_many` of one cubin)."""
    return sass_many([cubin])[0]


def _elf_sections(elf: bytes) -> dict[str, bytes]:
    """The sections of a 64-bit little-endian ELF file (a cubin), by name."""
    (shoff,) = struct.unpack_from("<Q", elf, 0x28)
    entsize, count, names = struct.unpack_from("<HHH", elf, 0x3A)
    headers = [struct.unpack_from("<IIQQQQ", elf, shoff + i * entsize) for i in range(count)]
    strings = headers[names][4]
    return {elf[strings + h[0] : elf.index(b"\0", strings + h[0])].decode(): elf[h[4] : h[4] + h[5]] for h in headers}


def cubin_sm(cubin: bytes) -> int:
    """The SM a cubin was compiled for (80, 90), from its ELF header flags: the low byte in the original CUDA ELF
    ABI (OS/ABI byte 0x33), the second byte in the one newer ptxas write (0x41)."""
    (flags,) = struct.unpack_from("<I", cubin, 0x30)
    abi = cubin[7]
    if abi == 0x33:
        return flags & 0xFF
    if abi == 0x41:
        return (flags >> 8) & 0xFF
    raise ValueError(f"a cubin of an unknown CUDA ELF ABI (OS/ABI byte {abi:#x})")


#: Instructions whose last operand is a code address: nvdisasm prints it from the start of the raw image it was
#: given, cuobjdump from the start of the function.
_CODE_ADDRESS = re.compile(
    r"^((?:@!?U?P\w+\s+)?(?:BRA|BRX|BSSY|CALL|CAL|JMP|JMX|RET|SSY|PBK|PCNT)\b[^;]*?)0x([0-9a-f]+)\s*$"
)
_RAW_LINE = re.compile(r"/\*([0-9a-f]{4,})\*/\s+([^;]*);")


def sass_many(cubins: Sequence[bytes]) -> list[str]:
    """The SASS of each cubin, as ``cuobjdump --dump-sass`` prints it (addresses from each function's start, one
    ``Function :`` header per kernel; the encoding comments left out), from one ``nvdisasm`` run per SM.

    A disassembler run costs about 0.3 s of start-up whatever the code's size, more than compiling a cached build,
    so the profile's hundreds of builds are read in a few runs: the functions' code (their ``.text.*`` sections)
    is laid end to end and disassembled as one raw image (``nvdisasm -b SMxy``), then cut back into functions,
    with the code addresses that raw disassembly counts from the image's start (branch, call and return targets)
    made relative to each function again. ``tests/test_aot.py`` holds the result equal to cuobjdump's.
    """
    functions: list[list[tuple[str, int, int]]] = [[] for _ in cubins]  # (name, start, size) per cubin
    images: dict[int, bytearray] = {}
    for i, cubin in enumerate(cubins):
        image = images.setdefault(cubin_sm(cubin), bytearray())
        for name, code in _elf_sections(cubin).items():
            if name.startswith(".text."):
                functions[i].append((name[len(".text.") :], len(image), len(code)))
                image += code
    lines: dict[int, list[tuple[int, str]]] = {}
    for sm, image in images.items():
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "code.bin")
            with open(path, "wb") as f:
                f.write(image)
            arch = f"SM{sm}" + ("a" if sm == 90 else "")  # sm_90a: wgmma and setmaxnreg decode
            done = subprocess.run([os.path.join(_BIN, "nvdisasm"), "-b", arch, path], capture_output=True, text=True,
                                  check=True)  # fmt: skip
        lines[sm] = [(int(a, 16), text.strip()) for a, text in _RAW_LINE.findall(done.stdout)]
    addresses = {sm: [addr for addr, _ in code] for sm, code in lines.items()}  # in order: one image each
    texts = []
    for cubin, kernels in zip(cubins, functions):
        sm = cubin_sm(cubin)
        text = [f"\n\tcode for sm_{sm}{'a' if sm == 90 else ''}\n"]
        for name, start, size in kernels:
            text.append(f"\n\t\tFunction : {name}\n")
            first, end = (bisect.bisect_left(addresses[sm], a) for a in (start, start + size))
            for addr, instruction in lines[sm][first:end]:
                target = _CODE_ADDRESS.match(instruction)
                if target:
                    instruction = f"{target.group(1)}0x{int(target.group(2), 16) - start:x}"
                text.append(f"        /*{addr - start:04x}*/                   {instruction} ;\n")
        texts.append("".join(text))
    return texts


def local_memory_in_loops(sass: str) -> int:
    """Loads and stores of local memory in ``sass`` (:func:`sass`) that lie inside a loop (between a backward
    branch and its target): spill traffic paid per iteration. A spill outside every loop is one save and one
    restore per thread."""
    code = [(int(a, 16), text) for a, text in re.findall(r"/\*([0-9a-f]{4,})\*/\s+([^;]*);", sass)]
    loops = []
    for addr, text in code:
        if re.search(r"\bBRA\b", text):
            target = re.search(r"\bBRA(?:\.\w+)*\s+0x([0-9a-f]+)", text)
            if target is None:  # a form this parser does not read must not pass as "no loop"
                raise ValueError(f"unreadable branch in SASS: {text!r}")
            if int(target.group(1), 16) <= addr:
                loops.append((int(target.group(1), 16), addr))
    local = [addr for addr, text in code if re.search(r"\b(?:STL|LDL)(?:\.\w+)*\s", text + " ")]
    return sum(any(start <= addr <= end for start, end in loops) for addr in local)


def sass_figures(code: str) -> dict:
    """What a CUDA build's record reads from its SASS ``code`` (:func:`sass`): local-memory instructions, the
    tensor-core loop per iteration (:data:`.hotloop.KEYS`) and the whole kernel's instructions, each once."""
    return {"local_memory_instructions": len(_LOCAL.findall(code)), **hotloop.hot_loop(code),
            "kernel_instructions": hotloop.kernel_instructions(code)}  # fmt: skip


def measure(plan: KernelPlan, arch: int | str, *, read_sass: bool = True) -> tuple[dict, bytes]:
    """Compile ``plan`` for ``arch``; returns what the profile records about the build, and its code to keep: the
    cubin for CUDA, the ``.amdgcn`` assembly text for AMD. ``read_sass=False`` leaves out a CUDA build's
    :func:`sass_figures`, for a caller that reads many builds' SASS at once (:func:`sass_many`) and adds them."""
    if not is_cuda(arch):
        return measure_amd(plan, arch)
    compiled = compile_plan(plan, arch)
    ptx, cubin = compiled.asm["ptx"], compiled.asm["cubin"]
    usage = resource_usage(cubin)
    record = {
        **usage,
        "spill_bytes": usage["stack_bytes"] + usage["local_bytes"],
        "shared_bytes": compiled.metadata.shared,
        "tensor_core_instructions": tensor_core_instructions(compiled, arch),
        "vector_global_loads": vector_global_loads(ptx),
        "async_copies": async_copies(ptx),
    }
    if read_sass:
        record.update(sass_figures(sass(cubin)))
    return record, cubin


def amdgcn_metadata(amdgcn: str) -> dict[str, int]:
    """Resource figures of the (single) kernel in AMD assembly, from the ``amdhsa.kernels`` metadata note (the
    code object's own record, what the ROCm runtime reads) and the compiler's ``; Kernel info`` comments (AGPRs
    and occupancy, which the note does not give)."""

    def field(pattern: str) -> int:
        found = re.search(pattern, amdgcn, re.MULTILINE)
        if found is None:
            raise ValueError(f"no {pattern!r} in the amdgcn assembly")
        return int(found.group(1))

    return {
        "vgprs": field(r"^\s*\.vgpr_count:\s*(\d+)"),  # arch VGPRs and AGPRs together, as allocated
        "agprs": field(r"^; NumAgprs: (\d+)"),
        "sgprs": field(r"^\s*\.sgpr_count:\s*(\d+)"),
        "vgpr_spills": field(r"^\s*\.vgpr_spill_count:\s*(\d+)"),
        "sgpr_spills": field(r"^\s*\.sgpr_spill_count:\s*(\d+)"),
        "scratch_bytes": field(r"^\s*\.private_segment_fixed_size:\s*(\d+)"),  # per lane: spills and stack
        "static_lds_bytes": field(r"^\s*\.group_segment_fixed_size:\s*(\d+)"),
        "occupancy": field(r"^; Occupancy: (\d+)"),  # waves per SIMD the registers allow
    }


def mfma_instructions(amdgcn: str) -> list[str]:
    """Every matrix-core instruction of ``amdgcn`` (``v_mfma_f32_32x32x8_f16`` and the like), in code order."""
    return re.findall(r"^\s*(v_mfma_\w+)", amdgcn, re.MULTILINE)


def measure_amd(plan: KernelPlan, arch: str) -> tuple[dict, bytes]:
    """:func:`measure` for an AMD target: the record and the ``.amdgcn`` text (as bytes).

    Triton kernels keep no per-lane arrays and call no functions, so scratch (private segment) memory, and any
    VGPR or SGPR spill count, is register spilling (SGPRs spill into VGPR lanes first, so they are counted apart).
    """
    compiled = compile_plan(plan, arch)
    amdgcn = compiled.asm["amdgcn"]
    usage = amdgcn_metadata(amdgcn)
    mfma = mfma_instructions(amdgcn)
    record = {
        **usage,
        "registers": usage["vgprs"],
        "shared_bytes": compiled.metadata.shared + usage["static_lds_bytes"],
        "tensor_core_instructions": len(mfma),
        "matrix_instructions": sorted(set(mfma)),
        "vector_global_loads": len(re.findall(r"^\s*(?:global|buffer)_load_dwordx4\b", amdgcn, re.MULTILINE)),
    }
    return record, amdgcn.encode()


def spilled(record: dict) -> bool:
    """Whether a profile record of either family shows spilling (stack, local or scratch memory, spill counts)."""
    keys = ("spill_bytes", "local_memory_instructions", "vgpr_spills", "sgpr_spills", "scratch_bytes")
    return any(record.get(key) for key in keys)


def _sass_figures_of_files(paths: list[str]) -> list[dict]:
    """:func:`.sass_figures` of the cubins at ``paths``, read in one batch (:func:`.sass_many`); if the
    batch fails, each cubin alone, a failure becoming that build's ``error``."""
    cubins = [Path(path).read_bytes() for path in paths]
    try:
        texts = sass_many(cubins)
    except Exception:  # noqa: BLE001 - retried one by one below, to name the build that fails
        texts = None
    if texts is not None:
        return [sass_figures(code) for code in texts]
    figures = []
    for cubin in cubins:
        try:
            figures.append(sass_figures(sass(cubin)))
        except Exception:  # noqa: BLE001 - reported per build, and the command exits with 1
            figures.append({"error": traceback.format_exc(limit=3)})
    return figures


def read_sass(records: list[dict], out: str, pool, jobs: int) -> list[dict]:
    """``records`` with each CUDA build's SASS figures (:func:`.sass_figures`), its cubin in ``out`` read in
    ``jobs`` batches on ``pool``: a disassembler run costs more to start than a cached build takes to compile."""
    todo = [i for i, r in enumerate(records) if is_cuda(r["arch"]) and "error" not in r]
    batches = [todo[j::jobs] for j in range(jobs) if todo[j::jobs]]
    paths = [[os.path.join(out, records[i]["cubin"]) for i in batch] for batch in batches]
    done = list(records)
    for batch, figures in zip(batches, pool.map(_sass_figures_of_files, paths)):
        for i, extra in zip(batch, figures):
            done[i] = {**done[i], **extra}
    return done
