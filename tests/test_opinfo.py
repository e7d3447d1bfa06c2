"""Every OpInfo sample torch ships for nn.functional.conv_transpose2d, in each supported dtype."""

import pytest
import torch
import torch.nn.functional as F
from helpers import assert_close_to_reference, forward_launches
from torch.testing._internal.common_methods_invocations import op_db

import triton_convt

OPINFO = next(op for op in op_db if op.name == "nn.functional.conv_transpose2d")


def _double(value):
    return value.double() if isinstance(value, torch.Tensor) else value


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16], ids=str)
def test_opinfo_samples(dtype, device, count_launches):
    samples = list(OPINFO.sample_inputs(device, dtype))
    assert len(samples) >= 10  # torch 2.13 ships 12; an empty list would make this test vacuous
    launches = 0
    for i, sample in enumerate(samples):
        y = triton_convt.conv_transpose2d(sample.input, *sample.args, **sample.kwargs)
        launches += forward_launches(sample.args[0], sample.kwargs.get("groups", 1))
        assert count_launches() == launches, f"sample {i} did not run the Triton kernel"
        expected = F.conv_transpose2d(_double(sample.input), *[_double(a) for a in sample.args], **sample.kwargs)
        assert_close_to_reference(y, expected)
