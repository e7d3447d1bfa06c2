"""Nearest-upsample then convolution, folded into one transposed convolution: the arithmetic, in plain Python (no
torch, no Triton).

Per spatial axis (H and W are independent), ``conv(upsample_nearest(x, s), w, padding=(p_lo, p_hi), dilation=d)``
with stride 1 reads the upsampled signal ``u[m] = x[floor(m / s)]`` (zero outside ``[0, s*I)``): output ``o`` takes
``u[o - p_lo + j*d]`` through tap ``j``. With ``o = q*s + r`` that is input ``q + e`` where
``e = floor((r - p_lo + j*d) / s)`` depends on the phase ``r`` and the tap only, and the boundary is exact: ``u[m]``
is zero exactly when ``floor(m / s)`` lies outside ``[0, I)``. Taps of one phase with the same offset ``e`` read the
same input pixel, so their weights add up.

A transposed convolution with stride ``s``, padding ``P``, dilation 1 reads input ``i`` into output
``o = i*s - P + k'``: with ``i = q + e`` that is ``k' = r + P - e*s``, independent of ``q``. So each (phase, offset)
pair is one tap ``k'`` of a transposed convolution whose weight is the sum of the conv taps it gathers; ``P`` is chosen
so that the smallest ``k'`` is 0. Distinct pairs get distinct ``k'`` (``k' ≡ r + P mod s``), so the folded weight is
``W'[k'] = sum(w[j] for j in taps(k'))`` and its adjoint gives ``dw[j] = sum over phases r of dW'[k'(r, j)]``.

The output length is the conv's, ``s*I + p_lo + p_hi - d*(k - 1)``; it is expressed through the transposed
convolution's output padding ``op = O - ((I - 1)*s - 2P + K')`` (:func:`output_padding`).
"""

from __future__ import annotations

from dataclasses import dataclass

from .shapes import ConvParams


def tap_offset(phase: int, tap: int, scale: int, pad_lo: int, dilation: int) -> int:
    """``e``: the input offset (relative to ``q``) that tap ``tap`` of phase ``phase`` reads; a floor division
    (Python's ``//`` floors; Triton's truncates, which is why this is computed here and not in a kernel)."""
    return (phase - pad_lo + tap * dilation) // scale


@dataclass(frozen=True)
class AxisFold:
    """The fold of one axis: the transposed convolution's padding ``P`` and kernel size ``K'``, and which conv taps
    each folded tap sums."""

    scale: int  #: s, the upsampling factor (the transposed convolution's stride)
    pad: int  #: P, the transposed convolution's padding
    folded: int  #: K', the folded kernel size
    #: For each folded tap k' in range(K'): the conv taps j summed into it (empty for a k' no (phase, offset) maps to).
    taps: tuple[tuple[int, ...], ...]

    def lands_mask(self, kernel: int) -> int:
        """The fold kernels' constexpr: bit ``k'*kernel + j`` is set iff conv tap ``j`` adds into folded tap ``k'``."""
        return sum(1 << (k * kernel + j) for k, taps in enumerate(self.taps) for j in taps)

    def folded_tap(self, phase: int, tap: int, pad_lo: int, dilation: int) -> int:
        """``k'(r, j) = r + P - e(r, j)*s``: the folded tap that conv tap ``tap`` of phase ``phase`` adds into."""
        return phase + self.pad - tap_offset(phase, tap, self.scale, pad_lo, dilation) * self.scale


