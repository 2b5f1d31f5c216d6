"""The placement rule for pipeline CPU work: inline under the threshold, in a thread above it,
decided by the measured cost per unit of each kind of work."""

from __future__ import annotations

import asyncio
import threading
import time

from server.pipelines.cpu_work import CpuWork


def _thread_name() -> str:
    return threading.current_thread().name


def test_short_work_stays_on_the_loop_thread():
    # the rule measures wall time: a threshold far above the work's few microseconds, so that a
    # preempted call on a busy test machine is not taken for long work (75 us failed once so)
    work = CpuWork(inline_us=5000.0)

    async def main():
        names = [await work.run("tiny", 1, _thread_name) for _ in range(5)]
        return names, threading.current_thread().name

    names, loop_thread = asyncio.run(main())
    assert set(names) == {loop_thread}
    assert work.offloaded == {}
    assert work.predicted_us("tiny", 1) is not None and work.predicted_us("tiny", 1) < 5000


def test_long_work_moves_to_the_pool_once_measured_and_the_loop_keeps_running():
    work = CpuWork(inline_us=75.0)
    ticks = []

    async def ticker(stop: asyncio.Event):
        while not stop.is_set():
            ticks.append(time.monotonic())
            await asyncio.sleep(0.001)

    def slow() -> str:
        time.sleep(0.05)  # releases the GIL, as tokenizers and the nogil kernels do
        return _thread_name()

    async def main():
        first = await work.run("slow", 10, slow)  # never measured: inline, and measured
        stop = asyncio.Event()
        t = asyncio.create_task(ticker(stop))
        await asyncio.sleep(0)
        n0 = len(ticks)
        second = await work.run("slow", 10, slow)
        during = len(ticks) - n0
        stop.set()
        await t
        return first, second, during, threading.current_thread().name

    try:
        first, second, during, loop_thread = asyncio.run(main())
    finally:
        work.shutdown()
    assert first == loop_thread
    assert second.startswith("shopserve-cpu") and work.offloaded == {"slow": 1}
    assert during >= 2  # inline, the 50 ms call would have let no tick run
    assert work.predicted_us("slow", 10) > 75


def test_the_prediction_scales_with_the_units_of_work():
    work = CpuWork(inline_us=75.0)
    work._record("tokenize", 100, 20_000)  # 200 ns per character
    assert work.predicted_us("tokenize", 100) == 20.0  # a short query: inline
    assert work.predicted_us("tokenize", 2_000) == 400.0  # 16 reviews: the pool
    work._record("tokenize", 100, 40_000)
    assert 200 < work.predicted_us("tokenize", 1) * 1e3 < 400  # a moving average


def test_the_setting_reaches_the_process_rule(tmp_path):
    from server.app import create_app
    from server.pipelines.cpu_work import INLINE_US, cpu_work
    from server.settings import Settings

    try:
        create_app(Settings(model_repository=str(tmp_path), inline_cpu_us=1e9))
        assert cpu_work().inline_us == 1e9
    finally:
        create_app(Settings(model_repository=str(tmp_path)))
    assert cpu_work().inline_us == INLINE_US
