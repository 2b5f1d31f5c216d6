"""Honest evaluation for the recommender and the ranker (issue 10): no test target reaches a
feature table, popularity counts training events only, int8 calibration reads no test history,
choices are made on validation, and the global-time split trains on nothing from its window.

A small synthetic `RecData` (no CSV): every rule is checked by changing what must not matter
(each customer's test event, or validation event) and comparing."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from export.card import Row, served_variant
from export.ranker_features import build_tables, item_table
from export.recommender import popularity_row
from export.recommender_data import RecData, global_time, leave_one_out, popularity
from export.recommender_onnx import Variant, calibration_feeds, choose_int8, onnx_row

N_ITEMS, N_CUSTOMERS = 40, 30


def _data(seqs, times, paid, country) -> RecData:
    items = pd.DataFrame(
        {
            "StockCode": [f"{10000 + i}" for i in range(N_ITEMS)],
            "Description": [f"item {i}" for i in range(N_ITEMS)],
            "price": np.ones(N_ITEMS),
            "count": np.ones(N_ITEMS),
        }
    )
    cut = np.datetime64("2011-03-01T00:00:00")
    return RecData(
        items,
        np.arange(len(seqs)) + 12000,
        seqs,
        times,
        paid,
        country,
        ["A", "B", "C"],
        8,
        sum(len(s) for s in seqs),
        {},
        leave_one_out(seqs, times),
        global_time(seqs, times, cut),
    )


def synthetic(seed: int = 0) -> RecData:
    rng = np.random.default_rng(seed)
    seqs, times, paid, country = [], [], [], []
    for _ in range(N_CUSTOMERS):
        n = int(rng.integers(3, 15))
        seqs.append(rng.integers(0, N_ITEMS, n).astype(np.int64))
        days = np.sort(rng.integers(0, 120, n))
        times.append(np.datetime64("2011-01-01T00:00:00") + days.astype("timedelta64[D]"))
        paid.append(rng.uniform(0.5, 9.0, n).astype(np.float32))
        country.append(np.full(n, rng.integers(0, 3), np.int64))
    return _data(seqs, times, paid, country)


def changed(data: RecData, last: int) -> RecData:
    """`data` with each customer's last `last` events changed: another item, price and country."""
    seqs, paid, country = (copy.deepcopy(x) for x in (data.seqs, data.paid, data.country))
    for s, p, c in zip(seqs, paid, country, strict=True):
        s[-last:] = (s[-last:] + 7) % N_ITEMS
        p[-last:] = p[-last:] * 10 + 3
        c[-last:] = (c[-last:] + 1) % 3
    return _data(seqs, data.times, paid, country)


def _tables_equal(a, b) -> None:
    for field in (
        "user_features",
        "item_features",
        "item_category",
        "affinity_indptr",
        "affinity_category",
        "affinity_value",
    ):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)


def test_no_test_target_reaches_a_feature_table():
    data = synthetic()
    other = changed(data, last=1)  # every customer's test event
    category = np.arange(N_ITEMS) % 5
    served = [len(s) - 1 for s in data.seqs]  # the published tables: events before the test target
    _tables_equal(build_tables(data, served, category), build_tables(other, served, category))
    # and the changed events are really read when they are in the prefix
    everything = [len(s) for s in data.seqs]
    a, b = build_tables(data, everything, category), build_tables(other, everything, category)
    assert not np.array_equal(a.user_features, b.user_features)


def test_training_tables_hold_no_validation_or_test_target():
    data, other = synthetic(), changed(synthetic(), last=2)
    category = np.arange(N_ITEMS) % 5
    train = [len(s) - 2 for s in data.seqs]
    _tables_equal(build_tables(data, train, category), build_tables(other, train, category))


def test_popularity_counts_training_events_only():
    data, other = synthetic(), changed(synthetic(), last=2)  # validation and test events
    counts = popularity(data.loo.train, N_ITEMS)
    np.testing.assert_array_equal(counts, popularity(other.loo.train, N_ITEMS))
    expected = np.bincount(np.concatenate([s[:-2] for s in data.seqs]), minlength=N_ITEMS)
    np.testing.assert_array_equal(counts, expected)
    np.testing.assert_array_equal(item_table(data), item_table(other))
    np.testing.assert_allclose(item_table(data)[:, 0], np.log1p(expected), rtol=1e-6)
    # the baseline row ranks by the same counts: its validation metric ignores test events
    assert popularity_row(data.loo, N_ITEMS).valid_metric == pytest.approx(
        popularity_row(changed(data, last=1).loo, N_ITEMS).valid_metric
    )


def test_int8_calibration_reads_no_test_history():
    data, other = synthetic(), changed(synthetic(), last=2)
    feeds = calibration_feeds(data.loo, data.max_len)
    for a, b in zip(feeds, calibration_feeds(other.loo, data.max_len), strict=True):
        np.testing.assert_array_equal(a["history"], b["history"])
    rows = np.concatenate([f["history"] for f in feeds])
    for row, s in zip(rows, data.seqs, strict=False):
        hist = s[:-2][-data.max_len :]
        np.testing.assert_array_equal(row[: len(hist)], hist)  # the training prefix only
        assert (row[len(hist) :] == -1).all()


def _variant(tmp_path: Path, name: str, valid: float, test: float) -> Variant:
    path = tmp_path / f"{name}.onnx"
    path.write_bytes(b"x")
    return Variant(path, None, {"ndcg@10": valid}, {"ndcg@10": test})


