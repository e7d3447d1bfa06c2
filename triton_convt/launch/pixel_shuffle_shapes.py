"""Conv2d then PixelShuffle as one phase GEMM: the arithmetic, in plain Python (no torch, no Triton).

``y = pixel_shuffle(conv2d(x, W, stride=st, padding=p, dilation=d, groups=g), r)`` takes conv output channel
``co = c*r*r + i*r + j`` at conv pixel ``(h, w)`` to output pixel ``(h*r + i, w*r + j)`` of channel ``c``. So per axis,
conv row ``q`` reads input ``q*st - p_lo + k*d`` through tap ``k`` (every tap, one phase: the phase GEMM's
input-gradient form, :func:`.phase_table.input_grad_axis`) and writes output row ``q*r + i``: the same GEMM with an
output step ``r``, whose column ``co`` lands ``i`` rows and ``j`` columns further (the kernel's ``SHUFFLE``).

The backward is a transposed convolution of the unshuffled gradient ``dz[n, co, h, w] = dy[n, c, h*r + i, w*r + j]``
(times the activation's derivative): its input gradient is ``conv_transpose2d(dz, W, stride=st, padding=p_lo,
dilation=d, groups=g)`` cropped to the input's size, and its weight gradient is the transposed convolution's weight
gradient with the roles of input and output swapped (:meth:`ConvShuffleParams.transposed`).
"""

from __future__ import annotations

from dataclasses import dataclass

from .shapes import ConvParams


def conv_length(size: int, kernel: int, stride: int, pad_lo: int, pad_hi: int, dilation: int) -> int:
    """torch's conv output length ``floor((I + p_lo + p_hi - d*(K - 1) - 1) / s) + 1`` (<= 0 when the kernel's span
    exceeds the padded input)."""
    span = size + pad_lo + pad_hi - dilation * (kernel - 1)
    return (span - 1) // stride + 1 if span > 0 else 0


@dataclass(frozen=True)
class ConvShuffleParams:
    """One call's normalised arguments; every pair is (H, W), the padding per axis ``(lo, hi)``."""

    upscale: int
    stride: tuple[int, int]
    padding: tuple[tuple[int, int], tuple[int, int]]
    dilation: tuple[int, int]
    groups: int
    kernel: tuple[int, int]

    def conv_hw(self, input_hw: tuple[int, ...]) -> tuple[int, int]:
        """The conv's (H, W) before the shuffle."""
        return tuple(
            conv_length(i, k, s, lo, hi, d)
            for i, k, s, (lo, hi), d in zip(input_hw, self.kernel, self.stride, self.padding, self.dilation)
        )

    def output_channels(self, in_channels: int, conv_channels: int) -> int:
        """The output's channels: the conv's ``conv_channels`` over ``r*r``; none when the input has no channels
        (torch's conv gives zero output channels then, whatever the weight: ``calc_output_size`` in
        ``Convolution.cpp``)."""
        return 0 if in_channels == 0 else conv_channels // self.upscale**2

    def output_hw(self, input_hw: tuple[int, ...]) -> tuple[int, int]:
        """The output's (H, W): the conv's, times the upscale factor."""
        return tuple(c * self.upscale for c in self.conv_hw(input_hw))

    def transposed(self, input_hw: tuple[int, ...]) -> ConvParams:
        """The transposed convolution whose forward is the conv's input gradient (and whose weight gradient, with
        input and output swapped, is the conv's): the conv's stride, leading padding, dilation and groups, and the
        output padding that makes its output the conv's input size ``input_hw`` from the conv's output size. That
        output padding only states the size (it may be negative or exceed the stride: ``"same"`` padding with an
        odd total, or a strided conv that leaves input rows unread); the launches are given the output itself."""
        conv = self.conv_hw(input_hw)
        pads = tuple(lo for lo, _ in self.padding)
        axes = zip(input_hw, conv, self.stride, pads, self.dilation, self.kernel)
        op = tuple(i - ((c - 1) * s - 2 * p + d * (k - 1) + 1) for i, c, s, p, d, k in axes)
        return ConvParams(stride=self.stride, padding=pads, output_padding=op, dilation=self.dilation,
                          groups=self.groups, kernel=self.kernel)  # fmt: skip
