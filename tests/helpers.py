"""Comparison with torch shared by the tests."""

import torch

#: Relative tolerance per dtype, against an fp64 reference computed from the same (rounded) inputs. Scaled by the
#: largest reference magnitude: the accumulation error grows with it, not with each element.
TOLERANCE = {torch.float64: 1e-12, torch.float32: 2e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}


#: float32 on a GPU with TF32 on (torch's default for convolutions, which the kernels follow) rounds the operands to
#: a 10-bit mantissa, as fp16 does: the fp32 tolerance is then fp16's.
TF32_TOLERANCE = TOLERANCE[torch.float16]


def tolerance(t: torch.Tensor) -> float:
    """The relative tolerance of a result ``t`` (its dtype, and TF32 for float32 on CUDA when it is on)."""
    if t.dtype == torch.float32 and t.is_cuda and torch.backends.cudnn.allow_tf32:
        return TF32_TOLERANCE
    return TOLERANCE[t.dtype]


def assert_close_to_reference(actual: torch.Tensor, reference: torch.Tensor) -> None:
    """``actual`` (any dtype) equals the fp64 ``reference`` within the tolerance of ``actual``'s dtype."""
    assert actual.shape == reference.shape, (actual.shape, reference.shape)
    tol = tolerance(actual)
    scale = max(1.0, reference.abs().max().item()) if reference.numel() else 1.0
    torch.testing.assert_close(actual.double(), reference, atol=tol * scale, rtol=tol)


#: Written around the outputs of the out= tests; any element still holding it after a call was not written.
SENTINEL = -12345.0


def bits(t: torch.Tensor) -> torch.Tensor:
    """``t``'s elements as integers of the same width, so that ``torch.equal`` compares them bit for bit (NaN
    payloads and the sign of zero included)."""
    return t.contiguous().view({1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()])


def assert_bitwise_repeatable(fn, *inputs: torch.Tensor) -> None:
    """Two calls of ``fn(*inputs)`` give the same output and the same gradients of ``y.square().sum()`` with respect
    to ``inputs`` (which require grad), bit for bit: the kernels' reductions run in a fixed order."""
    runs = []
    for _ in range(2):
        y = fn(*inputs)
        runs.append((y.detach(), *torch.autograd.grad(y.square().sum(), inputs)))
    for first, second in zip(*runs):
        assert torch.equal(bits(first), bits(second))


def assert_matches_nonfinite(actual: torch.Tensor, reference: torch.Tensor) -> None:
    """``actual`` holds NaN, +inf and -inf exactly where the fp64 ``reference`` does, and its finite elements equal
    the reference's within :func:`assert_close_to_reference`'s tolerance."""
    assert actual.shape == reference.shape, (actual.shape, reference.shape)
    act = actual.double()
    for name, where in (("NaN", torch.isnan), ("+inf", torch.isposinf), ("-inf", torch.isneginf)):
        differ = where(act) != where(reference)
        assert not differ.any(), (
            f"{name} at {int(differ.sum())} positions where torch has none or vice versa, first at "
            f"{differ.nonzero()[0].tolist()}: ours {act[differ][0].item()}, torch {reference[differ][0].item()}"
        )
    finite = reference.isfinite()
    assert_close_to_reference(actual[finite], reference[finite])


def forward_launches(weight: torch.Tensor, groups: int = 1) -> int:
    """Triton launches of one forward call with ``weight``: the GEMM kernel reads a weight with output (or input)
    channels innermost, such as a channels_last one, in place (one launch); any other weight is first copied into
    that order (two launches: the copy, then the output). The depthwise kernel (one input channel per group)
    reads any weight in place."""
    if weight.shape[0] == groups:
        return 1
    in_place = any(weight.stride(d) == 1 or weight.shape[d] == 1 for d in (0, 1))
    return 1 if in_place else 2


def tiered(cases: list[tuple], key, rank=None) -> list:
    """``cases`` as pytest params: for each ``key(*case)``, the case of least ``rank(*case)`` (the first one when no
    rank is given) runs in the quick tier and the others are marked ``full`` (``python -m pytest -m full``). For
    tests over every shipped config: the quick tier keeps one per dtype or kernel, the full tier the others."""
    import pytest

    chosen = {}
    for i, case in enumerate(cases):
        k, r = key(*case), (rank(*case) if rank else 0, i)
        if k not in chosen or r < chosen[k][0]:
            chosen[k] = (r, i)
    quick = {i for _, i in chosen.values()}
    return [pytest.param(*case, marks=() if i in quick else (pytest.mark.full,)) for i, case in enumerate(cases)]


def tile_volume(config: dict) -> int:
    """The product of a config's ``BLOCK*`` sizes: the tests over shipped configs size their problems by it."""
    volume = 1
    for name, size in config.items():
        if name.startswith("BLOCK"):
            volume *= size
    return volume


def assert_compiled_matches_eager(model, x: torch.Tensor):
    """``torch.compile(model, fullgraph=True)`` (a copy of ``model``, a converted network) gives ``model``'s output
    on ``x`` and, after ``backward()`` of the mean square, its parameters' gradients: the ops' fake implementations
    and autograd formula trace without a graph break. Returns the compiled model (already compiled for ``x``)."""
    import copy

    compiled_model = copy.deepcopy(model)
    compiled = torch.compile(compiled_model, fullgraph=True)
    y_eager = model(x)
    y_eager.square().mean().backward()
    y_compiled = compiled(x)
    y_compiled.square().mean().backward()
    torch.testing.assert_close(y_compiled, y_eager)
    for p_eager, p_compiled in zip(model.parameters(), compiled_model.parameters()):
        torch.testing.assert_close(p_compiled.grad, p_eager.grad)
    return compiled
