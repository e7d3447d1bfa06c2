"""The public functional API of the transposed convolution: argument normalisation and validation, then the op.

:func:`conv_transpose1d`, :func:`conv_transpose2d` and :func:`conv_transpose3d` take torch's arguments (ints or
tuples, unbatched input, ``output_size``), reject every call torch rejects with torch's exception type before
anything runs (:func:`check_call`, and the shared checks of :mod:`.arguments`), and call the ``torch.library`` op of
their dimensionality (:mod:`triton_convt.ops.conv_transpose`) with validated, normalised, batched arguments. One
implementation serves the three: every check is written for ``ndim`` spatial axes.
"""

from __future__ import annotations

import torch

from .. import activations
from ..launch import shapes
from ..launch.shapes import ConvParams
from ..ops import conv_transpose as _ops  # noqa: F401  (registers torch.ops.triton_convt.conv_transpose{1,2,3}d*)
from .arguments import as_tuple, check_dtypes_devices, check_out, index

#: The kernel-size names of a weight's spatial dimensions, per number of spatial axes (for messages).
_KERNEL_NAMES = {1: "kL", 2: "kH, kW", 3: "kD, kH, kW"}


def op_name(ndim: int) -> str:
    """The op's name in torch's messages: ``conv_transpose1d``, ``conv_transpose2d`` or ``conv_transpose3d``."""
    return f"conv_transpose{ndim}d"


