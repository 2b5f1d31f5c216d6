"""Ranker: re-scores the recommender's retrieved candidates.

Features come from `kernels.features.assemble_features` with the spec written to
`features.json` (the same code and spec the server runs), plus the retrieval score as a second
input. Online Retail has no categories or user attributes; they are derived here:
- item category: k-means over the MiniLM embeddings of the item descriptions;
- item price: median unit price; item popularity: invoices;
- user features from the customer's events before the query (never the target): frequency
  (events), distinct items, monetary value (sum of item prices), mean price paid, country code;
- user-category affinity: share of the user's events in each category;
- recent item / category: decayed counts over the history with age = 1 day per step back
  (position-based, so serving computes the same from a history without timestamps).
Recency in days is left out: a request's history carries no timestamps.

Rows: retrieval order (baseline), a DCN-v2 teacher (3 cross layers + 256-256 MLP), an MLP student
(32-16) distilled from the teacher's listwise scores plus the labels, the student in int8.
Training queries: each customer's validation target (history = training prefix), 10% of customers
held out for early stopping; test: the test target (history + validation item).
"""

from __future__ import annotations

import json
import shutil
import time

import numpy as np

from export import onnx_tools
from export.card import Card, ExportError, Row, check_gates
from export.options import ExportOptions, finish
from export.recommender import RecData, encode_histories, load_rec_data
from export.repository import ModelFolder, Tensor, config_toml
from export.training import fit, param_count, seed_everything

__all__ = ["export_ranker", "feature_spec"]

DAY_S = 86400.0
USER_COLS = ["log_events", "log_distinct_items", "log_monetary", "mean_price", "country"]
ITEM_COLS = ["log_invoices", "price"]


def feature_spec():
    from kernels.features import Feature, FeatureSpec

    return FeatureSpec(
        (
            Feature("user_log_events", "user", column=0),
            Feature("user_log_distinct", "user", column=1),
            Feature("user_log_monetary", "user", column=2),
            Feature("user_mean_price", "user", column=3, transform="log1p"),
            Feature("item_log_invoices", "item", column=0),
            Feature("item_price", "item", column=1, transform="log1p"),
            Feature("price_ratio", "price_ratio", column=1, column2=3, transform="log1p"),
            Feature("category_affinity", "affinity"),
            Feature("recent_item_7d", "recent_item", half_life_s=7 * DAY_S, transform="log1p"),
            Feature("recent_item_90d", "recent_item", half_life_s=90 * DAY_S, transform="log1p"),
            Feature(
                "recent_category_7d", "recent_category", half_life_s=7 * DAY_S, transform="log1p"
            ),
            Feature(
                "recent_category_90d", "recent_category", half_life_s=90 * DAY_S, transform="log1p"
            ),
        )
    )


def _categories(opts: ExportOptions, titles: list[str], k: int) -> np.ndarray:
    """k-means over MiniLM embeddings of the descriptions (cached per build)."""
    from sklearn.cluster import KMeans

    cache = opts.cache / "item_minilm.npy"
    if opts.quick:  # --quick only: TF-IDF + SVD stands in for MiniLM (seconds instead of a minute)
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer

        emb = TruncatedSVD(32, random_state=opts.seed).fit_transform(
            TfidfVectorizer().fit_transform(titles)
        )
    elif cache.exists():
        emb = np.load(cache)
    else:
        import torch

        from export.text import load_teacher

        tok, bert, _ = load_teacher()
        emb = []
        with torch.no_grad():
            for i in range(0, len(titles), 256):
                enc = tok(
                    [t.lower() for t in titles[i : i + 256]],
                    truncation=True,
                    max_length=16,
                    padding=True,
                    return_tensors="pt",
                )
                h = bert(**enc).last_hidden_state
                m = enc["attention_mask"].unsqueeze(-1).float()
                e = (h * m).sum(1) / m.sum(1)
                emb.append(torch.nn.functional.normalize(e, dim=1).numpy())
        emb = np.concatenate(emb)
        np.save(cache, emb)
    return KMeans(k, n_init=3, random_state=opts.seed).fit_predict(emb).astype(np.int64)


