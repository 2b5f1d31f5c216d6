"""An 8-query x 32-item register-blocked inner-product microkernel, written in LLVM IR.

Numba's loop vectoriser only vectorises innermost loops, so a tile x batch score block written in
Python either reduces across the dimension for every (item, query) pair (a horizontal sum per
pair) or streams its accumulators through memory. This intrinsic keeps 16 accumulators of 16
floats in registers: per dimension j it loads two vectors of 16 items from the transposed tile,
broadcasts 8 query values and issues 16 vector FMAs, the BLIS-style outer-product update.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["MK_ITEMS", "MK_QUERIES", "outer_product_block"]

MK_QUERIES = 8
MK_ITEMS = 32
_LANES = 16


@intrinsic
def outer_product_block(typingctx, tile_t, queries, out_s, r0, c0):  # type: ignore[no-untyped-def]
    """out_s[c0 + i, r0:r0 + 32] = queries[c0 + i] @ tile_t[:, r0:r0 + 32] for i < 8.

    tile_t float32[d, T] (items in columns), queries float32[b8, d], out_s float32[b8, T], all
    C-contiguous; the caller keeps r0 + 32 <= T and c0 + 8 <= b8.
    """
    for a in (tile_t, queries, out_s):
        if not (isinstance(a, types.Array) and a.dtype == types.float32 and a.ndim == 2):
            return None
        if a.layout != "C":
            return None
    sig = types.void(tile_t, queries, out_s, types.intp, types.intp)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        t_arr = context.make_array(signature.args[0])(context, builder, args[0])
        q_arr = context.make_array(signature.args[1])(context, builder, args[1])
        o_arr = context.make_array(signature.args[2])(context, builder, args[2])
        r0v, c0v = args[3], args[4]
        d = builder.extract_value(t_arr.shape, 0)
        n_cols = builder.extract_value(t_arr.shape, 1)
        f32 = ir.FloatType()
        vec = ir.VectorType(f32, _LANES)
        vec_ptr = vec.as_pointer()
        zero = ir.Constant(vec, [0.0] * _LANES)
        splat_mask = ir.Constant(ir.VectorType(ir.IntType(32), _LANES), [0] * _LANES)
        n_vec = MK_ITEMS // _LANES
        fma_ty = ir.FunctionType(vec, [vec, vec, vec])
        fma = cgutils.get_or_insert_function(builder.module, fma_ty, f"llvm.fma.v{_LANES}f32")
        accs = [
            [cgutils.alloca_once_value(builder, zero) for _ in range(n_vec)]
            for _ in range(MK_QUERIES)
        ]
        intp = context.get_value_type(types.intp)
        q_rows = [builder.mul(builder.add(c0v, ir.Constant(intp, i)), d) for i in range(MK_QUERIES)]
        with cgutils.for_range(builder, d) as loop:
            j = loop.index
            t_base = builder.add(builder.mul(j, n_cols), r0v)
            xs = []
            for v in range(n_vec):
                off = builder.add(t_base, ir.Constant(intp, v * _LANES))
                p = builder.bitcast(builder.gep(t_arr.data, [off]), vec_ptr)
                xs.append(builder.load(p, align=4))
            for i in range(MK_QUERIES):
                qv = builder.load(builder.gep(q_arr.data, [builder.add(q_rows[i], j)]))
                one = builder.insert_element(
                    ir.Constant(vec, ir.Undefined), qv, ir.Constant(ir.IntType(32), 0)
                )
                splat = builder.shuffle_vector(one, ir.Constant(vec, ir.Undefined), splat_mask)
                for v in range(n_vec):
                    acc = builder.load(accs[i][v])
                    builder.store(builder.call(fma, [splat, xs[v], acc]), accs[i][v])
        for i in range(MK_QUERIES):
            row = builder.mul(builder.add(c0v, ir.Constant(intp, i)), n_cols)
            for v in range(n_vec):
                off = builder.add(builder.add(row, r0v), ir.Constant(intp, v * _LANES))
                p = builder.bitcast(builder.gep(o_arr.data, [off]), vec_ptr)
                builder.store(builder.load(accs[i][v]), p, align=4)
        return context.get_dummy_value()

    return sig, codegen
