import numpy as np

import kernels
from kernels import ItemMatrix, topk_inner_product
from kernels.features import _assemble_serial
from kernels.topk import _topk_exact


def test_after_warmup_requests_compile_nothing() -> None:
    kernels.warmup()
    dispatchers = (_topk_exact, _assemble_serial)  # what the server calls
    before = [len(d.signatures) for d in dispatchers]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((700, 16)).astype(np.float32)
    q = rng.standard_normal((9, 16))  # float64 queries: the wrapper converts
    for dtype in ("float32", "float16", "int8"):
        items = ItemMatrix.quantize(x, dtype)
        for b in (1, 2, 9):
            topk_inner_product(q[:b], items, 10, item_bitset=np.ones(11, np.uint64))
    assert [len(d.signatures) for d in dispatchers] == before