def _tables(
    data: RecData, hists: list[np.ndarray], countries: np.ndarray, category: np.ndarray, n_cat: int
):
    """User rows (one per history, + row 0 = unknown user) and the item and affinity tables."""
    from kernels.features import FeatureTables

    price = data.items["price"].to_numpy(np.float32)
    users = np.zeros((len(hists) + 1, len(USER_COLS)), np.float32)
    indptr, acat, aval = [0, 0], [], []
    for u, h in enumerate(hists, start=1):
        users[u] = [
            np.log1p(len(h)),
            np.log1p(len(np.unique(h))),
            np.log1p(price[h].sum()),
            price[h].mean() if len(h) else 0.0,
            countries[u - 1],
        ]
        c, n = np.unique(category[h], return_counts=True)
        acat.extend(c.tolist())
        aval.extend((n / max(len(h), 1)).tolist())
        indptr.append(len(acat))
    users[0, :4] = users[1:, :4].mean(0)
    items = np.stack([np.log1p(data.items["count"].to_numpy(np.float32)), price], axis=1)
    return FeatureTables(
        users,
        items,
        category,
        np.array(indptr, np.int64),
        np.array(acat, np.int64),
        np.array(aval, np.float32),
    )


def _features(spec, tables, hists, user_rows, cands) -> np.ndarray:
    """[n_queries * K, F] via the kernel; recent = the last 50 history items, 1 day per step back."""
    from kernels.features import assemble_features

    b, k = cands.shape
    recent = [h[-50:] for h in hists]
    r_ptr = np.r_[0, np.cumsum([len(r) for r in recent])].astype(np.int64)
    r_ids = np.concatenate(recent).astype(np.int64)
    ages = np.concatenate([(len(r) - np.arange(len(r))) * DAY_S for r in recent]).astype(np.float32)
    out = np.empty((b * k, spec.n_features), np.float32)
    return assemble_features(
        spec,
        tables,
        user_rows.astype(np.int64),
        np.arange(0, b * k + 1, k, dtype=np.int64),
        cands.reshape(-1).astype(np.int64),
        r_ptr,
        r_ids,
        ages,
        out,
    )


