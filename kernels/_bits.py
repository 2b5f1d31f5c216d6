"""Bit-level conversions as LLVM intrinsics: widening stored item values, float32 bit casts.

Numba has no float16 type on the CPU, so float16 items travel as their uint16 bits. `widen`
bit-casts those to LLVM `half` and extends to `float`: LLVM turns that into `vcvtph2ps` (F16C)
when it vectorises the loop, one instruction per 16 values, instead of a bit-trick sequence.
int8 values are sign-extended and converted; float32 passes through.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

__all__ = ["bits_to_f32", "f32_to_bits", "widen"]


@intrinsic
def widen(typingctx, x):  # type: ignore[no-untyped-def]
    """float32 value of one stored element: float32, uint16 (float16 bits) or int8."""
    if x not in (types.float32, types.uint16, types.int8):
        return None

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        value = args[0]
        if x == types.uint16:
            return builder.fpext(builder.bitcast(value, ir.HalfType()), ir.FloatType())
        if x == types.int8:
            return builder.sitofp(value, ir.FloatType())
        return value

    return types.float32(x), codegen


@intrinsic
def f32_to_bits(typingctx, x):  # type: ignore[no-untyped-def]
    """The int32 bit pattern of a float32."""
    if x != types.float32:
        return None

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        return builder.bitcast(args[0], ir.IntType(32))

    return types.int32(x), codegen


@intrinsic
def bits_to_f32(typingctx, x):  # type: ignore[no-untyped-def]
    """The float32 whose bit pattern is the low 32 bits of the integer x."""
    if not isinstance(x, types.Integer):
        return None

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        low = args[0]
        if x.bitwidth > 32:
            low = builder.trunc(low, ir.IntType(32))
        elif x.bitwidth < 32:
            low = builder.zext(low, ir.IntType(32))
        return builder.bitcast(low, ir.FloatType())

    return types.float32(x), codegen
