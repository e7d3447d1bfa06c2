"""The one matrix-multiply step every GEMM kernel of the package takes."""

import triton
import triton.language as tl


@triton.jit
def dot_acc(a, b, acc, ACC_DTYPE: tl.constexpr, DOT_PRECISION: tl.constexpr, DOT_IN_FP32: tl.constexpr):
    """``acc + a @ b`` on the tensor cores.

    Args:
        a, b: ``[M, K]`` and ``[K, N]`` operand tiles in the tensors' dtype.
        acc: ``[M, N]`` accumulator in ACC_DTYPE (fp32, or fp64 for fp64 tensors).
        ACC_DTYPE: the accumulator's dtype.
        DOT_PRECISION: ``tl.dot`` input precision: "tf32" or "ieee" for fp32 operands, "ieee" otherwise.
        DOT_IN_FP32: cast the operands to fp32 first. Set only for bf16 under the interpreter, whose bf16
            ``tl.dot`` returns garbage (triton 3.6 to 3.9, :func:`triton_convt.compat.dot_in_fp32`); compiled
            kernels keep bf16 operands.
    """
    if DOT_IN_FP32:
        a = a.to(tl.float32)
        b = b.to(tl.float32)
    return tl.dot(a, b, acc, input_precision=DOT_PRECISION, out_dtype=ACC_DTYPE)