def _ndcg(scores: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    """NDCG@k with one relevant item per query (0 if it was not retrieved)."""
    order = np.argsort(-scores, axis=1, kind="stable")
    hit = np.take_along_axis(labels, order, 1)[:, :k]
    return round(float((hit / np.log2(np.arange(2, k + 2))).sum(1).mean()), 4)


def _models(n_feat: int, mean: np.ndarray, std: np.ndarray):
    import torch
    from torch import nn

    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
            self.register_buffer("std", torch.tensor(std, dtype=torch.float32))

        def inputs(self, features, retrieval_score):
            return (torch.cat([features, retrieval_score], 1) - self.mean) / self.std

    class DCNv2(Scaled):
        def __init__(self, cross: int = 3, deep: int = 256):
            super().__init__()
            d = n_feat + 1
            self.cross = nn.ModuleList(nn.Linear(d, d) for _ in range(cross))
            self.deep = nn.Sequential(
                nn.Linear(d, deep), nn.ReLU(), nn.Linear(deep, deep), nn.ReLU()
            )
            self.out = nn.Linear(d + deep, 1)

        def forward(self, features, retrieval_score):
            x0 = self.inputs(features, retrieval_score)
            x = x0
            for layer in self.cross:
                x = x0 * layer(x) + x
            return self.out(torch.cat([x, self.deep(x0)], 1))

    class MLP(Scaled):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(
                nn.Linear(n_feat + 1, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 1)
            )

        def forward(self, features, retrieval_score):
            return self.net(self.inputs(features, retrieval_score))

    return DCNv2, MLP


def export_ranker(opts: ExportOptions) -> None:
    import torch
    import torch.nn.functional as F

    from export.data import load_retail

    qe, rec = opts.out / "query_encoder" / "1" / "model.onnx", opts.out / "recommend" / "1"
    if not qe.exists():
        raise ExportError(
            f"ranker needs the recommender's retrieval model: run `shopserve export recommender "
            f"--out {opts.out}` first ({qe} is missing)"
        )
    seed_everything(opts.seed)
    q = opts.quick
    data = load_rec_data(q, opts.seed)
    k_cand = 50
    n_cat = 8 if q else 24
    titles = data.items["Description"].fillna("").str.strip().tolist()
    opts.log(
        f"[ranker] item categories: k-means ({n_cat}) over MiniLM embeddings of {len(titles)} descriptions"
    )
    category = _categories(opts, titles, n_cat)
    retail, _ = load_retail()
    country_codes = {c: i for i, c in enumerate(sorted(retail["Country"].unique()))}
    cust_country = retail.groupby("CustomerID")["Country"].agg(lambda s: s.mode().iat[0])
    countries = np.array([country_codes[cust_country[c]] for c in data.customers], np.float32)

    item_emb = np.load(rec / "item_embeddings.npy")
    sess = onnx_tools.session(qe)
    max_len = int(json.loads(json.dumps(data.max_len)))
    spec = feature_spec()
    users = np.arange(1, len(data.train) + 1)

    def candidates(hists, targets):
        u = onnx_tools.run_session(sess, {"history": encode_histories(hists, max_len)})[0]
        s = u @ item_emb.T
        top = np.argpartition(-s, k_cand, axis=1)[:, :k_cand]
        ts = np.take_along_axis(s, top, 1)
        order = np.argsort(-ts, axis=1, kind="stable")
        top, ts = np.take_along_axis(top, order, 1), np.take_along_axis(ts, order, 1)
        return top, ts.astype(np.float32), (top == targets[:, None]).astype(np.float32)

    # training queries: validation targets with the training prefix; test: test targets
    tables_tr = _tables(data, data.train, countries, category, n_cat)
    tables_te = _tables(data, data.test_hist(), countries, category, n_cat)
    c_tr, s_tr, y_tr = candidates(data.train, data.valid_target)
    c_te, s_te, y_te = candidates(data.test_hist(), data.test_target)
    x_tr = _features(spec, tables_tr, data.train, users, c_tr).reshape(len(users), k_cand, -1)
    x_te = _features(spec, tables_te, data.test_hist(), users, c_te).reshape(len(users), k_cand, -1)
    n_feat = x_tr.shape[2]
    rng = np.random.default_rng(opts.seed)
    held = rng.random(len(users)) < 0.1
    fit_q = np.flatnonzero(
        ~held & (y_tr.sum(1) > 0)
    )  # queries without the target retrieved teach nothing
    val_q = np.flatnonzero(held)
    flat = np.concatenate([x_tr.reshape(-1, n_feat), s_tr.reshape(-1, 1)], 1)
    mean, std = flat.mean(0), flat.std(0) + 1e-6
    DCNv2, MLP = _models(n_feat, mean, std)
    opts.log(
        f"[ranker] {len(fit_q)} training queries x {k_cand} candidates, {n_feat} kernel features + retrieval score"
    )

    X, S, Y = torch.tensor(x_tr), torch.tensor(s_tr), torch.tensor(y_tr)

    def scores(model, x, s):
        with torch.no_grad():
            b, k, f = x.shape
            return (
                model(torch.tensor(x.reshape(-1, f)), torch.tensor(s.reshape(-1, 1)))
                .reshape(b, k)
                .numpy()
            )

    def listwise(model, b):
        idx = fit_q[b]
        xb = X[idx]
        return model(xb.reshape(-1, n_feat), S[idx].reshape(-1, 1)).reshape(len(idx), k_cand), Y[
            idx
        ]

    rows = [
        Row(
            "baseline",
            _ndcg(s_te, y_te),
            {"ndcg@10": _ndcg(s_te, y_te), "recall@50": round(float(y_te.sum(1).mean()), 4)},
            note="retrieval order (query_encoder inner product)",
        )
    ]
    teacher = DCNv2()

    def t_step(b):
        logits, y = listwise(teacher, b)
        return -(F.log_softmax(logits, 1) * y).sum(1).mean()

    fit(
        teacher,
        t_step,
        len(fit_q),
        lambda: _ndcg(scores(teacher, x_tr[val_q], s_tr[val_q]), y_tr[val_q]),
        epochs=10 if q else 40,
        batch_size=64,
        lr=2e-3,
        seed=opts.seed,
        patience=4,
        budget_s=6 if q else 120,
        desc="ranker teacher DCN-v2",
        weight_decay=1e-5,
    )
    for p in teacher.parameters():
        p.requires_grad_(False)
    student = MLP()
    temp = 2.0

    def s_step(b):
        logits, y = listwise(student, b)
        with torch.no_grad():
            t_logits = listwise(teacher, b)[0]
        kd = (
            F.kl_div(
                F.log_softmax(logits / temp, 1),
                F.log_softmax(t_logits / temp, 1),
                log_target=True,
                reduction="batchmean",
            )
            * temp
            * temp
        )
        return 0.5 * kd - 0.5 * (F.log_softmax(logits, 1) * y).sum(1).mean()

    fit(
        student,
        s_step,
        len(fit_q),
        lambda: _ndcg(scores(student, x_tr[val_q], s_tr[val_q]), y_tr[val_q]),
        epochs=10 if q else 40,
        batch_size=64,
        lr=3e-3,
        seed=opts.seed,
        patience=4,
        budget_s=6 if q else 120,
        desc="ranker student MLP",
    )

    work = opts.cache / "ranker"
    ex = (torch.tensor(x_te[0]), torch.tensor(s_te[0].reshape(-1, 1)))
    names, outs = ["features", "retrieval_score"], ["score"]
    axes = {n: {0: "batch"} for n in names + outs}
    feeds = {"features": x_te.reshape(-1, n_feat), "retrieval_score": s_te.reshape(-1, 1)}
    runs = 20 if q else 200
    lat_rows = {b: {k: v[:b] for k, v in feeds.items()} for b in (1, 64, 500)}

    def lat(s):
        return {
            f"batch_{b}": onnx_tools.measure_latency_ms(lambda f=f: s.run(None, f), runs=runs)
            for b, f in lat_rows.items()
        }

    def onnx_rows(variant, path, model=None, note=""):
        s = onnx_tools.session(path)
        got = onnx_tools.run_session(s, feeds, batch=4096)[0].reshape(len(users), k_cand)
        check = None
        if model is not None:
            check = onnx_tools.check_outputs([scores(model, x_te, s_te)], [got], atol=1e-3)
            if not check.passed:
                raise RuntimeError(f"ranker {variant}: ONNX output differs from torch: {check}")
        m = {"ndcg@10": _ndcg(got, y_te)}
        return Row(
            variant, m["ndcg@10"], m, size_bytes=path.stat().st_size, latency_ms=lat(s), note=note
        ), check

    t_path = onnx_tools.export_onnx(teacher, ex, work / "teacher.onnx", names, outs, axes)
    r, _ = onnx_rows("teacher", t_path, teacher)
    r.params = param_count(teacher)
    rows.append(r)
    s_path = onnx_tools.export_onnx(student, ex, work / "student.onnx", names, outs, axes)
    r, check = onnx_rows("student", s_path, student)
    r.params = param_count(student)
    rows.append(r)
    q_path = onnx_tools.quantize_dynamic_int8(s_path, work / "student-int8.onnx")
    r, _ = onnx_rows("student-int8", q_path, note="dynamic int8, per-channel Gemm/MatMul weights")
    r.params = param_count(student)
    rows.append(r)
    by = {r.variant: r for r in rows}
    ok_int8 = by["student-int8"].metric >= 0.99 * by["student"].metric
    fast_int8 = by["student-int8"].latency_ms["batch_500"] < by["student"].latency_ms["batch_500"]
    served = "student-int8" if ok_int8 and fast_int8 else "student"

    folder = ModelFolder(opts.out, "ranker")
    (folder.version / "model.onnx").write_bytes(
        (q_path if served == "student-int8" else s_path).read_bytes()
    )
    spec.save(folder.version / "features.json")
    folder.write_config(
        config_toml(
            "ranker",
            [
                Tensor("features", "TYPE_FP32", [n_feat]),
                Tensor("retrieval_score", "TYPE_FP32", [1]),
            ],
            [Tensor("score", "TYPE_FP32", [1])],
            max_batch_size=1024,
            preferred_batch_size=[500],
            parameters={"feature_spec": "features.json", "variant": served, "candidates": k_cand},
        )
    )
    gate = check_gates(rows, served=served, speed_batch="batch_500", min_speedup=2.0, quick=q)
    card = Card(
        "ranker",
        f"re-rank the top-{k_cand} retrieved candidates (features: kernels.features spec "
        "in 1/features.json + retrieval score)",
        {
            "name": "Online Retail (UCI 352), customer purchase sequences",
            "rows": data.rows,
            "split": f"train on validation targets of {len(fit_q)} customers (10% held out for early "
            f"stopping), test on the test targets of {len(users)} customers"
            + (" (--quick: 500 customers)" if q else ""),
        },
        "ndcg@10",
        rows,
        gate,
        extra={
            "export_check": check.to_dict(),
            "served_variant": served,
            "features": spec.to_json(),
            "derived": {
                "item_category": f"k-means ({n_cat}) over "
                + ("TF-IDF+SVD (--quick)" if q else "MiniLM")
                + " description embeddings",
                "user_columns": USER_COLS,
                "item_columns": ITEM_COLS,
            },
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
    )
    finish(opts, folder, card)
    _add_to_recommend(opts, spec, tables_te, data, n_cat, k_cand)


def _add_to_recommend(
    opts: ExportOptions, spec, tables, data: RecData, n_cat: int, k_cand: int
) -> None:
    """Republish `recommend` with the ranker's feature tables and spec (the pipeline assembles features)."""
    from server.contract.model_config import load_config

    src = opts.out / "recommend"
    folder = ModelFolder(opts.out, "recommend")
    shutil.rmtree(folder.version)
    shutil.copytree(src / "1", folder.version)
    v = folder.version
    spec.save(v / "features.json")
    for name in (
        "user_features",
        "item_features",
        "item_category",
        "affinity_indptr",
        "affinity_category",
        "affinity_value",
    ):
        np.save(v / f"{name}.npy", getattr(tables, name))
    # user row 0 is the unknown user; row u + 1 is customer `user_ids[u]`
    (v / "user_ids.json").write_text(json.dumps([int(c) for c in data.customers]))
    params = dict(load_config(src / "config.toml").parameters)
    params.update(
        {
            "ranker": "ranker",
            "feature_spec": "features.json",
            "candidates": k_cand,
            "user_ids": "user_ids.json",
            "unknown_user_row": 0,
            "recent_items": 50,
            "recent_age_step_s": DAY_S,
            "n_categories": n_cat,
            "feature_tables": [
                "user_features.npy",
                "item_features.npy",
                "item_category.npy",
                "affinity_indptr.npy",
                "affinity_category.npy",
                "affinity_value.npy",
            ],
        }
    )
    folder.write_config(
        config_toml("recommend", [], [], max_batch_size=0, platform="pipeline", parameters=params)
    )
    folder.publish()
