"""The hot loop of a CUDA build, read from its SASS: what one iteration of the tensor-core loop issues.

A kernel's time goes to its innermost loop around the tensor-core instructions, and the compiled code shows what
that loop costs better than the source does: address arithmetic, mask work, narrow loads and the waits the
pipeliner could not remove are all visible there (``/work/shared/design/performance.md`` section 9, the issue-13
profile columns). :func:`hot_loop` reads ``cuobjdump --dump-sass`` text (:func:`.aot.sass`):

- a *loop* is a backward branch (``BRA`` to an address not after it) and the code from its target to the branch;
  a span that holds an unconditional ``EXIT`` is not a loop body but an out-of-line block jumping back into one
  (ptxas places the retry of an mbarrier wait after the kernel's ``EXIT`` and branches back from there);
- an *MMA loop* is a loop holding tensor-core instructions (:data:`TENSOR_CORE`: ``HMMA`` on sm_80, ``HGMMA`` and
  ``HMMA`` on sm_90, ``DMMA`` for fp64) that holds no smaller MMA loop: the loops each pipelined reduction became;
- the *hot loop* is the MMA loop with the most tensor-core instructions per iteration (then the most
  instructions): when a kernel has several (one per tap), the heaviest iteration is the one to answer for.

Counted per iteration (every instruction of the span once; ``NOP`` and instructions predicated on ``!PT``, which
never issue, left out): tensor-core instructions, all instructions, the others, global loads without a vector width
(``LDG.E.U16``, ``LDG.E``: one element or one 32-bit word per thread) and with one (``.64``, ``.128``), cp.async
(``LDGSTS``), TMA loads (``UTMALDG``), and on sm_90 the smallest ``N`` of ``WARPGROUP.DEPBAR.LE gsb0, N`` in the
loop: how many wgmma groups may stay in flight while the loop waits (0: every load waits for every MMA).

:func:`gate` is the CI rule of the phase GEMM's 16-bit builds (the forward in both layouts, the NCHW input
gradient); :mod:`.reference_gemm` supplies the yardstick its ratio is taken against.
"""

from __future__ import annotations

import re

#: Tensor-core instruction opcodes: HMMA (mma.sync, 16-bit and TF32), HGMMA (wgmma), DMMA (fp64), IMMA/IGMMA
#: (integer), QGMMA (fp8), BMMA/BGMMA (binary).
TENSOR_CORE = re.compile(r"^(?:HMMA|HGMMA|DMMA|IMMA|IGMMA|QGMMA|BMMA|BGMMA)$")

#: The record keys :func:`hot_loop` returns (the profile's hot-loop columns), each ``None`` when the code has no
#: MMA loop.
KEYS = ("hot_tensor_core", "hot_instructions", "hot_other", "hot_scalar_loads", "hot_vector_loads", "hot_ldgsts",
        "hot_utmaldg", "mma_loops", "wgmma_wait")  # fmt: skip

_LINE = re.compile(r"/\*([0-9a-f]{4,})\*/\s+([^;]*);")
_BRANCH = re.compile(r"\bBRA(?:\.[\w.]+)?\s+(?:[^,;]*,\s*)?0x([0-9a-f]+)\s*$")


def instructions(sass: str) -> list[list[tuple[int, str]]]:
    """The instructions of ``sass`` as ``(address, text)`` pairs (text without the ``;`` and the encoding), one list
    per function (``cuobjdump`` restarts addresses at each ``Function :``)."""
    functions = []
    for chunk in re.split(r"^\s*Function\s*:.*$", sass, flags=re.MULTILINE):
        code = [(int(a, 16), text.strip()) for a, text in _LINE.findall(chunk)]
        if code:
            functions.append(code)
    return functions


def opcode(text: str) -> str:
    """The full opcode of an instruction, modifiers included (``@P0 LDG.E.U16 R2, [R4.64]`` -> ``LDG.E.U16``)."""
    return re.sub(r"^@!?U?P\w+\s+", "", text).split(None, 1)[0] if text else ""


def _issues(text: str) -> bool:
    """Whether an instruction takes an issue slot: not a ``NOP``, not predicated on ``!PT`` (never true)."""
    return not text.startswith("@!PT ") and opcode(text).split(".")[0] != "NOP"


