"""A storefront's traffic against shopserve: recommend 50%, search 30%, classify 15%, score 5%
(`SHOPSERVE_MIX="recommend=50,search=30,classify=15,score=5"` changes it), payloads from the real
data; and a V2 user sending raw model traffic (`SHOPSERVE_V2_MODEL`, default `mlp`)."""

from __future__ import annotations

import os

from locust import FastHttpUser, between, task
from locust.user.task import TaskSet

from loadtests.payloads import Payloads

_payloads: Payloads | None = None


def payloads() -> Payloads:
    global _payloads  # one pool per locust process, read on first use
    if _payloads is None:
        _payloads = Payloads(seed=int(os.environ.get("SHOPSERVE_SEED", "0")))
    return _payloads


def _mix() -> dict[str, int]:
    raw = os.environ.get("SHOPSERVE_MIX", "recommend=50,search=30,classify=15,score=5")
    out = {}
    for part in raw.split(","):
        if part.strip():
            name, weight = part.split("=")
            out[name.strip()] = int(weight)
    return out


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


_Storefront.tasks = [getattr(_Storefront, name) for name, w in _mix().items() for _ in range(w)]


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
