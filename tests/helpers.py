"""Comparison with torch shared by the tests."""

import torch

#: Relative tolerance per dtype, against an fp64 reference computed from the same (rounded) inputs. Scaled by the
#: largest reference magnitude: the accumulation error grows with it, not with each element.
TOLERANCE = {torch.float64: 1e-12, torch.float32: 2e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}


def assert_close_to_reference(actual: torch.Tensor, reference: torch.Tensor) -> None:
    """``actual`` (any dtype) equals the fp64 ``reference`` within the tolerance of ``actual``'s dtype."""
    assert actual.shape == reference.shape, (actual.shape, reference.shape)
    tol = TOLERANCE[actual.dtype]
    scale = max(1.0, reference.abs().max().item()) if reference.numel() else 1.0
    torch.testing.assert_close(actual.double(), reference, atol=tol * scale, rtol=tol)