def conv_transpose2d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride=1,
    padding=0,
    output_padding=0,
    groups: int = 1,
    dilation=1,
    *,
    output_size=None,
    activation: str | None = None,
    negative_slope: float = activations.DEFAULT_NEGATIVE_SLOPE,
    out: torch.Tensor | None = None,
    layout_from_weight: bool = True,
) -> torch.Tensor:
    """Transposed 2-D convolution with the semantics of ``torch.nn.functional.conv_transpose2d``.

    Args:
        input: ``(N, C_in, H, W)`` or unbatched ``(C_in, H, W)``; float16, bfloat16, float32 or float64; any
            strides (NCHW, channels_last and other views are read in place, not copied).
        weight: ``(C_in, C_out / groups, kH, kW)``, same dtype and device as ``input``.
        bias: optional ``(C_out,)``.
        stride, padding, output_padding, dilation: an int or an (H, W) pair, as in torch.
        groups: number of blocked connections from input to output channels.
        output_size: optional target size, (H, W) or the whole output shape, as ``nn.ConvTranspose2d.forward``
            takes it; it picks the output_padding (and overrides the ``output_padding`` argument). A size outside
            the reachable range raises ValueError.
        activation: None, "relu", "leaky_relu", "gelu" (erf), "gelu_tanh", "silu", "sigmoid" or "tanh", applied
            after the bias in the kernel's epilogue (in fp32, fp64 for fp64 tensors) before the one cast and store:
            the result equals ``act(F.conv_transpose2d(...))`` within the dtype's tolerance, in the launch that
            computes the output.
        negative_slope: leaky_relu's slope for negative inputs. Each distinct slope compiles its own kernel.
        out: optional tensor to write the result into, with the output's shape, dtype and device and any strides
            (a channel slice of a concat buffer, say); nothing outside it is written. It must not share memory
            with an operand and, as with torch's ``out=``, autograd does not pass through it. Returned.
        layout_from_weight: whether a channels_last weight makes the output channels_last (torch's rule, the
            default). False: the input's layout alone decides, as it does for torch's module with its default weight;
            triton_convt's modules pass False, since they keep their weight channels_last for the kernel
            (:mod:`triton_convt.owned_layout`). Ignored with ``out=``.

    Returns:
        ``(N, C_out, H_out, W_out)`` (unbatched input gives ``(C_out, H_out, W_out)``), with
        ``H_out = (H - 1)*stride - 2*padding + dilation*(kH - 1) + output_padding + 1`` (likewise W), in
        channels_last when the input or the weight is channels_last, as torch does (the input alone without
        ``layout_from_weight``).

    NaN and ±inf in the input, weight or bias land where torch's result has them, with one exception on CUDA:
    non-finite *weights* next to the input's border. There a gather kernel multiplies an out-of-range tap's x = 0 by
    the inf weight and makes NaN, as cuDNN does (pytorch#165744). Avoiding it needs a kernel variant that masks each
    tap's product, chosen by reading the weights, and on CUDA that read would synchronise the host at every call
    (and break CUDA-graph capture), so CUDA keeps cuDNN's behaviour; on CPU tensors (the interpreter) the weights
    are read on every call and the result is torch's. Nothing is cached per weight: writes through ``.data`` and
    inference tensors (which have no version counter) are seen at the next call. No call reads a CUDA tensor's
    value back to the host. Repeated calls are bitwise identical (phases write disjoint outputs, no atomics).

    On CUDA tensors the Triton kernel computes the result in one launch (plus one that copies a weight that is not
    channels_last into that order, on every call: nothing is cached; triton_convt's modules keep their weight
    channels_last, so theirs is one launch); float32 follows
    ``torch.backends.cudnn.allow_tf32`` (TF32 tensor cores when it is on, which is torch's default for
    convolutions). On CPU tensors the same kernel runs under the Triton interpreter when ``TRITON_INTERPRET=1`` was
    set before triton_convt was imported; otherwise CPU tensors (and devices other than CUDA) fall back to
    torch's own ``conv_transpose2d`` so that a model still runs, and the first such call in a process warns
    (:class:`triton_convt.ops.TorchFallbackWarning`). Invalid calls raise torch's exception types on
    every path. Autograd: gradients of input, weight and bias (activation included) come from Triton backward
    kernels, deterministic (no atomics); ``torch.compile`` and meta tensors see the op through its
    ``torch.library`` registration (``torch.ops.triton_convt.conv_transpose2d``).
    """
    return _conv_transpose(2, input, weight, bias, stride, padding, output_padding, groups, dilation, output_size,
                           activation, negative_slope, out, layout_from_weight)  # fmt: skip


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1, *,
                     output_size=None, activation=None, negative_slope=activations.DEFAULT_NEGATIVE_SLOPE, out=None,
                     layout_from_weight=True):  # fmt: skip
    """Transposed 1-D convolution with the semantics of ``torch.nn.functional.conv_transpose1d``: input
    ``(N, C_in, L)`` or unbatched ``(C_in, L)``, weight ``(C_in, C_out / groups, kL)``, ints or 1-tuples; every
    other argument, the result's dtype and the behaviour as :func:`conv_transpose2d` (the same kernels run it
    with a unit H axis). Output ``(N, C_out, L_out)``, ``L_out = (L - 1)*stride - 2*padding + dilation*(kL - 1) +
    output_padding + 1``."""
    return _conv_transpose(1, input, weight, bias, stride, padding, output_padding, groups, dilation, output_size,
                           activation, negative_slope, out, layout_from_weight)  # fmt: skip


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1, *,
                     output_size=None, activation=None, negative_slope=activations.DEFAULT_NEGATIVE_SLOPE, out=None,
                     layout_from_weight=True):  # fmt: skip
    """Transposed 3-D convolution with the semantics of ``torch.nn.functional.conv_transpose3d``: input
    ``(N, C_in, D, H, W)`` or unbatched ``(C_in, D, H, W)`` (NCDHW or channels_last_3d, read in place), weight
    ``(C_in, C_out / groups, kD, kH, kW)``, ints or (D, H, W) triples; every other argument and the behaviour as
    :func:`conv_transpose2d`. The output is channels_last_3d when the input or the weight is, as in torch."""
    return _conv_transpose(3, input, weight, bias, stride, padding, output_padding, groups, dilation, output_size,
                           activation, negative_slope, out, layout_from_weight)  # fmt: skip


