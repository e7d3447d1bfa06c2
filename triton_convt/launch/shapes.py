"""Shape and phase arithmetic of the transposed convolution, in plain Python (no torch, no Triton): the first step of
launch planning.

Everything here holds per spatial axis; the axes (L; H, W; or D, H, W) are handled independently.
:class:`ConvParams` holds one call's normalised arguments (what the functional API validated) and derives the output
size and the launch stride. Symbols follow ``shared/design/phase-math.md``: input size ``I``, kernel size ``K``,
stride ``s``, padding ``p``, output padding ``op``, dilation ``d``.

The taps of a phase follow the closed form of :func:`tap_schedule` (the depthwise kernel evaluates it per element;
the GEMM kernel reads it from the host-built table of :mod:`.phase_table`); :func:`phase_taps` spells the same
enumeration out in Python so that the tests can compare it with a brute-force scan.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace


def output_length(size: int, kernel: int, stride: int, padding: int, output_padding: int, dilation: int) -> int:
    """The documented output length ``(I - 1)*s - 2*p + d*(K - 1) + op + 1`` (may be <= 0 for bad arguments)."""
    return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


def output_padding_for_size(
    input_hw: Sequence[int],
    output_size: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
) -> tuple[int, int]:
    """The output_padding that makes the output ``output_size`` (H, W), as ``nn.ConvTranspose2d`` picks it.

    ``output_size`` is (H, W) already stripped of batch and channel dimensions. A size outside
    ``[O(op=0), O(op=0) + s - 1]`` raises ValueError with torch's wording.
    """
    min_sizes = [output_length(i, k, s, p, 0, d) for i, k, s, p, d in zip(input_hw, kernel, stride, padding, dilation)]
    max_sizes = [lo + s - 1 for lo, s in zip(min_sizes, stride)]
    for size, lo, hi in zip(output_size, min_sizes, max_sizes):
        if size < lo or size > hi:
            raise ValueError(
                f"requested an output size of {list(output_size)}, but valid sizes range from {min_sizes} "
                f"to {max_sizes} (for an input of {list(input_hw)})"
            )
    return tuple(size - lo for size, lo in zip(output_size, min_sizes))


def launch_stride(size: int, kernel: int, stride: int, dilation: int) -> int:
    """The stride the forward kernels run an axis of input length ``size`` with: ``stride``, unless the input has one
    pixel along the axis. Then the stride does not change the result (``(I - 1)*s`` is 0 in the output length, and
    tap ``k`` lands on output ``k*d - p`` whatever ``s``), and the span ``d*(K - 1) + 1`` is used if larger: every
    phase then has at most one tap, so no masked tap is issued. DCGAN's first layer (a 1x1 latent to 4x4, stride 1)
    would otherwise run all 16 taps for each output pixel, 15 of them reading outside the single input pixel.
    """
    if size != 1:
        return stride
    return max(stride, dilation * (kernel - 1) + 1)


def phase_count(out: int, stride: int, residue: int) -> int:
    """``Q_r``: how many outputs ``o = q*s + r`` of an axis of length ``out`` fall in phase ``r`` (0 if none)."""
    return max(0, -(-(out - residue) // stride))


@dataclass(frozen=True)
class TapSchedule:
    """The per-axis constants the kernel uses to enumerate the taps of a phase without a search.

    Tap ``k`` belongs to phase ``r`` iff ``k*d ≡ r + p (mod s)``. With ``G = gcd(d, s)`` and ``m = s/G``, phase
    ``r`` has no tap unless ``(r + p) % G == 0``; otherwise its taps are ``k0, k0 + m, k0 + 2m, ... < K`` with
    ``k0 = ((r + p)/G * inverse) % m``, where ``inverse`` is ``(d/G)^-1 mod m``.
    """

    gcd: int  #: G = gcd(d, s)
    step: int  #: m = s / G, the distance between two taps of one phase
    inverse: int  #: (d/G)^-1 mod m (0 when m == 1)
    max_taps: int  #: ceil(K / m): the most taps any phase can have; the kernel's static loop length


def tap_schedule(kernel: int, stride: int, dilation: int) -> TapSchedule:
    g = math.gcd(dilation, stride)
    m = stride // g
    inverse = pow(dilation // g, -1, m) if m > 1 else 0
    return TapSchedule(gcd=g, step=m, inverse=inverse, max_taps=-(-kernel // m))


def first_tap(residue: int, padding: int, schedule: TapSchedule) -> int | None:
    """``k0`` of phase ``residue`` (the kernel computes exactly this), or None for a phase with no tap."""
    rp = residue + padding
    if rp % schedule.gcd:
        return None
    return (rp // schedule.gcd * schedule.inverse) % schedule.step


def phase_taps(kernel: int, stride: int, padding: int, dilation: int) -> list[list[tuple[int, int]]]:
    """For each residue ``r`` in ``range(stride)``: the ``(k, delta)`` pairs of its taps.

    Output ``o = q*s + r`` reads input ``i = q + delta`` through tap ``k``; ``delta = (r + p - k*d) / s`` is an exact
    division and may be negative.
    """
    schedule = tap_schedule(kernel, stride, dilation)
    table = []
    for r in range(stride):
        k0 = first_tap(r, padding, schedule)
        taps = [] if k0 is None else list(range(k0, kernel, schedule.step))
        table.append([(k, (r + padding - k * dilation) // stride) for k in taps])
    return table


@dataclass(frozen=True)
class ConvParams:
    """Normalised arguments of one call; every tuple has one entry per spatial axis (1, 2 or 3 of them, in torch's
    order: (L,), (H, W) or (D, H, W))."""

    stride: tuple[int, ...]
    padding: tuple[int, ...]
    output_padding: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int
    kernel: tuple[int, ...]

    @property
    def ndim(self) -> int:
        """The number of spatial axes."""
        return len(self.kernel)

    def output_hw(self, input_hw: Sequence[int]) -> tuple[int, ...]:
        """The output's spatial size for an input of spatial size ``input_hw`` (one entry per axis)."""
        return tuple(
            output_length(i, k, s, p, op, d)
            for i, k, s, p, op, d in zip(
                input_hw, self.kernel, self.stride, self.padding, self.output_padding, self.dilation
            )
        )

    def for_launch(self, input_hw: Sequence[int]) -> ConvParams:
        """The same convolution as the forward kernels run it on an input of ``input_hw``: the stride of each axis
        is :func:`launch_stride` (it differs only along an axis of one input pixel, where the stride does not
        change the result)."""
        stride = tuple(map(launch_stride, input_hw, self.kernel, self.stride, self.dilation))
        return replace(self, stride=stride)

    def as_3d(self) -> ConvParams:
        """The same convolution with unit axes in front, up to three spatial axes (D, H, W): the kernels are
        written for three axes, and a 1-D or 2-D call runs them with the missing axes of size 1 (kernel 1,
        stride 1, no padding), which changes nothing."""
        extra = 3 - self.ndim
        return ConvParams(
            stride=(1,) * extra + self.stride,
            padding=(0,) * extra + self.padding,
            output_padding=(0,) * extra + self.output_padding,
            dilation=(1,) * extra + self.dilation,
            groups=self.groups,
            kernel=(1,) * extra + self.kernel,
        )
