"""`direct`: the ONNX Runtime session called in-process, no HTTP, no batching. Run as its own
process pinned to the server's core; `concurrency` threads share one session (one intra-op
thread, spinning off, as shopserve's) and each calls `run` on one request's row in a closed loop.
Prints one JSON line: requests, duration_s, p50_ms, p99_ms, cpu_s (the
measured window's) and call_cpu_p50_ms (thread CPU time of the median call).

    python -m bench.server_direct --model PATH --datatype FP32 --shape 1,64 --concurrency 8
"""

from __future__ import annotations

import argparse
import json
import threading
import time

import numpy as np

__all__ = ["main", "measure_direct"]


def measure_direct(
    model_path: str, x: np.ndarray, *, concurrency: int, warm_s: float, measure_s: float
) -> dict:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(model_path, sess_options=opts, providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name: x}
    sess.run(None, feed)

    start = time.perf_counter_ns()
    t_from = start + int(warm_s * 1e9)
    t_to = t_from + int(measure_s * 1e9)
    spans: list[list[tuple[int, int, int]]] = [[] for _ in range(concurrency)]

    def worker(out: list[tuple[int, int, int]]) -> None:
        clock, cpu = time.perf_counter_ns, time.thread_time_ns
        while True:
            t0, c0 = clock(), cpu()
            if t0 >= t_to:
                return
            sess.run(None, feed)
            out.append((t0, clock(), cpu() - c0))

    threads = [threading.Thread(target=worker, args=(s,)) for s in spans]
    for t in threads:
        t.start()
    # process-wide CPU (all threads) over the measured window only
    time.sleep(max(0.0, (t_from - time.perf_counter_ns()) / 1e9))
    cpu0 = time.process_time()
    time.sleep(max(0.0, (t_to - time.perf_counter_ns()) / 1e9))
    cpu_s = time.process_time() - cpu0
    for t in threads:
        t.join()
    in_window = [(b - a, c) for s in spans for a, b, c in s if a >= t_from and b <= t_to]
    # calls longer than the window: the ones that ended after warm-up still give a call cost
    ended = [(b - a, c) for s in spans for a, b, c in s if b >= t_from]
    lat = np.array([k[0] for k in in_window] or [0.0], dtype=np.float64)
    # thread CPU per call: what one call costs, whatever else the core is running
    call_cpu = np.array([k[1] for k in ended] or [0.0], dtype=np.float64)
    return {
        "requests": len(in_window),
        "duration_s": measure_s,
        "p50_ms": float(np.percentile(lat, 50) / 1e6),
        "p99_ms": float(np.percentile(lat, 99) / 1e6),
        "cpu_s": cpu_s,
        "call_cpu_p50_ms": float(np.percentile(call_cpu, 50) / 1e6),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.server_direct")
    parser.add_argument("--model", required=True)
    parser.add_argument("--datatype", choices=["FP32", "INT64"], required=True)
    parser.add_argument("--shape", required=True, help="comma-separated, e.g. 1,64")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--warm-s", type=float, default=1.0)
    parser.add_argument("--measure-s", type=float, default=2.0)
    args = parser.parse_args(argv)
    shape = tuple(int(d) for d in args.shape.split(","))
    rng = np.random.default_rng(7)
    if args.datatype == "INT64":
        x = rng.integers(1, 30000, shape, dtype=np.int64)
    else:
        x = rng.standard_normal(shape).astype(np.float32)
    res = measure_direct(
        args.model, x, concurrency=args.concurrency, warm_s=args.warm_s, measure_s=args.measure_s
    )
    print(json.dumps(res), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
