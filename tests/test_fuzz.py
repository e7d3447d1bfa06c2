"""Property-based fuzzing of the forward op against torch in fp64 over random valid configurations.

The quick tier runs the explicit edge cases below and a few random examples; the full tier (``-m full``) 200
random examples. Both are derandomized (the same examples every run) and write no example database.
``TRITON_CONVT_FUZZ_EXAMPLES=2000 python -m pytest -q -m full tests/test_fuzz.py`` runs more. A failure shrinks
toward small sizes, stride/dilation 1, no padding, float32, NCHW, no activation, and prints the case field by
field and as the call that reproduces it.
"""

import os
from dataclasses import dataclass, replace

import pytest
import torch
import torch.nn.functional as F
from helpers import SENTINEL, assert_close_to_reference, forward_launches
from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st

import triton_convt
from triton_convt import launch
from triton_convt.activations import ACTIVATIONS

#: Random examples of the full tier, and of the quick one (which also runs the explicit edge cases).
EXAMPLES = int(os.environ.get("TRITON_CONVT_FUZZ_EXAMPLES", "200"))
QUICK_EXAMPLES = 10

DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16, "bfloat16": torch.bfloat16}
#: How the operands and the output are laid out; the first is what a failure shrinks to.
LAYOUTS = ["nchw", "channels_last", "weight-channels-last", "input-strided-view", "out-view-in-buffer"]


