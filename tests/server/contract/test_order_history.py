"""The order-history contract: as-of lookups (strictly before, same-second events merged, unknown
entities empty), the file round trip, and the `order_score` pipeline spec."""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np
import pytest

from server.contract.order_history import (
    EventTable,
    OrderHistory,
    order_line_features,
    pair_rows,
    time_categories,
)
from server.contract.pipelines import OrderScoreSpec, decode_pipeline_spec, encode_pipeline_spec


def _table() -> EventTable:
    # entity 1: 3 at t=10 (two events merged), 4 at t=20; entity 0: 3 at t=5; entity 2: none
    return EventTable.build(
        np.array([1, 1, 0, 1]), np.array([10, 10, 5, 20]), np.array([1.0, 2, 3, 4]), 3
    )


def test_before_counts_only_strictly_earlier_events():
    got = _table().before(np.array([1, 1, 1, 0, 2, -1]), np.array([10, 11, 21, 6, 100, 100]))
    assert got.count.tolist() == [0, 1, 2, 1, 0, 0]
    assert got.values[:, 0].tolist() == [0, 3, 7, 3, 0, 0]
    assert got.first_s.tolist() == [-1, 10, 10, 5, -1, -1]
    assert got.last_s.tolist() == [-1, 10, 20, 5, -1, -1]


def test_an_empty_table_knows_nothing():
    t = EventTable.build(np.array([], np.int64), np.array([], np.int64), np.zeros((0, 2)), 2)
    got = t.before(np.array([0, 1, -1]), np.array([5, 5, 5]))
    assert got.count.tolist() == [0, 0, 0] and got.values.shape == (3, 2)


def test_times_before_1970_are_refused():
    with pytest.raises(ValueError, match="seconds since 1970"):
        EventTable.build(np.array([0]), np.array([-1]), np.ones(1), 1)


def _history() -> OrderHistory:
    t = _table()
    return OrderHistory(
        customer_ids=np.array(["12346", "12347", "9"]),
        stock_codes=np.array(["22423", "85123A", "POST1"]),
        pair_keys=np.array([1, 4]),
        customer_orders=EventTable.build(np.array([0]), np.array([5]), np.ones((1, 3)), 3),
        customer_cancels=t,
        product_orders=EventTable.build(np.array([1]), np.array([5]), np.ones((1, 2)), 3),
        product_cancels=t,
        pair_orders=EventTable.build(np.array([0]), np.array([5]), np.ones((1, 1)), 2),
        pair_cancels=t,
    )


def test_history_round_trips_and_names_a_missing_array(tmp_path: Path):
    h = _history()
    h.save(tmp_path / "h.npz")
    back = OrderHistory.load(tmp_path / "h.npz")
    assert back.customer_rows(["12347", None, "1"]).tolist() == [1, -1, -1]
    assert back.product_rows(["85123A", "85123a"]).tolist() == [1, -1]
    np.testing.assert_array_equal(back.customer_cancels.cum, h.customer_cancels.cum)
    arrays = dict(np.load(tmp_path / "h.npz"))
    del arrays["pair_orders.cum"]
    np.savez(tmp_path / "broken.npz", **arrays)
    with pytest.raises(ValueError, match="pair_orders.cum"):
        OrderHistory.load(tmp_path / "broken.npz")


def test_pair_rows():
    keys = np.array([1, 4, 7])  # n_products 3: (0, 1), (1, 1), (2, 1)
    got = pair_rows(keys, 3, np.array([0, 1, 2, 0, -1]), np.array([1, 1, 1, 0, 1]))
    assert got.tolist() == [0, 1, 2, -1, -1]


def test_features_of_an_unknown_customer_and_product():
    h = _history()
    f = order_line_features(
        h, np.array([-1]), np.array([-1]), np.array([100]), np.array([3.0]), np.array([2.0])
    )[0]
    assert f[:3].tolist() == [3.0, 2.0, 6.0]  # quantity, unit price, line value
    assert f[3:8].tolist() == [0, 0, 0, 0, 0]  # no customer history
    assert f[13] == 2.0 and f[14] == 0.0  # product price: the line's own, ratio 1


def test_time_categories():
    secs = np.array([0, 1_306_924_200])  # 1970-01-01 00:00 (a Thursday), 2011-06-01 10:30 (Wed)
    assert time_categories(secs) == {
        "hour": ["0", "10"],
        "weekday": ["Thu", "Wed"],
        "month": ["1", "6"],
    }


def test_order_score_spec_round_trips_with_its_defaults():
    spec = OrderScoreSpec(model="cancellation_risk", threshold=0.12)
    name, back = decode_pipeline_spec(encode_pipeline_spec("score_cancellation", spec))
    assert name == "score_cancellation" and back == spec
    assert back.history == "order_history.npz" and back.models == ["cancellation_risk"]
    with pytest.raises(msgspec.ValidationError, match="threshold"):
        decode_pipeline_spec(
            'name = "s"\n[spec]\nkind = "order_score"\nmodel = "m"\nthreshold = 1.5\n'
        )
    with pytest.raises(msgspec.ValidationError, match="history"):
        decode_pipeline_spec(
            'name = "s"\n[spec]\nkind = "order_score"\nmodel = "m"\nhistory = "/etc/x"\n'
        )
