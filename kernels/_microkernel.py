"""A register-blocked inner-product microkernel, written in LLVM IR, shaped for the host's ISA.

Numba's loop vectoriser only vectorises innermost loops, so a tile x batch score block written in
Python either reduces across the dimension for every (item, query) pair (a horizontal sum per
pair) or streams its accumulators through memory. This intrinsic keeps a block of
MK_BLOCK_QUERIES x MK_ITEMS scores in vector registers: per dimension j it loads
MK_ITEMS / MK_LANES vectors of items from the transposed tile, broadcasts MK_BLOCK_QUERIES query
values and issues one vector FMA per (query, item vector), the BLIS-style outer-product update.

The block is chosen once, at import, from the instruction set LLVM targets (the same features
Numba compiles for, so its on-disk cache, keyed by CPU name and features, stays consistent):
- AVX-512 (avx512f, 32 zmm registers): 8 queries x 32 items in 16-float vectors, 16 accumulators.
- otherwise (AVX2, 16 ymm registers of 8 floats): 4 queries x 16 items in 8-float vectors, 8
  accumulators + 2 item vectors + 1 broadcast. The AVX-512 shape is split there by LLVM into 32
  ymm accumulators, which spill (the microkernel alone 2x slower than 4 x 16 on a Zen 3 EPYC);
  8 x 16 (16 accumulators + 3 = 19 registers) spills too (1.6x slower); 6 x 16 (BLIS haswell's
  shape) came within 15% of 4 x 16 at 64 queries either way, was 1.4x slower at 8 (padding to
  12), and 6 does not divide the padding unit below.
Queries are padded to a multiple of MK_QUERIES = 8 whatever the block (every block's query count
divides it), so a caller compiled with either shape reads and writes inside the padded rows.
"""

from __future__ import annotations

import os
from typing import Any

from llvmlite import binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = [
    "BLOCK_SHAPES",
    "MK_BLOCK_QUERIES",
    "MK_ITEMS",
    "MK_LANES",
    "MK_QUERIES",
    "host_isa",
    "make_outer_product_block",
    "outer_product_block",
]

# (lanes, queries, items) per instruction set; items must divide 256 (tiles) and 32 (IVF panels).
BLOCK_SHAPES = {"avx512": (16, 8, 32), "avx2": (8, 4, 16)}
MK_QUERIES = 8  # the query padding unit: a multiple of every shape's query count


def host_isa() -> str:
    """The block's instruction set: avx512 when the CPU LLVM compiles for has avx512f, else avx2
    (also for older or non-x86 CPUs: 8-float vectors are the portable choice).
    NUMBA_CPU_FEATURES, when set, is what Numba targets, so it decides."""
    forced = os.environ.get("NUMBA_CPU_FEATURES", "")
    if forced:
        return "avx512" if "+avx512f" in forced.split(",") else "avx2"
    try:
        return "avx512" if llvm.get_host_cpu_features().get("avx512f", False) else "avx2"
    except RuntimeError:  # features unknown on this host
        return "avx2"


def make_outer_product_block(lanes: int, n_queries: int, n_items: int) -> Any:
    """The microkernel intrinsic for one block shape (n_items a multiple of lanes)."""
    if n_items % lanes:
        raise ValueError(f"n_items {n_items} is not a multiple of lanes {lanes}")
    n_vec = n_items // lanes

    @intrinsic
    def block(typingctx, tile_t, queries, out_s, r0, c0):  # type: ignore[no-untyped-def]
        """out_s[c0 + i, r0:r0 + n_items] = queries[c0 + i] @ tile_t[:, r0:r0 + n_items] for
        i < n_queries. tile_t float32[d, T] (items in columns), queries float32[bq, d], out_s
        float32[bq, T], all C-contiguous; the caller keeps r0 + n_items <= T, c0 + n_queries <= bq.
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
            vec = ir.VectorType(ir.FloatType(), lanes)
            vec_ptr = vec.as_pointer()
            zero = ir.Constant(vec, [0.0] * lanes)
            splat_mask = ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes)
            fma_ty = ir.FunctionType(vec, [vec, vec, vec])
            fma = cgutils.get_or_insert_function(builder.module, fma_ty, f"llvm.fma.v{lanes}f32")
            accs = [
                [cgutils.alloca_once_value(builder, zero) for _ in range(n_vec)]
                for _ in range(n_queries)
            ]
            intp = context.get_value_type(types.intp)
            q_rows = [
                builder.mul(builder.add(c0v, ir.Constant(intp, i)), d) for i in range(n_queries)
            ]
            with cgutils.for_range(builder, d) as loop:
                j = loop.index
                t_base = builder.add(builder.mul(j, n_cols), r0v)
                xs = []
                for v in range(n_vec):
                    off = builder.add(t_base, ir.Constant(intp, v * lanes))
                    p = builder.bitcast(builder.gep(t_arr.data, [off]), vec_ptr)
                    xs.append(builder.load(p, align=4))
                for i in range(n_queries):
                    qv = builder.load(builder.gep(q_arr.data, [builder.add(q_rows[i], j)]))
                    one = builder.insert_element(
                        ir.Constant(vec, ir.Undefined), qv, ir.Constant(ir.IntType(32), 0)
                    )
                    splat = builder.shuffle_vector(one, ir.Constant(vec, ir.Undefined), splat_mask)
                    for v in range(n_vec):
                        acc = builder.load(accs[i][v])
                        builder.store(builder.call(fma, [splat, xs[v], acc]), accs[i][v])
            for i in range(n_queries):
                row = builder.mul(builder.add(c0v, ir.Constant(intp, i)), n_cols)
                for v in range(n_vec):
                    off = builder.add(builder.add(row, r0v), ir.Constant(intp, v * lanes))
                    p = builder.bitcast(builder.gep(o_arr.data, [off]), vec_ptr)
                    builder.store(builder.load(accs[i][v]), p, align=4)
            return context.get_dummy_value()

        return sig, codegen

    return block


MK_LANES, MK_BLOCK_QUERIES, MK_ITEMS = BLOCK_SHAPES[host_isa()]
assert all(MK_QUERIES % nq == 0 and 32 % ni == 0 for _, nq, ni in BLOCK_SHAPES.values())
outer_product_block = make_outer_product_block(MK_LANES, MK_BLOCK_QUERIES, MK_ITEMS)
