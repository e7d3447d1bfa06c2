"""One registration of an op family: the forward op, its ``_out`` twin, its ``_backward`` op, their fake
implementations and the autograd formula, from a small description (:class:`OpFamily`).

Every family of :mod:`triton_convt.ops` has the same shape: ``act(op(input, weight, bias, <structural arguments>))``
with the fused epilogue's ``activation`` and ``negative_slope`` last, a Triton forward and backward, torch's own
result as the fallback off CUDA without the interpreter (:func:`.dispatch.runs_triton`), and a backward that is an
op of its own so that the autograd formula stays traceable (fake tensors, ``torch.compile``): the Triton launches
happen inside it. What differs between families is their name, their structural arguments, how those become the
launch planning's parameter object, and the functions that compute; :func:`register` writes the rest once.

The schemas are inferred by ``torch.library`` from the signatures built here, so they read as if written by hand::

    triton_convt::NAME(Tensor input, Tensor weight, Tensor? bias, <arguments>, str activation,
                       float negative_slope) -> Tensor
    triton_convt::NAME_out(<the same>, Tensor(a!) out) -> ()
    triton_convt::NAME_backward(Tensor grad, Tensor input, Tensor weight, Tensor? bias, Tensor? output,
                                <arguments>, str activation, float negative_slope, bool[] needs)
                                -> (Tensor, Tensor, Tensor)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..launch.conv_transpose_bwd import needs_preactivation
from .dispatch import runs_triton

Tensor = torch.Tensor
Grads = tuple[Tensor | None, Tensor | None, Tensor | None]


@dataclass(frozen=True)
class OpFamily:
    """What one op family is; :func:`register` makes its three ops and their autograd from it.

    The callables take the family's parameter object ``params`` (what :attr:`params` builds from the op's
    structural arguments), never the raw arguments.
    """

    #: The op's name in the ``triton_convt`` namespace (``"conv_transpose2d"``); the other two ops add ``_out`` and
    #: ``_backward`` to it.
    name: str
    #: The structural arguments between ``bias`` and ``activation``, in schema order, with their Python types
    #: (``list[int]``, ``int``, ...), from which ``torch.library`` infers the schema.
    arguments: tuple[tuple[str, Any], ...]
    #: ``params(weight, *arguments)``: the launch planning's parameter object.
    params: Callable[..., Any]
    #: ``forward(input, weight, bias, params, activation, negative_slope, out)``: the Triton forward, writing into
    #: ``out`` when it is not None; returns the output.
    forward: Callable[..., Tensor]
    #: ``backward(grad, input, weight, bias, output, params, activation, negative_slope, needs)``: the Triton
    #: gradients ``(input, weight, bias)``, None where ``needs`` says not needed. ``output`` is the forward's output
    #: when the activation's derivative is read from it, else None (:func:`.needs_preactivation`).
    backward: Callable[..., Grads]
    #: ``torch_result(input, weight, bias, params, activation, negative_slope)``: torch's own result, in the layout
    #: the kernels give; the fallback, and (through ``torch.func.vjp``) the fallback's gradients.
    torch_result: Callable[..., Tensor]
    #: ``allocate_output(input, weight, params)``: the empty output, with the kernels' shape and strides (the fake).
    allocate_output: Callable[..., Tensor]
    #: Whether the weight's gradient is contiguous whatever the weight's strides (False: it has the weight's
    #: strides, as ``torch.empty_like`` gives them); the fake backward must say what the real one returns.
    weight_grad_contiguous: bool = False
    #: What the forward op computes, for its docstring (``"act(conv_transpose2d(input, weight, bias))"``).
    summary: str = ""
    #: Whether the forward op takes a last argument ``layout_from_weight: bool = True``: with True the output is
    #: channels_last when the input *or the weight* is (torch's rule); a module that owns its weight in the kernel's
    #: layout (:class:`~triton_convt.owned_layout.OwnsKernelLayout`) passes False, so that the output's layout is
    #: decided by the input alone, as torch decides it for its module's default-layout weight. ``allocate_output``
    #: then takes it as a fourth argument.
    layout_option: bool = False


def _signature(
    head: tuple[tuple[str, Any], ...], family: OpFamily, tail: tuple[tuple[str, Any], ...], returns: Any
) -> inspect.Signature:
    """A signature from which ``torch.library.infer_schema`` reads the op's schema."""
    named = (*head, *family.arguments, ("activation", str), ("negative_slope", float), *tail)
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    return inspect.Signature([inspect.Parameter(n, kind, annotation=t) for n, t in named], return_annotation=returns)


_INPUTS = (("input", Tensor), ("weight", Tensor), ("bias", Tensor | None))


