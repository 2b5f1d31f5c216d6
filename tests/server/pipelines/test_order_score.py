"""OrderScorePipeline over a fake cancellation model: the order line's features from the history
as of its invoice time (the contract's own function), the probability and its exact additive
explanation, and the artifacts checked at load."""

from __future__ import annotations

import asyncio

import msgspec
import numpy as np
import pytest

from server.budget import Budget
from server.contract.order_history import FEATURES, order_line_features
from server.errors import BadRequest, ModelLoadError
from server.pipelines.order_score import OrderScorePipeline
from server.schemas.v1 import OrderLine, ScoreRequest
from tests.server.pipelines.order_shop import ORDER_LINE, OrderShop, add_order_score, seconds
from tests.server.pipelines.shop import Shop


@pytest.fixture
def order(shop: Shop) -> OrderShop:
    return add_order_score(shop)


def _load(shop: Shop, order: OrderShop) -> OrderScorePipeline:
    folder = shop.folder("score_cancellation")
    return OrderScorePipeline.load(order.spec, folder, shop.models)


def _line(**changes) -> OrderLine:
    return msgspec.convert({**ORDER_LINE, **changes}, OrderLine, strict=False)


def _raw(p: OrderScorePipeline, **changes) -> dict[str, float]:
    """The raw numeric features (before log1p and standardisation) the pipeline computes."""
    x = p.features(_line(**changes))["numeric"][0].astype(np.float64)
    raw = x * p.std.std + p.std.mean
    raw = np.where(p.std.log1p, np.expm1(raw), raw)
    return dict(zip(FEATURES, raw, strict=True))


def test_features_are_the_history_as_of_the_invoice_time(shop, order):
    p = _load(shop, order)
    june = _raw(p)
    assert june["customer_invoices"] == pytest.approx(2, abs=1e-4)
    assert june["customer_lines"] == pytest.approx(5, abs=1e-4)
    assert june["customer_cancelled"] == pytest.approx(1, abs=1e-4)
    assert june["customer_cancel_rate"] == pytest.approx(0.2, abs=1e-5)
    assert june["product_mean_price"] == pytest.approx(2.55, abs=1e-4)
    assert june["customer_product_lines"] == pytest.approx(2, abs=1e-4)
    assert june["customer_product_cancelled"] == pytest.approx(1, abs=1e-4)
    assert june["customer_product_days_since_last"] == pytest.approx(22 + 1.5 / 24, abs=1e-3)
    want = order_line_features(
        order.history,
        order.history.customer_rows(["12346"]),
        order.history.product_rows(["85123A"]),
        np.array([seconds(ORDER_LINE["invoice_time"])]),
        np.array([6.0]),
        np.array([2.55]),
    )[0]
    np.testing.assert_allclose(list(june.values()), want, rtol=1e-4, atol=1e-4)
    # before the first order: nothing known yet; between them: one invoice, no cancellation
    april = _raw(p, invoice_time="2011-04-30T09:00:00")
    assert april["customer_lines"] == pytest.approx(0, abs=1e-4)
    may5 = _raw(p, invoice_time="2011-05-05T09:00:00")
    assert may5["customer_invoices"] == pytest.approx(1, abs=1e-4)
    assert may5["customer_cancelled"] == pytest.approx(0, abs=1e-4)


def test_unknown_and_missing_customers_have_no_history(shop, order):
    p = _load(shop, order)
    for raw in (_raw(p, customer_id="99999"), _raw(p, customer_id=None)):
        assert raw["customer_lines"] == pytest.approx(0, abs=1e-4)
        assert raw["customer_days_since_last"] == pytest.approx(365, abs=1e-2)
    lower = _raw(p, stock_code="85123a")  # stock codes are matched upper-case
    assert lower["product_lines"] == pytest.approx(2, abs=1e-4)


def test_time_categories_and_unknown_country(shop, order):
    p = _load(shop, order)
    cat = p.features(_line(country="Narnia"))["categorical"][0].tolist()
    vocab = order.preprocess.vocab
    assert cat == [0, vocab["hour"].index("10"), vocab["weekday"].index("Wed"), 6]


def test_probability_and_exact_explanation(shop, order):
    p = _load(shop, order)
    budget = Budget(5000)
    req = ScoreRequest(task="cancellation_risk", order_line=_line())
    res = asyncio.run(p.run(req, budget))
    contribs = [e.contribution for e in res.explanation]
    assert {e.feature for e in res.explanation} == set(FEATURES) | {
        "country",
        "hour",
        "weekday",
        "month",
    }
    logit = res.base + sum(contribs)
    assert res.probability == pytest.approx(1 / (1 + np.exp(-logit)), abs=1e-5)
    assert res.label == (res.probability >= 0.3) and res.threshold == 0.3
    assert res.model_versions == {"cancellation_risk": "2"}
    assert {"features", "model"} <= set(budget.stages)


def test_invoice_time_out_of_range_is_400(shop, order):
    p = _load(shop, order)
    with pytest.raises(BadRequest, match=r"\$.order_line.invoice_time"):
        p.features(_line(invoice_time="1969-12-31T23:00:00"))


def test_missing_order_line_is_400(shop, order):
    p = _load(shop, order)
    with pytest.raises(BadRequest, match=r"\$.order_line: required"):
        asyncio.run(p.run(ScoreRequest(task="cancellation_risk"), Budget(5000)))


def test_history_and_preprocessing_are_checked_at_load(shop, order):
    history = shop.folder("score_cancellation") / "order_history.npz"
    history.write_bytes(b"not an npz")
    with pytest.raises(ModelLoadError, match=r"score_cancellation/1/order_history.npz"):
        _load(shop, order)
    order.history.save(history)
    pre = shop.models["cancellation_risk"].folder / "preprocess.json"
    swapped = [FEATURES[1], FEATURES[0], *FEATURES[2:]]  # same names, another order
    wrong = msgspec.structs.replace(order.preprocess, numeric=swapped)
    pre.write_bytes(msgspec.json.encode(wrong))
    with pytest.raises(ModelLoadError, match="not the server's order-line features"):
        _load(shop, order)