@dataclass(frozen=True)
class Case:
    """One valid call; every pair is (H, W). ``batch`` None means unbatched input."""

    batch: int | None
    c_in_g: int
    c_out_g: int
    groups: int
    hw: tuple[int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    output_padding: tuple[int, int]
    dilation: tuple[int, int]
    dtype: str
    layout: str
    activation: str | None
    bias: bool

    def __repr__(self):
        c_in, c_out = self.c_in_g * self.groups, self.c_out_g * self.groups
        x = [c_in, *self.hw] if self.batch is None else [self.batch, c_in, *self.hw]
        return (
            f"conv_transpose2d(x{x}, w{[c_in, self.c_out_g, *self.kernel]}, "
            f"{f'bias[{c_out}]' if self.bias else 'None'}, stride={self.stride}, padding={self.padding}, "
            f"output_padding={self.output_padding}, groups={self.groups}, dilation={self.dilation}, "
            f"activation={self.activation!r}) in {self.dtype}, layout {self.layout!r}"
        )

    def kwargs(self) -> dict:
        return dict(stride=self.stride, padding=self.padding, output_padding=self.output_padding,
                    groups=self.groups, dilation=self.dilation)  # fmt: skip


@st.composite
def cases(draw) -> Case:
    """A valid call built from small integers, so that hypothesis shrinks it by lowering them."""
    ints = lambda lo, hi: draw(st.integers(lo, hi))  # noqa: E731
    pair = lambda lo, hi: (ints(lo, hi), ints(lo, hi))  # noqa: E731
    hw, kernel, stride, dilation = pair(1, 5), pair(1, 4), pair(1, 3), pair(1, 3)
    output_padding = tuple(ints(0, max(s, d) - 1) for s, d in zip(stride, dilation))
    # The output is at least 1 long: 2*padding <= (I - 1)*s + d*(K - 1) + output_padding.
    padding = tuple(
        ints(0, ((i - 1) * s + d * (k - 1) + op) // 2)
        for i, k, s, d, op in zip(hw, kernel, stride, dilation, output_padding)
    )
    return Case(
        batch=draw(st.one_of(st.integers(1, 3), st.none(), st.just(0))),
        c_in_g=ints(1, 20),
        c_out_g=ints(1, 20),
        groups=ints(1, 3),
        hw=hw,
        kernel=kernel,
        stride=stride,
        padding=padding,
        output_padding=output_padding,
        dilation=dilation,
        dtype=draw(st.sampled_from(list(DTYPES))),
        layout=draw(st.sampled_from(LAYOUTS)),
        activation=draw(st.sampled_from([None, *ACTIVATIONS])),
        bias=draw(st.booleans()),
    )


def operands(case: Case):
    dtype = DTYPES[case.dtype]
    g = torch.Generator().manual_seed(0)
    c_in = case.c_in_g * case.groups
    batch = () if case.batch is None else (case.batch,)
    x = torch.randn(*batch, c_in, *case.hw, generator=g).to(dtype)
    w = torch.randn(c_in, case.c_out_g, *case.kernel, generator=g).to(dtype)
    b = torch.randn(case.c_out_g * case.groups, generator=g).to(dtype) if case.bias else None
    if case.layout == "channels_last" and x.dim() == 4:
        x = x.to(memory_format=torch.channels_last)
    elif case.layout == "weight-channels-last":
        w = w.to(memory_format=torch.channels_last)
    elif case.layout == "input-strided-view":
        x = torch.repeat_interleave(x, 2, dim=-1)[..., ::2]
    return x, w, b


#: Hypothesis's settings for both tiers: derandomized, no example database, no deadline (the interpreter's time per
#: example varies with the programs it runs).
SETTINGS = dict(derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip


def _case(**fields) -> Case:
    """A k3 s2 case on a 3x3 input, 2 -> 3 channels, fp32 NCHW with bias, with ``fields`` changed."""
    base = Case(batch=1, c_in_g=2, c_out_g=3, groups=1, hw=(3, 3), kernel=(3, 3), stride=(2, 2), padding=(0, 0),
                output_padding=(0, 0), dilation=(1, 1), dtype="float32", layout="nchw", activation=None,
                bias=True)  # fmt: skip
    return replace(base, **fields)


#: The edges random examples reach only now and then, run in the quick tier every time: each dtype, layout and
#: activation at least once, an empty and an unbatched input, empty phases (stride above the dilated kernel's
#: reach), the largest output padding, padding that leaves an output of length 1, and channel counts that cut the
#: kernels' channel tiles.
EDGES = [
    _case(batch=0, groups=2, layout="out-view-in-buffer", activation="relu"),
    _case(batch=None, c_in_g=3, c_out_g=2, groups=3, dtype="float64", layout="weight-channels-last",
          activation="sigmoid"),
    _case(hw=(4, 3), kernel=(1, 2), stride=(3, 3), dilation=(3, 1), output_padding=(2, 2), dtype="bfloat16",
          layout="input-strided-view", activation="gelu_tanh"),
    _case(batch=2, hw=(2, 5), kernel=(2, 4), stride=(1, 2), padding=(1, 6), dilation=(2, 1), output_padding=(1, 1),
          dtype="float16", layout="channels_last", activation="leaky_relu", bias=False),
    _case(c_in_g=20, c_out_g=19, groups=2, hw=(3, 2), kernel=(4, 4), padding=(1, 2), dtype="float16",
          layout="out-view-in-buffer", activation="silu"),
    _case(c_in_g=17, c_out_g=20, hw=(5, 5), kernel=(3, 2), stride=(3, 1), dilation=(2, 3), dtype="float32",
          layout="channels_last", activation="tanh"),
    _case(batch=3, c_in_g=1, c_out_g=1, groups=3, hw=(1, 1), kernel=(1, 1), stride=(1, 1), dtype="bfloat16",
          activation="gelu"),
]  # fmt: skip


@settings(max_examples=QUICK_EXAMPLES, **SETTINGS)
@given(case=cases())
def test_forward_matches_torch(case):
    _check(case)


for _edge in EDGES:
    test_forward_matches_torch = example(case=_edge)(test_forward_matches_torch)


@pytest.mark.full
@settings(max_examples=EXAMPLES, **SETTINGS)
@given(case=cases())
def test_forward_matches_torch_at_depth(case):
    _check(case)


def _check(case: Case):
    note(f"as a call: {case!r}")
    x, w, b = operands(case)
    expected = F.conv_transpose2d(x.double(), w.double(), None if b is None else b.double(), **case.kwargs())
    if case.activation is not None:
        expected = ACTIVATIONS[case.activation](expected, 0.01)
    out = buf = None
    if case.layout == "out-view-in-buffer":
        buf = torch.full([s + 2 for s in expected.shape], SENTINEL, dtype=x.dtype)
        out = buf[tuple(slice(1, 1 + s) for s in expected.shape)]
    start = launch.launch_count()
    y = triton_convt.conv_transpose2d(x, w, b, **case.kwargs(), activation=case.activation, out=out)
    assert launch.launch_count() - start == (forward_launches(w, case.groups) if expected.numel() else 0)
    assert y.dtype == x.dtype
    assert_close_to_reference(y, expected)
    if buf is not None:
        border = torch.ones_like(buf, dtype=torch.bool)
        border[tuple(slice(1, 1 + s) for s in expected.shape)] = False
        assert (buf[border] == SENTINEL).all(), "out= wrote outside its view"
