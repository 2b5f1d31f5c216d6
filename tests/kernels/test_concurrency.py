"""The server calls kernels from several threads at once (nogil): results must not mix."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from kernels import ItemMatrix, build_ivf, search_ivf, topk_inner_product


def test_concurrent_calls_match_serial_ones() -> None:
    rng = np.random.default_rng(3)
    items = ItemMatrix.from_array(rng.standard_normal((3000, 16)).astype(np.float32))
    index = build_ivf(items, 8)
    queries = [rng.standard_normal((b, 16)).astype(np.float32) for b in (1, 2, 5, 9) * 4]

    def run(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return topk_inner_product(q, items, 20)[0], search_ivf(q, index, 20, 3)[0]

    serial = [run(q) for q in queries]
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(run, queries))
    for (a, b), (c, d) in zip(serial, threaded, strict=True):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
