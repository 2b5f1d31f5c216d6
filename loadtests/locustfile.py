"""A storefront's traffic against shopserve: recommend 45%, search 25%, classify 15%, score 5%,
answer 10% (`SHOPSERVE_MIX="recommend=50,search=30,classify=15,score=5"` changes it), payloads from
the real data; and a V2 user sending raw model traffic (`SHOPSERVE_V2_MODEL`, default `mlp`).
`SHOPSERVE_WARMUP_S` seconds after the test starts, the statistics are reset, so the summary
covers only the measured window (the per-interval history keeps the warm-up, for the plot); the
CPU seconds that Locust (and the server, `SHOPSERVE_SERVER_PID`) spent in that window are written
to `SHOPSERVE_USAGE_FILE` as JSON."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import gevent
import psutil
from locust import FastHttpUser, between, events, task
from locust.env import Environment
from locust.user.task import TaskSet

from loadtests.mix import DEFAULT_MIX, parse_mix
from loadtests.payloads import Payloads

_payloads: Payloads | None = None


def payloads() -> Payloads:
    global _payloads  # one pool per locust process, read on first use
    if _payloads is None:
        tasks = os.environ.get("SHOPSERVE_CLASSIFY_TASKS", "")  # set by `shopserve loadtest`
        _payloads = Payloads(
            seed=int(os.environ.get("SHOPSERVE_SEED", "0")),
            classify_tasks=tuple(t for t in tasks.split(",") if t),
        )
    return _payloads


@events.init.add_listener
def _read_payloads(**_: object) -> None:
    payloads()  # before the run-time clock starts: reading the data takes seconds when contended
    # the hub's cached clock stood still while the data was read; timers set from it (the run
    # time, the warm-up) would fire that much early
    gevent.get_hub().loop.update_now()


def _usage() -> dict[str, float]:
    mark = {"window_s": time.monotonic(), "locust_cpu_s": time.process_time()}
    pid = os.environ.get("SHOPSERVE_SERVER_PID")
    if pid:
        try:
            cpu = psutil.Process(int(pid)).cpu_times()
            mark["server_cpu_s"] = cpu.user + cpu.system
        except psutil.Error:  # the server is gone: the run's errors will say so
            pass
    return mark


@events.test_start.add_listener
def _measure_after_warmup(environment: Environment, **_: object) -> None:
    warmup_s = float(os.environ.get("SHOPSERVE_WARMUP_S", "0"))
    usage_file = os.environ.get("SHOPSERVE_USAGE_FILE")
    start: dict[str, float] = {}

    def begin() -> None:
        environment.stats.reset_all()
        start.update(_usage())

    def end(**_: object) -> None:  # test_stopping: the run time is up, before in-flight drain
        if usage_file and start:
            stop = _usage()
            used = {k: stop[k] - v for k, v in start.items() if k in stop}
            Path(usage_file).write_text(json.dumps(used))

    environment.events.test_stopping.add_listener(end)
    if warmup_s > 0:
        gevent.spawn_later(warmup_s, begin)
    else:
        begin()


def _post(user: FastHttpUser, endpoint: str) -> None:
    body = getattr(payloads(), endpoint)()
    with user.client.post(f"/v1/{endpoint}", json=body, name=endpoint, catch_response=True) as r:
        if r.status_code != 200:
            r.failure(f"{r.status_code}: {r.text[:200]}")


class _Storefront(TaskSet):
    def recommend(self) -> None:
        _post(self.user, "recommend")

    def search(self) -> None:
        _post(self.user, "search")

    def classify(self) -> None:
        _post(self.user, "classify")

    def score(self) -> None:
        _post(self.user, "score")

    def answer(self) -> None:
        _post(self.user, "answer")

    def forecast(self) -> None:
        _post(self.user, "forecast")


_MIX = parse_mix(os.environ.get("SHOPSERVE_MIX", DEFAULT_MIX))
_Storefront.tasks = [getattr(_Storefront, name) for name, w in _MIX.items() for _ in range(w)]


class StorefrontUser(FastHttpUser):
    tasks = [_Storefront]
    wait_time = between(0.0, float(os.environ.get("SHOPSERVE_THINK_S", "0.05")))
    weight = int(os.environ.get("SHOPSERVE_STOREFRONT_WEIGHT", "1"))


class V2User(FastHttpUser):
    wait_time = between(0.0, 0.01)
    weight = int(os.environ.get("SHOPSERVE_V2_WEIGHT", "0"))
    model = os.environ.get("SHOPSERVE_V2_MODEL", "mlp")

    @task
    def infer(self) -> None:
        body = payloads().mlp()
        with self.client.post(
            f"/v2/models/{self.model}/infer",
            json=body,
            name=f"v2:{self.model}",
            catch_response=True,
        ) as r:
            if r.status_code != 200:
                r.failure(f"{r.status_code}: {r.text[:200]}")