def _conv_transpose(ndim, input, weight, bias, stride, padding, output_padding, groups, dilation, output_size,
                    activation, negative_slope, out, layout_from_weight=True):  # fmt: skip
    """The one implementation of the three public functions, for ``ndim`` spatial axes."""
    op = op_name(ndim)
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"{op}(): argument 'input' must be Tensor, not {type(input).__name__}")
    if input.dim() not in (ndim + 1, ndim + 2):
        raise RuntimeError(
            f"Expected {ndim + 1}D (unbatched) or {ndim + 2}D (batched) input to {op}, but got input of size: "
            f"{list(input.shape)}"
        )
    if output_size is not None:
        output_padding = output_padding_from_size(input, weight, output_size, stride, padding, dilation, ndim)
    unbatched = input.dim() == ndim + 1
    x = input.unsqueeze(0) if unbatched else input
    params = check_call(x, weight, bias, stride, padding, output_padding, groups, dilation, ndim)
    kernel_activation = activations.check_activation(activation)
    if out is not None:
        shape = (weight.shape[1] * params.groups, *params.output_hw(tuple(x.shape[2:])))
        check_out(out, input, weight, bias, shape if unbatched else (x.shape[0], *shape), op)
    args = (x, weight, bias, list(params.stride), list(params.padding), list(params.output_padding),
            params.groups, list(params.dilation), kernel_activation, float(negative_slope))  # fmt: skip
    ops = torch.ops.triton_convt
    if out is not None:
        getattr(ops, f"{op}_out")(*args, out.unsqueeze(0) if unbatched else out)
        return out
    y = getattr(ops, op)(*args, bool(layout_from_weight))
    return y.squeeze(0) if unbatched else y