def register(family: OpFamily) -> None:
    """Register ``triton_convt::<name>``, ``<name>_out`` and ``<name>_backward``, their fake implementations and
    the forward op's autograd formula, as :class:`OpFamily` describes them. The arguments reach the ops validated,
    normalised and batched (the functional API's work); every op takes them positionally, in schema order."""
    name, nargs = family.name, len(family.arguments)
    options = (("layout_from_weight", bool),) if family.layout_option else ()

    def split(args):
        """``(input, weight, bias, params, activation, negative_slope)`` from the forward op's arguments."""
        x, weight, bias, *rest = args
        return x, weight, bias, family.params(weight, *rest[:nargs]), rest[nargs], rest[nargs + 1]

    def allocate(x, weight, params, layout_from_weight):
        if family.layout_option:
            return family.allocate_output(x, weight, params, layout_from_weight)
        return family.allocate_output(x, weight, params)

    def compute(x, weight, bias, params, activation, negative_slope, out=None, layout_from_weight=True):
        if out is None:
            out = allocate(x, weight, params, layout_from_weight)
        if runs_triton(x.device):
            return family.forward(x, weight, bias, params, activation, negative_slope, out)
        # torch's result follows torch's own rule; copied into the layout the fake implementation gives.
        return out.copy_(family.torch_result(x, weight, bias, params, activation, negative_slope))

    required = len(_INPUTS) + nargs + 2  # the arguments before the options, which may be left to their defaults

    def options_of(args) -> tuple[tuple, bool]:
        """The forward op's arguments without its options, and ``layout_from_weight`` (True when not passed)."""
        return args[:required], args[required] if len(args) > required else True

    def forward_op(*args):
        args, layout_from_weight = options_of(args)
        return compute(*split(args), layout_from_weight=layout_from_weight)

    forward_op.__signature__ = _signature(_INPUTS, family, options, Tensor)
    if options:  # a default, so that callers and schemas that do not name it keep torch's rule
        params_ = list(forward_op.__signature__.parameters.values())
        params_[-1] = params_[-1].replace(default=True)
        forward_op.__signature__ = forward_op.__signature__.replace(parameters=params_)
    forward_op.__doc__ = f'``{family.summary}`` on batched input; activation "none" for none.'
    forward_op = torch.library.custom_op(f"triton_convt::{name}", forward_op, mutates_args=())

    def forward_fake(*args):
        args, layout_from_weight = options_of(args)
        x, weight, _, params, _, _ = split(args)
        return allocate(x, weight, params, layout_from_weight)

    forward_op.register_fake(forward_fake)

    def out_op(*args):
        compute(*split(args[:-1]), out=args[-1])

    out_op.__signature__ = _signature(_INPUTS, family, (("out", Tensor),), None)
    out_op.__doc__ = (
        f"``triton_convt::{name}`` written into ``out`` (validated: right shape, dtype, device, no overlap)."
    )
    torch.library.custom_op(f"triton_convt::{name}_out", out_op, mutates_args=("out",))

    def backward_op(grad, *args):
        # args: input, weight, bias, output, <arguments>, activation, negative_slope, needs
        x, weight, bias, output, *rest = args
        needs = rest[-1]
        _, _, _, params, activation, negative_slope = split((x, weight, bias, *rest[:-1]))
        if runs_triton(x.device):
            grads = family.backward(grad, x, weight, bias, output, params, activation, negative_slope, tuple(needs))
        else:
            grads = _torch_backward(family, grad, x, weight, bias, params, activation, negative_slope)
        return tuple(g if n and g is not None else grad.new_empty(0) for g, n in zip(grads, needs))

    backward_op.__signature__ = _signature(
        (("grad", Tensor), *_INPUTS, ("output", Tensor | None)), family, (("needs", list[bool]),),
        tuple[Tensor, Tensor, Tensor],
    )  # fmt: skip
    backward_op.__doc__ = (
        f"Gradients (input, weight, bias) of ``triton_convt::{name}``; an unneeded one is an empty tensor. An op of "
        "its own so that the autograd formula stays traceable: the Triton launches happen inside it."
    )
    backward_op = torch.library.custom_op(f"triton_convt::{name}_backward", backward_op, mutates_args=())

    def backward_fake(grad, x, weight, bias, *rest):
        needs = rest[-1]
        has = (True, True, bias is not None)
        dw = weight.new_empty(weight.shape) if family.weight_grad_contiguous else torch.empty_like(weight)
        likes = (torch.empty_like(x), dw, grad.new_empty(bias.shape) if bias is not None else None)
        return tuple(like if n and h else grad.new_empty(0) for like, n, h in zip(likes, needs, has))

    backward_op.register_fake(backward_fake)

    def setup_context(ctx, inputs, output):
        x, weight, bias, *rest = inputs
        activation, negative_slope = rest[nargs], rest[nargs + 1]
        # The backward op takes the structural arguments, the activation and its slope: not the forward's options.
        ctx.args = [list(a) if isinstance(a, (list, tuple)) else a for a in rest[: nargs + 2]]
        # The output is saved only when the activation's derivative can be read from it; gelu, gelu_tanh and silu
        # recompute their pre-activation in backward instead of keeping a second output-sized tensor alive.
        keeps_output = activation != "none" and not needs_preactivation(activation, negative_slope)
        ctx.save_for_backward(x, weight, bias, output if keeps_output else None)

    def autograd_backward(ctx, grad):
        x, weight, bias, y = ctx.saved_tensors
        needs = list(ctx.needs_input_grad[:3])
        grads = backward_op(grad, x, weight, bias, y, *ctx.args, needs)
        grads = [g if n else None for g, n in zip(grads, needs)]
        if bias is None:
            grads[2] = None
        return (*grads, *(None,) * (nargs + 2 + len(options)))

    forward_op.register_autograd(autograd_backward, setup_context=setup_context)


def _torch_backward(family: OpFamily, grad, x, weight, bias, params, activation, slope) -> Grads:
    """The fallback's gradients, from torch's own autograd of the family's :attr:`~OpFamily.torch_result`."""
    primals = (x, weight) if bias is None else (x, weight, bias)
    _, vjp = torch.func.vjp(
        lambda *p: family.torch_result(p[0], p[1], p[2] if len(p) > 2 else None, params, activation, slope), *primals
    )
    grads = vjp(grad)
    # In the strides the fake backward gives (empty_like), so that real and fake agree (torch.compile checks).
    dw = grads[1] if family.weight_grad_contiguous else _laid_like(grads[1], weight)
    return _laid_like(grads[0], x), dw, grads[2] if bias is not None else None


def _laid_like(t: Tensor, ref: Tensor) -> Tensor:
    """``t`` with ``torch.empty_like(ref)``'s strides, copied only where they differ."""
    like = torch.empty_like(ref)
    return t if t.stride() == like.stride() else like.copy_(t)