def fold_axis(kernel: int, scale: int, pad_lo: int, dilation: int) -> AxisFold:
    """The fold of an axis with conv kernel size ``kernel``, upsampling ``scale``, left (top) padding ``pad_lo`` and
    dilation ``dilation`` (the right padding only changes the output length: :func:`output_padding`).

    ``P = max(e*s - r)`` over all (phase, tap) pairs, so that the smallest ``k'`` is 0 (unless that would make ``P``
    negative: then ``P = 0`` and the first folded taps are empty), and ``K' = max k' + 1``.
    E.g. s=2, k=3, p=1: ``P = 1``, ``K' = 4``, taps ``((2,), (1, 2), (0, 1), (0,))`` (the known "k4 s2 p1" rewrite).
    """
    pairs = {}
    for r in range(scale):
        for j in range(kernel):
            pairs.setdefault((r, tap_offset(r, j, scale, pad_lo, dilation)), []).append(j)
    # Not below 0: the transposed convolution's kernels take a non-negative padding. A conv padded past its kernel's
    # span (p_lo > d*(k - 1)) would want a negative one; its folded kernel starts with empty taps instead.
    pad = max(0, max(e * scale - r for r, e in pairs))
    folded = max(r + pad - e * scale for r, e in pairs) + 1
    taps = [()] * folded
    for (r, e), js in pairs.items():
        taps[r + pad - e * scale] = tuple(js)
    return AxisFold(scale=scale, pad=pad, folded=folded, taps=tuple(taps))


def output_length(size: int, kernel: int, scale: int, pad_lo: int, pad_hi: int, dilation: int) -> int:
    """The conv's output length on the upsampled axis: ``s*I + p_lo + p_hi - d*(k - 1)`` (may be <= 0)."""
    return scale * size + pad_lo + pad_hi - dilation * (kernel - 1)


def output_padding(size: int, kernel: int, scale: int, pad_lo: int, pad_hi: int, dilation: int) -> int:
    """The transposed convolution's output padding that makes its output the conv's length:
    ``O - ((I - 1)*s - 2P + K')``, with ``P`` and ``K'`` of :func:`fold_axis`.

    It comes out as ``p_hi - p_lo`` (the tests check it over a grid): 0 for symmetric padding, 1 for ``"same"`` with
    an odd ``d*(k - 1)``; more when ``P`` was held at 0 (padding past the kernel's span). The kernels take the
    output size as given (they never test ``op < max(s, d)``), so the ``op = 1`` of ``s = 1`` is fine.
    """
    fold = fold_axis(kernel, scale, pad_lo, dilation)
    out = output_length(size, kernel, scale, pad_lo, pad_hi, dilation)
    return out - ((size - 1) * scale - 2 * fold.pad + fold.folded)


def same_padding(kernel: int, dilation: int) -> tuple[int, int]:
    """``padding="same"`` as torch's conv pads one axis (stride 1): ``d*(k - 1)`` in all, the odd one on the right
    (bottom)."""
    total = dilation * (kernel - 1)
    return total // 2, total - total // 2


@dataclass(frozen=True)
class UpsampleConvParams:
    """One call's normalised arguments; every pair is (H, W), padding per axis as ``(lo, hi)``."""

    scale: tuple[int, int]
    padding: tuple[tuple[int, int], tuple[int, int]]
    dilation: tuple[int, int]
    groups: int
    kernel: tuple[int, int]

    def output_hw(self, input_hw: tuple[int, int]) -> tuple[int, int]:
        """The output's (H, W) for an input of ``input_hw``."""
        return tuple(
            output_length(i, k, s, lo, hi, d)
            for i, k, s, (lo, hi), d in zip(input_hw, self.kernel, self.scale, self.padding, self.dilation)
        )

    def folds(self) -> tuple[AxisFold, AxisFold]:
        """The (H, W) folds."""
        return tuple(
            fold_axis(k, s, lo, d) for k, s, (lo, _), d in zip(self.kernel, self.scale, self.padding, self.dilation)
        )

    def transposed(self, input_hw: tuple[int, int]) -> ConvParams:
        """The transposed convolution (stride ``s``, folded kernel, dilation 1) that computes this call on an input
        of ``input_hw``, with the output padding that gives the conv's output size."""
        fh, fw = self.folds()
        op = tuple(
            output_padding(i, k, s, lo, hi, d)
            for i, k, s, (lo, hi), d in zip(input_hw, self.kernel, self.scale, self.padding, self.dilation)
        )
        return ConvParams(
            stride=self.scale, padding=(fh.pad, fw.pad), output_padding=op, dilation=(1, 1), groups=self.groups,
            kernel=(fh.folded, fw.folded),
        )  # fmt: skip
