"""The op families' registration (:mod:`triton_convt.ops.family`): the schemas users and ``torch.compile`` see."""

import torch

import triton_convt  # noqa: F401  (registers the ops)

_CONV_T = "SymInt[] stride, SymInt[] padding, SymInt[] output_padding, SymInt groups, SymInt[] dilation"
_UPSAMPLE = "SymInt[] scale, SymInt[] padding, SymInt[] dilation, SymInt groups"
_SHUFFLE = "SymInt upscale, SymInt[] stride, SymInt[] padding, SymInt[] dilation, SymInt groups"
_EPILOGUE = "str activation, float negative_slope"
#: The forward op's last argument in the families whose modules own their weight's layout (``layout_option``).
_LAYOUT = ", bool layout_from_weight=True"


def _schemas(name: str, arguments: str, out_alias: int, layout: bool = False) -> list[str]:
    inputs = "Tensor input, Tensor weight, Tensor? bias"
    return [
        f"triton_convt::{name}({inputs}, {arguments}, {_EPILOGUE}{_LAYOUT if layout else ''}) -> Tensor",
        f"triton_convt::{name}_out({inputs}, {arguments}, {_EPILOGUE}, Tensor(a{out_alias}!) out) -> ()",
        f"triton_convt::{name}_backward(Tensor grad, {inputs}, Tensor? output, {arguments}, {_EPILOGUE}, "
        "bool[] needs) -> (Tensor, Tensor, Tensor)",
    ]


def test_every_family_has_the_schemas_of_its_description():
    expected = {f"conv_transpose{n}d": _schemas(f"conv_transpose{n}d", _CONV_T, 10, True) for n in (1, 2, 3)}
    expected["upsample_conv2d"] = _schemas("upsample_conv2d", _UPSAMPLE, 9)
    expected["conv2d_pixel_shuffle"] = _schemas("conv2d_pixel_shuffle", _SHUFFLE, 10, True)
    for name, schemas in expected.items():
        got = [str(getattr(torch.ops.triton_convt, name + s).default._schema) for s in ("", "_out", "_backward")]
        assert got == schemas
