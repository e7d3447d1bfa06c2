"""Shape and phase arithmetic (plain Python), checked against brute force and torch's shape rules."""

import itertools

import pytest
import torch

from triton_convt.launch import shapes


def brute_force_taps(kernel, stride, padding, dilation):
    """Scatter definition o = i*s - p + k*d, regrouped by output residue: the taps each phase gathers."""
    table = [[] for _ in range(stride)]
    for k in range(kernel):
        for r in range(stride):
            if (r + padding - k * dilation) % stride == 0:
                table[r].append((k, (r + padding - k * dilation) // stride))
    return table


@pytest.mark.parametrize(
    "kernel, stride, padding, dilation, expected",
    [
        (3, 2, 1, 1, [[(1, 0)], [(0, 1), (2, 0)]]),
        (4, 2, 1, 1, [[(1, 0), (3, -1)], [(0, 1), (2, 0)]]),
        (3, 2, 0, 2, [[(0, 0), (1, -1), (2, -2)], []]),
        (1, 2, 0, 1, [[(0, 0)], []]),
    ],
    ids=["k3s2p1", "k4s2p1", "k3s2d2-empty-phase", "k1s2-stride-over-kernel"],
)
def test_phase_taps_design_examples(kernel, stride, padding, dilation, expected):
    """The worked examples of shared/design/phase-math.md."""
    assert shapes.phase_taps(kernel, stride, padding, dilation) == expected


@pytest.mark.parametrize(
    "kernel, stride, padding, dilation",
    list(itertools.product(range(1, 8), range(1, 6), range(0, 5), range(1, 5))),
)
def test_closed_form_taps_match_brute_force(kernel, stride, padding, dilation):
    """The kernel's closed-form enumeration finds exactly the taps of each phase, each tap in one phase."""
    table = shapes.phase_taps(kernel, stride, padding, dilation)
    assert table == brute_force_taps(kernel, stride, padding, dilation)
    assert sum(len(taps) for taps in table) == kernel
    schedule = shapes.tap_schedule(kernel, stride, dilation)
    assert max(len(taps) for taps in table) <= schedule.max_taps


def landings(size, kernel, stride, padding, output_padding, dilation):
    """Scatter definition: the (output, input, tap) triples that land inside the output."""
    out = shapes.output_length(size, kernel, stride, padding, output_padding, dilation)
    return {
        (i * stride - padding + k * dilation, i, k)
        for i in range(size) for k in range(kernel) if 0 <= i * stride - padding + k * dilation < out
    }  # fmt: skip


@pytest.mark.parametrize(
    "kernel, stride, padding, dilation", list(itertools.product(range(1, 7), range(1, 4), range(0, 3), range(1, 4)))
)
def test_launch_stride_of_a_one_pixel_axis_changes_nothing_but_the_phases(kernel, stride, padding, dilation):
    for output_padding in range(max(stride, dilation)):
        args = (kernel, stride, padding, output_padding, dilation)
        if shapes.output_length(1, *args) <= 0:
            continue
        s = shapes.launch_stride(1, kernel, stride, dilation)
        launched = (kernel, s, padding, output_padding, dilation)
        # The same output length and the same taps landing on the same outputs...
        assert shapes.output_length(1, *launched) == shapes.output_length(1, *args)
        assert landings(1, *launched) == landings(1, *args)
        # ...and no phase gathers more than one tap, so none is issued for an output it cannot reach.
        assert max(len(taps) for taps in shapes.phase_taps(kernel, s, padding, dilation)) <= 1
    assert shapes.launch_stride(5, kernel, stride, dilation) == stride  # longer axes keep their stride


@pytest.mark.parametrize("out, stride", [(1, 1), (1, 3), (7, 2), (8, 2), (33, 8), (5, 7)])
def test_phase_counts_sum_to_output(out, stride):
    counts = [shapes.phase_count(out, stride, r) for r in range(stride)]
    assert sum(counts) == out
    assert counts == [len(range(r, out, stride)) for r in range(stride)]


@pytest.mark.parametrize(
    "size, kernel, stride, padding, output_padding, dilation",
    [(5, 3, 2, 0, 0, 1), (5, 3, 2, 1, 1, 1), (4, 4, 3, 1, 2, 4), (1, 1, 1, 0, 0, 1), (7, 5, 1, 2, 0, 3)],
)
def test_output_length_matches_torch(size, kernel, stride, padding, output_padding, dilation):
    x = torch.zeros(1, 1, size, 1)
    w = torch.zeros(1, 1, kernel, 1)
    y = torch.nn.functional.conv_transpose2d(
        x, w, stride=(stride, 1), padding=(padding, 0), output_padding=(output_padding, 0), dilation=(dilation, 1)
    )
    assert shapes.output_length(size, kernel, stride, padding, output_padding, dilation) == y.shape[2]


@pytest.mark.parametrize("target", [(23, 24), (24, 23), (24, 24), (23, 23)])
def test_output_padding_for_size_matches_module(target):
    m = torch.nn.ConvTranspose2d(1, 1, 3, stride=2, padding=1)
    x = torch.zeros(1, 1, 12, 12)
    expected = m._output_padding(x, list(target), m.stride, m.padding, m.kernel_size, 2, m.dilation)
    got = shapes.output_padding_for_size((12, 12), target, (3, 3), (2, 2), (1, 1), (1, 1))
    assert list(got) == list(expected)


@pytest.mark.parametrize("target", [(22, 23), (25, 23)])
def test_unreachable_output_size_is_value_error(target):
    with pytest.raises(ValueError, match="valid sizes range from"):
        shapes.output_padding_for_size((12, 12), target, (3, 3), (2, 2), (1, 1), (1, 1))
