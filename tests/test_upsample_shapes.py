"""The folding arithmetic of nearest-upsample + conv (plain Python, no torch, no Triton), against a brute-force
count of which conv taps read which input pixel for every output."""

import itertools

import pytest
import torch

from triton_convt.launch import upsample_shapes as us


def brute_force(size, kernel, scale, pad_lo, pad_hi, dilation):
    """{(output, input): sorted conv taps} of conv(upsample_nearest(x, scale)) read directly off the definition:
    output ``o`` reads upsampled ``m = o - p_lo + j*d`` (zero padding outside ``[0, s*I)``), which is ``x[m // s]``."""
    out = scale * size + pad_lo + pad_hi - dilation * (kernel - 1)
    table = {}
    for o in range(out):
        for j in range(kernel):
            m = o - pad_lo + j * dilation
            if 0 <= m < scale * size:
                table.setdefault((o, m // scale), []).append(j)
    return out, {key: tuple(js) for key, js in table.items()}


def folded(size, kernel, scale, pad_lo, pad_hi, dilation):
    """The same table read off the transposed convolution the fold builds: output ``o`` gathers input ``i`` through
    folded tap ``k' = o + P - i*s``, whose weight sums the conv taps ``fold.taps[k']``; its output length is the
    transposed convolution's formula with :func:`us.output_padding`."""
    fold = us.fold_axis(kernel, scale, pad_lo, dilation)
    op = us.output_padding(size, kernel, scale, pad_lo, pad_hi, dilation)
    out = (size - 1) * scale - 2 * fold.pad + (fold.folded - 1) + op + 1
    table = {}
    for o in range(out):
        for i in range(size):
            k = o + fold.pad - i * scale
            if 0 <= k < fold.folded and fold.taps[k]:
                table[(o, i)] = fold.taps[k]
    return out, table


@pytest.mark.parametrize("kernel, scale", list(itertools.product(range(1, 6), range(1, 5))))
def test_fold_matches_brute_force(kernel, scale):
    """Every input size, padding (symmetric, or "same"'s extra one on the right; past the kernel's span too) and
    dilation of a grid: the folded transposed convolution reads exactly the taps the conv reads, and has its length."""
    for size, pad_lo, extra, dilation in itertools.product((1, 2, 5), range(0, 7), (0, 1), range(1, 4)):
        pad_hi = pad_lo + extra
        if scale * size + pad_lo + pad_hi - dilation * (kernel - 1) > 0:
            case = (size, kernel, scale, pad_lo, pad_hi, dilation)
            assert folded(*case) == brute_force(*case), case


@pytest.mark.parametrize("kernel, scale", list(itertools.product(range(1, 6), range(1, 5))))
def test_fold_structure(kernel, scale):
    """P >= 0 makes the smallest folded tap 0 (unless P is 0); every conv tap lands once per phase (the adjoint's
    sum has ``s`` terms per tap); ``folded_tap`` and ``lands_mask`` agree with ``taps``; the output padding is
    ``p_hi - p_lo`` unless P was held at 0."""
    for pad_lo, dilation in itertools.product(range(0, 7), range(1, 4)):
        fold = us.fold_axis(kernel, scale, pad_lo, dilation)
        assert fold.pad >= 0 and fold.taps[-1] and (fold.taps[0] or fold.pad == 0)
        landed = sorted(j for taps in fold.taps for j in taps)
        assert landed == sorted(list(range(kernel)) * scale)
        mask = fold.lands_mask(kernel)
        for r in range(scale):
            for j in range(kernel):
                k = fold.folded_tap(r, j, pad_lo, dilation)
                assert j in fold.taps[k] and mask >> (k * kernel + j) & 1
        assert bin(mask).count("1") == kernel * scale
        for hi in (pad_lo, pad_lo + 1):
            op = us.output_padding(3, kernel, scale, pad_lo, hi, dilation)
            assert op >= 0 and (op == hi - pad_lo or not fold.taps[0])


def test_known_rewrite_k3_s2_p1_is_k4_s2_p1():
    """The VAE upsampler (nearest x2, 3x3, padding 1) is a 4-tap transposed convolution, stride 2, padding 1, with
    per-phase sums (shared/design/phase-math.md: phase 0 {-1: w0, 0: w1+w2}, phase 1 {0: w0+w1, 1: w2})."""
    fold = us.fold_axis(3, 2, 1, 1)
    assert (fold.pad, fold.folded, fold.taps) == (1, 4, ((2,), (1, 2), (0, 1), (0,)))
    params = us.UpsampleConvParams((2, 2), ((1, 1), (1, 1)), (1, 1), 1, (3, 3))
    t = params.transposed((64, 64))
    assert (t.stride, t.padding, t.output_padding, t.dilation, t.kernel) == ((2, 2), (1, 1), (0, 0), (1, 1), (4, 4))
    assert t.output_hw((64, 64)) == params.output_hw((64, 64)) == (128, 128)


@pytest.mark.parametrize(
    "kernel, dilation, expected", [(3, 1, (1, 1)), (2, 1, (0, 1)), (4, 1, (1, 2)), (2, 3, (1, 2)), (1, 4, (0, 0))]
)
def test_same_padding_puts_the_odd_one_last(kernel, dilation, expected):
    assert us.same_padding(kernel, dilation) == expected


def test_work_model_of_the_vae_upsamplers():
    """The report's upsamplers are modelled against the two-op chain: nearest x2 + 3x3 issues 4 folded taps per
    output instead of 9 (2.25x fewer MACs), and the chain moves the 4x upsampled tensor twice."""
    from triton_convt.tools import layers, workmodel

    specs = {s.name: s for s in layers.load_upsamplers()}
    assert {"sd-vae-up0-512", "sd-vae-up1-512", "sd-vae-up2-256", "sdxl-unet-up0-1280"} <= set(specs)
    vae = specs["sd-vae-up2-256"]
    assert vae.output_hw == (512, 512)
    m = workmodel.upsampler_work(vae, 2)
    assert m["chain_macs"] == 256 * 256 * 512 * 512 * 9
    assert m["chain_macs"] * 4 == m["fused_macs"] * 9
    upsampled = 256 * 512 * 512 * 2
    assert m["chain_bytes"] - m["fused_bytes"] == 2 * upsampled - 2 * 256 * 256 * 16 * 2
    assert "sd-vae-up1-512" in workmodel.upsampler_report(torch.float16)