def check_call(input, weight, bias, stride, padding, output_padding, groups, dilation, ndim=None) -> ConvParams:
    """Validate a transposed convolution on batched input ``(N, C_in, *spatial)`` (the op unsqueezes unbatched
    input first) with ``ndim`` spatial axes (default: the input's); returns the normalised arguments."""
    for name, t in (("input", input), ("weight", weight)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{op_name(ndim or 2)}(): argument '{name}' must be Tensor, not {type(t).__name__}")
    ndim = input.dim() - 2 if ndim is None else ndim
    op = op_name(ndim)
    if bias is not None and not isinstance(bias, torch.Tensor):
        raise TypeError(f"{op}(): argument 'bias' must be Tensor, not {type(bias).__name__}")
    if weight.dim() != ndim + 2:
        raise RuntimeError(
            f"expected weight to be {ndim + 2}-D [in_channels, out_channels/groups, {_KERNEL_NAMES[ndim]}], but got "
            f"weight of size {list(weight.shape)}"
        )
    params = ConvParams(
        stride=as_tuple(stride, "stride", op, ndim),
        padding=as_tuple(padding, "padding", op, ndim),
        output_padding=as_tuple(output_padding, "output_padding", op, ndim),
        dilation=as_tuple(dilation, "dilation", op, ndim),
        groups=index(groups, "groups", op),
        kernel=tuple(weight.shape[2:]),
    )
    _check_values(params)
    _check_shapes(input, weight, bias, params)
    check_dtypes_devices(input, weight, bias, op)
    in_sizes = tuple(input.shape[2:])
    out_sizes = params.output_hw(in_sizes)
    if min(out_sizes) <= 0:
        # torch runs 1-D as 2-D with a unit height, and its message shows that axis.
        shown_in, shown_out = ((1, *in_sizes), (1, *out_sizes)) if ndim == 1 else (in_sizes, out_sizes)
        raise RuntimeError(
            f"Given input size per channel: ({' x '.join(map(str, shown_in))}). Calculated output size per "
            f"channel: ({' x '.join(map(str, shown_out))}). Output size is too small"
        )
    return params


def _check_values(p: ConvParams) -> None:
    if p.groups <= 0:
        raise RuntimeError(f"non-positive groups is not supported (got groups={p.groups})")
    for name in ("stride", "dilation"):
        if min(getattr(p, name)) <= 0:
            raise RuntimeError(f"non-positive {name} is not supported (got {name}={list(getattr(p, name))})")
    for name in ("padding", "output_padding"):
        if min(getattr(p, name)) < 0:
            raise RuntimeError(f"negative {name} is not supported (got {name}={list(getattr(p, name))})")
    for op, s, d in zip(p.output_padding, p.stride, p.dilation):
        if op >= max(s, d):
            raise RuntimeError(
                f"output padding must be smaller than either stride or dilation, but got "
                f"output_padding={list(p.output_padding)}, stride={list(p.stride)}, dilation={list(p.dilation)}"
            )


def _check_shapes(input, weight, bias, p: ConvParams) -> None:
    c_in, c_out_g, *kernel = weight.shape
    if min(kernel) <= 0:
        raise RuntimeError(f"kernel size should be greater than zero, but got weight of size {list(weight.shape)}")
    if c_out_g <= 0 or c_in <= 0:
        raise RuntimeError(
            f"non-empty {weight.dim()}D weight tensor expected, but got weight of size {list(weight.shape)}"
        )
    if c_in % p.groups:
        raise RuntimeError(
            f"Given groups={p.groups}, expected weight to be divisible by {p.groups} at dimension 0, but got "
            f"weight of size {list(weight.shape)} instead"
        )
    if input.shape[1] != c_in:
        raise RuntimeError(
            f"Given transposed=1, weight of size {list(weight.shape)}, expected input{list(input.shape)} to have "
            f"{c_in} channels, but got {input.shape[1]} channels instead"
        )
    if min(input.shape[2:]) <= 0:
        raise RuntimeError(
            f"Only zero batch or zero channel inputs are supported, but got input shape: {list(input.shape)}"
        )
    if bias is not None and (bias.dim() != 1 or bias.shape[0] != c_out_g * p.groups):
        raise RuntimeError(
            f"Given transposed=1, weight of size {list(weight.shape)}, expected bias to be 1-dimensional with "
            f"{c_out_g * p.groups} elements, but got bias of size {list(bias.shape)} instead"
        )


def output_padding_from_size(input, weight, output_size, stride, padding, dilation, ndim=2):
    """The output_padding that ``output_size`` asks for, the way ``nn.ConvTranspose{ndim}d.forward`` resolves it.

    ``output_size`` is the spatial size (``ndim`` entries), or the whole output shape (``input.dim()`` entries).
    Runs before :func:`check_call`, which then validates the call with the resolved output_padding.
    """
    op = op_name(ndim)
    if isinstance(output_size, torch.Tensor) or not isinstance(output_size, (list, tuple, torch.Size)):
        raise TypeError(
            f"output_size must be a sequence of ints (the spatial size) or the full output shape, not "
            f"{type(output_size).__name__}"
        )
    sizes = [index(s, "output_size", op) for s in output_size]
    non_spatial = input.dim() - ndim
    if len(sizes) == non_spatial + ndim:
        sizes = sizes[non_spatial:]
    if len(sizes) != ndim:
        raise ValueError(
            f"ConvTranspose{ndim}D: for {input.dim()}D input, output_size must have {ndim} or "
            f"{non_spatial + ndim} elements (got {len(output_size)})"
        )
    if not isinstance(weight, torch.Tensor) or weight.dim() != ndim + 2:
        raise RuntimeError(
            f"output_size needs a {ndim + 2}-D weight [in_channels, out_channels/groups, {_KERNEL_NAMES[ndim]}]"
        )
    return shapes.output_padding_for_size(
        tuple(input.shape[-ndim:]),
        sizes,
        tuple(weight.shape[2:]),
        as_tuple(stride, "stride", op, ndim),
        as_tuple(padding, "padding", op, ndim),
        as_tuple(dilation, "dilation", op, ndim),
    )