def loops(code: list[tuple[int, str]]) -> list[tuple[int, int]]:
    """The ``(first, last)`` address spans of the loops of one function (see the module docstring), sorted."""
    found = set()
    exits = [addr for addr, text in code if opcode(text) == "EXIT" and not text.startswith("@")]
    for addr, text in code:
        if opcode(text).split(".")[0] != "BRA":
            continue
        target = _BRANCH.search(text)
        if target is None:  # a form this parser does not read must not pass as "no loop"
            raise ValueError(f"unreadable branch in SASS: {text!r}")
        start = int(target.group(1), 16)
        if start <= addr and not any(start <= e <= addr for e in exits):
            found.add((start, addr))
    return sorted(found)


def count(body: list[str]) -> dict[str, int | None]:
    """The per-iteration counts of one loop body (instruction texts, each once)."""
    ops = [opcode(t) for t in body if _issues(t)]
    base = [op.split(".")[0] for op in ops]
    loads = [op.split(".")[1:] for op, b in zip(ops, base) if b == "LDG"]
    vector = sum(1 for mods in loads if "64" in mods or "128" in mods)
    waits = (re.search(r"WARPGROUP\.DEPBAR\.LE\s+gsb0,\s*0x([0-9a-f]+)", t) for t in body)
    depths = [int(m.group(1), 16) for m in waits if m]
    tensor = sum(1 for b in base if TENSOR_CORE.match(b))
    return {
        "hot_tensor_core": tensor,
        "hot_instructions": len(ops),
        "hot_other": len(ops) - tensor,
        "hot_scalar_loads": len(loads) - vector,
        "hot_vector_loads": vector,
        "hot_ldgsts": base.count("LDGSTS"),
        "hot_utmaldg": base.count("UTMALDG"),
        "wgmma_wait": min(depths) if depths else None,
    }


def mma_loops(code: list[tuple[int, str]]) -> list[tuple[int, int]]:
    """The innermost loops of one function that hold tensor-core instructions."""
    mma = [addr for addr, text in code if TENSOR_CORE.match(opcode(text).split(".")[0])]
    holding = [(s, e) for s, e in loops(code) if any(s <= a <= e for a in mma)]
    return [(s, e) for s, e in holding
            if not any((s2, e2) != (s, e) and s <= s2 and e2 <= e for s2, e2 in holding)]  # fmt: skip


def local_memory_in_mma_loops(sass: str) -> int:
    """Loads and stores of local memory (spill traffic) inside the MMA loops of ``sass``: paid per K step, where
    the time goes (an outer loop, such as the NCHW window variant's loop over phases, runs its body a few times)."""
    total = 0
    for code in instructions(sass):
        spans = mma_loops(code)
        total += sum(1 for addr, text in code if re.search(r"\b(?:STL|LDL)(?:\.\w+)*\s", text + " ")
                     and any(start <= addr <= end for start, end in spans))  # fmt: skip
    return total


def hot_loop(sass: str) -> dict[str, int | None]:
    """The hot-loop figures of ``sass`` (keys :data:`KEYS`): the heaviest MMA loop's counts per iteration, and
    ``mma_loops``, how many MMA loops the code has; every figure ``None`` when it has none (no ``tl.dot``, or
    fp32 on the exact FMA path)."""
    best, total = None, 0
    for code in instructions(sass):
        for start, end in mma_loops(code):
            total += 1
            counts = count([text for addr, text in code if start <= addr <= end])
            if best is None or (counts["hot_tensor_core"], counts["hot_instructions"]) > (
                best["hot_tensor_core"], best["hot_instructions"]):  # fmt: skip
                best = counts
    if best is None:
        return dict.fromkeys(KEYS)
    return {**best, "mma_loops": total}


def kernel_instructions(sass: str) -> int:
    """Instructions of the whole kernel that take an issue slot, each counted once (``NOP`` and ``@!PT`` left out):
    the hot loop's body once, and everything a program runs once around it (row decoding, border masks, the
    pipeline's prologue, the epilogue). The work model's issue term (:func:`.workmodel.issue_seconds`) charges
    ``kernel_instructions - hot_instructions`` once per program and ``hot_instructions`` once per iteration."""
    return sum(1 for code in instructions(sass) for _, text in code if _issues(text))


def other_per_mma(figures: dict) -> float | None:
    """Non-tensor-core instructions per tensor-core instruction of a hot loop (``None`` without one)."""
    if not figures.get("hot_tensor_core"):
        return None
    return figures["hot_other"] / figures["hot_tensor_core"]


def ratio(build: dict, reference: dict) -> float | None:
    """:func:`other_per_mma` of a build over that of its reference GEMM (1.0: no overhead beyond a plain GEMM's)."""
    mine, theirs = other_per_mma(build), other_per_mma(reference)
    return None if mine is None or not theirs else mine / theirs