def test_int8_mode_and_served_variant_are_chosen_on_validation(tmp_path: Path):
    fp32 = _variant(tmp_path, "fp32", valid=0.100, test=0.100)
    tried = {
        "dynamic": _variant(tmp_path, "dyn", valid=0.090, test=0.200),  # better on test only
        "static": _variant(tmp_path, "static", valid=0.0995, test=0.050),
    }
    mode = choose_int8(tried, 0.99 * fp32.valid["ndcg@10"])
    assert mode == "static"
    lat = {"batch_1": 1.0}
    fast = {"batch_1": 0.5}
    rows = [onnx_row("student", fp32, 1, lat), onnx_row("student-int8", tried[mode], 1, fast)]
    assert served_variant(rows, "batch_1") == "student-int8"
    # shuffling the test metrics changes nothing; a worse validation metric does
    rows[1].metric, rows[0].metric = rows[0].metric, rows[1].metric * 3
    assert served_variant(rows, "batch_1") == "student-int8"
    rows[1].valid_metric = 0.05
    assert served_variant(rows, "batch_1") == "student"


def test_global_time_split_trains_on_nothing_from_its_window():
    data = synthetic()
    split = data.time
    cut = np.datetime64(split.about["dates"][0])
    k = 0
    for s, t in zip(data.seqs, data.times, strict=True):
        if min(int((t < cut).sum()), len(s) - 2) < 2:
            continue
        train, target = split.train[k], split.valid_target[k]
        n = len(train) + 1  # training events + the validation event
        assert np.array_equal(train, s[: n - 1]) and target == s[n - 1]
        assert (t[:n] < cut).all(), "nothing from the test window"
        assert n <= len(s) - 2, "no leave-one-out validation or test event"
        k += 1
    assert k == len(split.train) > 0
    for h, target, c in zip(split.test_hist, split.test_target, split.test_customer, strict=True):
        s, t = data.seqs[c], data.times[c]
        j = len(h)  # the history: every earlier event of the customer
        assert t[j] >= cut and j >= 1 and s[j] == target and np.array_equal(h, s[:j])
    assert len(split.test_target) == sum(int((t[1:] >= cut).sum()) for t in data.times)


def test_query_encoder_matches_the_full_forward_pass():
    torch = pytest.importorskip("torch")
    from export.seqmodels import QueryEncoder, SASRec, last_valid_index

    torch.manual_seed(0)
    hist = torch.tensor(np.random.default_rng(0).integers(0, N_ITEMS, (5, 12)))
    hist[0, 3:] = -1
    hist[1, 1:] = -1
    for blocks, heads in ((1, 1), (1, 2), (2, 2), (3, 1)):
        model = SASRec(N_ITEMS, 16, blocks, heads, 12).eval()
        tokens = torch.clamp(hist + 1, min=0)
        with torch.no_grad():
            torch.nn.init.normal_(model.bias)
            full = model.hidden(tokens)[torch.arange(5), last_valid_index(tokens)]
            user = QueryEncoder(model)(hist)
            np.testing.assert_allclose(user[:, :-1], full, atol=1e-5)
            # retrieval's inner product with the served item rows is the model's logits
            scores = user @ model.served_items().T
            np.testing.assert_allclose(scores, model.logits(full), atol=1e-4)


def test_served_choice_needs_validation_metrics():
    rows = [
        Row("student", 0.1, {}, latency_ms={"batch_1": 1.0}),
        Row("student-int8", 0.1, {}, latency_ms={"batch_1": 0.5}),
    ]
    with pytest.raises(ValueError, match="valid_metric"):
        served_variant(rows, "batch_1")


def _queries(rng, n: int):
    from export.ranker_features import FEATURE_SPEC, Queries

    k = 12  # >= the 10 that NDCG@10 reads
    y = np.zeros((n, k), np.float32)
    y[np.arange(n), rng.integers(0, k, n)] = 1
    x = rng.standard_normal((n, k, FEATURE_SPEC.n_features)).astype(np.float32)
    s = rng.standard_normal((n, k)).astype(np.float32)
    return Queries(np.tile(np.arange(k), (n, 1)), x, s, y)


def test_ranker_rows_carry_validation_metrics_that_ignore_test(tmp_path: Path):
    torch = pytest.importorskip("torch")
    from export.ranker import RANKER, baseline_row, onnx_row
    from export.ranker_models import MLP

    rng = np.random.default_rng(0)
    test, valid = _queries(rng, 40), _queries(rng, 30)
    torch.manual_seed(0)
    model = MLP(np.zeros(RANKER.inputs[0].dims[0] + 1), np.ones(RANKER.inputs[0].dims[0] + 1))
    example = (torch.tensor(valid.x[0]), torch.tensor(valid.s[0].reshape(-1, 1)))
    path = RANKER.export(model.eval(), example, tmp_path / "m.onnx")
    row, _ = onnx_row("student", path, (test, valid), runs=2, model=model)
    shuffled = _queries(np.random.default_rng(5), 40)  # other test labels and features
    row2, _ = onnx_row("student", path, (shuffled, valid), runs=2)
    assert row.valid_metric == row2.valid_metric and row.metric != row2.metric
    base = baseline_row(test, valid)
    assert base.valid_metric == baseline_row(shuffled, valid).valid_metric
