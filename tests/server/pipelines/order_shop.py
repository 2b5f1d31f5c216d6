"""The cancellation-risk part of the fake shop: `add_order_score(shop)` writes the
`score_cancellation/` pipeline folder (an `OrderScoreSpec` and a tiny `order_history.npz`) and a
fake logistic `cancellation_risk` model (tests/server/pipelines/fakes.py) whose version folder holds
its `preprocess.json`, and adds the model to the shop's model source."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import msgspec
import numpy as np

from server.contract.model_config import ModelConfig
from server.contract.order_history import FEATURES, LOG1P, EventTable, OrderHistory
from server.contract.pipelines import OrderScoreSpec, ScorePreprocessing
from tests.server.pipelines.fakes import FakeModel, risk_fn, tensor
from tests.server.pipelines.shop import Shop, write_pipeline

__all__ = ["ORDER_LINE", "OrderShop", "add_order_score", "seconds"]

CATEGORICAL = ["country", "hour", "weekday", "month"]
VOCABS = {
    "country": ["<unk>", "France", "Germany", "United Kingdom"],
    "hour": ["<unk>", *[str(h) for h in range(24)]],
    "weekday": ["<unk>", "Fri", "Mon", "Sat", "Sun", "Thu", "Tue", "Wed"],
    "month": ["<unk>", *[str(m) for m in range(1, 13)]],
}
ORDER_LINE = {
    "customer_id": "12346",
    "stock_code": "85123A",
    "quantity": 6,
    "unit_price": 2.55,
    "country": "United Kingdom",
    "invoice_time": "2011-06-01T10:30:00",
}
"""A valid /v1/score order line (task cancellation_risk) of a customer the history knows."""


def seconds(iso: str) -> int:
    return int((datetime.fromisoformat(iso) - datetime(1970, 1, 1)).total_seconds())


@dataclass
class OrderShop:
    history: OrderHistory
    preprocess: ScorePreprocessing
    spec: OrderScoreSpec


def _history() -> OrderHistory:
    """Customer 12346 ordered twice (May 2011, 85123A each time) and cancelled one 85123A line;
    customer 12347 bought 22423 once."""
    may1, may10, may20 = (seconds(f"2011-05-{d}T09:00:00") for d in ("01", "10", "20"))
    customers = np.array(["12346", "12347"])
    products = np.array(["22423", "85123A"])
    return OrderHistory(
        customer_ids=customers,
        stock_codes=products,
        pair_keys=np.array([0 * 2 + 1, 1 * 2 + 0]),  # (12346, 85123A), (12347, 22423)
        customer_orders=EventTable.build(
            np.array([0, 0, 1]),
            np.array([may1, may10, may1]),
            np.array([[1, 3, 30.0], [1, 2, 12.0], [1, 1, 5.0]]),
            2,
        ),
        customer_cancels=EventTable.build(np.array([0]), np.array([may20]), np.ones((1, 1)), 2),
        product_orders=EventTable.build(
            np.array([1, 1, 0]),
            np.array([may1, may10, may1]),
            np.array([[1, 2.5], [1, 2.6], [1, 12.75]]),
            2,
        ),
        product_cancels=EventTable.build(np.array([1]), np.array([may20]), np.ones((1, 1)), 2),
        pair_orders=EventTable.build(
            np.array([0, 0, 1]), np.array([may1, may10, may1]), np.ones((3, 1)), 2
        ),
        pair_cancels=EventTable.build(np.array([0]), np.array([may20]), np.ones((1, 1)), 2),
    )


def add_order_score(shop: Shop, threshold: float = 0.3, version: int = 2) -> OrderShop:
    """The cancellation pipeline and its model, beside the shop's other pipelines."""
    rng = np.random.default_rng(1)
    w_num = rng.normal(0, 0.3, len(FEATURES))
    w_num[FEATURES.index("customer_cancel_rate")] = 2.0
    w_cat = [rng.normal(0, 0.2, len(VOCABS[c])) for c in CATEGORICAL]
    pre = ScorePreprocessing(
        numeric=FEATURES,
        log1p=LOG1P,
        mean=[0.5] * len(FEATURES),
        std=[2.0] * len(FEATURES),
        categorical=CATEGORICAL,
        vocab=VOCABS,
        bias=-3.0,
        contributions=FEATURES + CATEGORICAL,
    )
    folder = shop.repo.parent / "models" / "cancellation_risk" / str(version)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "preprocess.json").write_bytes(msgspec.json.encode(pre))
    n = len(FEATURES) + len(CATEGORICAL)
    config = ModelConfig(
        name="cancellation_risk",
        max_batch_size=1024,
        input=[
            tensor("numeric", "TYPE_FP32", [len(FEATURES)]),
            tensor("categorical", "TYPE_INT64", [len(CATEGORICAL)], min_value=0),
        ],
        output=[
            tensor("probability", "TYPE_FP32", [1]),
            tensor("logit", "TYPE_FP32", [1]),
            tensor("contributions", "TYPE_FP32", [n]),
        ],
    )
    shop.models.models["cancellation_risk"] = FakeModel(
        config, risk_fn(w_num, w_cat, pre.bias), folder, version=version
    )
    spec = OrderScoreSpec(model="cancellation_risk", threshold=threshold)
    shop.specs["score_cancellation"] = spec
    history = _history()
    history.save(write_pipeline(shop.repo, "score_cancellation", spec) / spec.history)
    return OrderShop(history, pre, spec)