#: The CI rule's limit on :func:`ratio` (issue 13: within 15% of the tutorial GEMM's instructions per MMA).
RATIO_LIMIT = 1.15
#: What the rule holds: the 16-bit builds on the NVIDIA targets of the phase GEMM's forward launches with channels
#: innermost (the transposed convolution's, ``conv_transpose2d_fwd``, and conv2d + pixel_shuffle's), and of the
#: transposed convolution in NCHW (``conv_transpose2d_fwd_nchw``, the window variant) and of its input gradient in
#: NCHW (``conv_transpose2d_bwd_input_nchw``): kernel key -> the layout its builds are held in. conv2d +
#: pixel_shuffle in NCHW runs the phase path (its per-tap W shift keeps scalar loads): not held.
GATED = {"kernels": {"conv_transpose2d_fwd": "channels_last", "conv2d_pixel_shuffle": "channels_last",
                     "conv_transpose2d_fwd_nchw": "nchw", "conv_transpose2d_bwd_input_nchw": "nchw"},
         "dtypes": ("float16", "bfloat16"), "archs": (80, 90)}  # fmt: skip


#: The narrow tiles: forward configs of at most this many columns, which only layers with at most as many output
#: channels per group take (the launcher drops tiles wider than the problem). Their hot loop cannot be held to the
#: GEMM's instructions per tensor-core instruction (a per-row border test and a per-row address serve 8 to 32
#: columns, not 64 to 256): they are judged by what they cost the layers that use them, the work model's
#: modelled time (:func:`.workmodel.modelled`), and :func:`gate` holds them to the rest of its rule only. Only the
#: channels_last lists have them (an NCHW config's BLOCK_N counts W taps x channels: 32 columns there are 8
#: channels of a 4-tap kernel, held to the whole rule).
NARROW_COLUMNS = 32


def narrow(record: dict) -> bool:
    """Whether a build's config is a narrow tile (:data:`NARROW_COLUMNS`) of a channels_last list."""
    return (record.get("layout") != "nchw"
            and (record.get("config") or {}).get("BLOCK_N", NARROW_COLUMNS + 1) <= NARROW_COLUMNS)  # fmt: skip


def gated(record: dict) -> bool:
    """Whether :func:`gate` holds ``record`` to the rule: not a build on a 1-D or 3-D sample problem (``sample``) or
    on a layer of the report's set (``layer``): the rule is for the 2-D shipped configs on the sample problem."""
    return (not record.get("sample") and not record.get("layer")
            and GATED["kernels"].get(record.get("kernel")) == record.get("layout")
            and record.get("dtype") in GATED["dtypes"] and record.get("arch") in GATED["archs"])  # fmt: skip


def gate(records: list[dict]) -> list[str]:
    """The violations of the CI rule among profile ``records`` (empty: it passes). A gated build (:data:`GATED`:
    16-bit, sm_80 or sm_90, the forward launches with channels innermost, the transposed convolution's forward and
    input gradient in NCHW) fails when its hot loop issues more than :data:`RATIO_LIMIT` times the reference GEMM's
    non-tensor-core instructions per tensor-core instruction (narrow tiles, :func:`narrow`, excepted), when it
    issues any scalar global load, when (sm_90) its wgmma waits for zero groups in flight, or when it failed to
    build or has no tensor-core loop at all."""
    violations = []
    for r in filter(gated, records):
        name = r.get("cubin") or f"{r['kernel']} sm{r['arch']} {r['dtype']} {r['layout']} {r.get('config')}"
        problems = []
        if "error" in r:
            problems.append("build failed")
        elif not r.get("hot_tensor_core"):
            problems.append("no tensor-core loop")
        else:
            if narrow(r):
                pass  # judged by the modelled time of the layers that take it
            elif r.get("reference_ratio") is None:
                problems.append(f"no ratio to the reference GEMM ({r.get('reference_error', 'not compiled')})")
            elif r["reference_ratio"] > RATIO_LIMIT:
                problems.append(f"ratio to the reference GEMM {r['reference_ratio']:.2f} > {RATIO_LIMIT}")
            if r.get("hot_scalar_loads"):
                problems.append(f"{r['hot_scalar_loads']} scalar global loads per iteration")
            if r["arch"] == 90 and r.get("wgmma_wait") == 0:
                problems.append("wgmma waits for 0 groups in flight")
        if problems:
            violations.append(f"{name}: {'; '.join(problems)}")
    return violations
