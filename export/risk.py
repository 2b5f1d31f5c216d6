"""Risk / purchase-intent score on Online Shoppers Intention (label `Revenue`).

Rows: logistic regression (baseline), gradient-boosted trees (teacher, the strongest model that
trains here in seconds), and an additive student distilled from it: one small network per numeric
feature and one learned value per category, summed into the logit, so each feature's contribution
is exact (`contributions` output; logit = bias + sum). int8 is not applied: the student is
elementwise per-feature arithmetic with no MatMul/Gemm to quantize.
"""

from __future__ import annotations

import time

import numpy as np

from export import onnx_tools
from export.card import Card, Row, check_gates
from export.data import load_shoppers
from export.options import ExportOptions, finish
from export.repository import ModelFolder, Tensor, config_toml
from export.training import fit, param_count, seed_everything

__all__ = ["export_risk", "MODEL_NAME"]

MODEL_NAME = "risk"
NUMERIC = [
    "Administrative",
    "Administrative_Duration",
    "Informational",
    "Informational_Duration",
    "ProductRelated",
    "ProductRelated_Duration",
    "BounceRates",
    "ExitRates",
    "PageValues",
    "SpecialDay",
    "Weekend",
]
LOG1P = NUMERIC[:6] + ["PageValues"]  # heavy-tailed counts and durations
CATEGORICAL = ["Month", "VisitorType", "OperatingSystems", "Browser", "Region", "TrafficType"]


def preprocess_params(train) -> dict:
    num = train[NUMERIC].astype(np.float64).copy()
    for c in LOG1P:
        num[c] = np.log1p(num[c].clip(lower=0))
    vocab = {c: ["<unk>"] + sorted(train[c].astype(str).unique().tolist()) for c in CATEGORICAL}
    return {
        "numeric": NUMERIC,
        "log1p": LOG1P,
        "mean": num.mean().round(6).tolist(),
        "std": num.std().replace(0, 1).round(6).tolist(),
        "categorical": CATEGORICAL,
        "vocab": vocab,
    }


def transform(df, p: dict) -> tuple[np.ndarray, np.ndarray]:
    num = df[p["numeric"]].astype(np.float64).copy()
    for c in p["log1p"]:
        num[c] = np.log1p(num[c].clip(lower=0))
    x = ((num.to_numpy() - np.array(p["mean"])) / np.array(p["std"])).astype(np.float32)
    cat = np.stack(
        [
            df[c].astype(str).map({v: i for i, v in enumerate(p["vocab"][c])}).fillna(0).to_numpy()
            for c in p["categorical"]
        ],
        axis=1,
    ).astype(np.int64)
    return x, cat


def _student(n_num: int, vocab_sizes: list[int], hidden: int):
    import torch
    from torch import nn

    class AdditiveRisk(nn.Module):
        """logit = bias + sum_f g_f(x_f): g_f a 1-hidden-layer net (numeric) or a table (category)."""

        def __init__(self):
            super().__init__()
            self.w1 = nn.Parameter(torch.randn(n_num, hidden) * 0.5)
            self.b1 = nn.Parameter(torch.randn(n_num, hidden) * 0.1)
            self.w2 = nn.Parameter(torch.randn(n_num, hidden) * 0.1)
            self.table = nn.Parameter(torch.zeros(sum(vocab_sizes)))
            self.register_buffer(
                "offsets", torch.tensor(np.r_[0, np.cumsum(vocab_sizes)[:-1]], dtype=torch.int64)
            )
            self.register_buffer("maxes", torch.tensor(vocab_sizes, dtype=torch.int64) - 1)
            self.bias = nn.Parameter(torch.zeros(1))

        def forward(self, numeric, categorical):
            h = torch.relu(numeric.unsqueeze(-1) * self.w1 + self.b1)
            c_num = (h * self.w2).sum(-1)
            idx = torch.minimum(torch.clamp(categorical, min=0), self.maxes) + self.offsets
            c_cat = self.table[idx]
            contributions = torch.cat([c_num, c_cat], dim=1)
            logit = contributions.sum(1, keepdim=True) + self.bias
            return torch.sigmoid(logit), logit, contributions

    return AdditiveRisk()


def _sk_latency(fn, x_num, x_cat, batch: int, runs: int) -> float:
    xb = (x_num[:batch], x_cat[:batch])
    return onnx_tools.measure_latency_ms(lambda: fn(*xb), runs=runs)


def export_risk(opts: ExportOptions) -> None:
    import torch
    import torch.nn.functional as F
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score, f1_score, roc_auc_score
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import OneHotEncoder

    seed_everything(opts.seed)
    df, rep = load_shoppers()
    y_all = df["Revenue"].astype(int).to_numpy()
    idx = np.arange(len(df))
    tr, rest = train_test_split(idx, test_size=0.3, stratify=y_all, random_state=opts.seed)
    va, te = train_test_split(rest, test_size=0.5, stratify=y_all[rest], random_state=opts.seed)
    if opts.quick:
        tr = tr[:3000]
    p = preprocess_params(df.iloc[tr])
    (xn_tr, xc_tr), (xn_va, xc_va), (xn_te, xc_te) = (
        transform(df.iloc[i], p) for i in (tr, va, te)
    )
    y_tr, y_va, y_te = y_all[tr], y_all[va], y_all[te]

    def metrics(prob, y):
        return {
            "roc_auc": round(float(roc_auc_score(y, prob)), 4),
            "pr_auc": round(float(average_precision_score(y, prob)), 4),
        }

    rows: list[Row] = []
    # baseline: logistic regression on standardised numerics + one-hot categories
    enc = OneHotEncoder(handle_unknown="ignore").fit(xc_tr)

    def lr_x(xn, xc):
        return np.hstack([xn, enc.transform(xc).toarray()])

    lr = LogisticRegression(max_iter=2000, C=1.0).fit(lr_x(xn_tr, xc_tr), y_tr)
    m = metrics(lr.predict_proba(lr_x(xn_te, xc_te))[:, 1], y_te)
    rows.append(Row("baseline", m["roc_auc"], m, params=int(lr.coef_.size + 1)))

    # teacher: gradient-boosted trees, early stopping on the validation split
    opts.log("[risk] teacher: gradient-boosted trees")
    x_tr_t = np.hstack([xn_tr, xc_tr])
    cat_mask = [False] * xn_tr.shape[1] + [True] * xc_tr.shape[1]
    best = None
    for lr_rate, leaves in ((0.05, 15), (0.05, 31), (0.1, 15)) if not opts.quick else ((0.1, 15),):
        gbt = HistGradientBoostingClassifier(
            learning_rate=lr_rate,
            max_leaf_nodes=leaves,
            max_iter=400,
            categorical_features=cat_mask,
            early_stopping=True,
            validation_fraction=0.15,
            random_state=opts.seed,
        )
        gbt.fit(x_tr_t, y_tr)
        auc = roc_auc_score(y_va, gbt.predict_proba(np.hstack([xn_va, xc_va]))[:, 1])
        if best is None or auc > best[0]:
            best = (auc, gbt)
    gbt = best[1]

    def teacher_prob(xn, xc):
        return gbt.predict_proba(np.hstack([xn, xc]))[:, 1]

    m = metrics(teacher_prob(xn_te, xc_te), y_te)
    n_nodes = int(sum(len(t[0].nodes) for t in gbt._predictors))
    runs = 20 if opts.quick else 200
    rows.append(
        Row(
            "teacher",
            m["roc_auc"],
            m,
            params=n_nodes,
            latency_ms={
                f"batch_{b}": _sk_latency(teacher_prob, xn_te, xc_te, b, runs) for b in (1, 64)
            },
            note="sklearn HistGradientBoosting; params = tree nodes; latency in sklearn",
        )
    )

    # student: additive model distilled from the teacher's probabilities plus the labels
    opts.log("[risk] student: additive model distilled from the teacher")
    vocab_sizes = [len(p["vocab"][c]) for c in CATEGORICAL]
    student = _student(len(NUMERIC), vocab_sizes, hidden=8 if opts.quick else 16)
    t_tr = torch.tensor(teacher_prob(xn_tr, xc_tr), dtype=torch.float32)
    xn_t, xc_t, y_t = (
        torch.tensor(xn_tr),
        torch.tensor(xc_tr),
        torch.tensor(y_tr, dtype=torch.float32),
    )

    def step(b):
        _, logit, contrib = student(xn_t[b], xc_t[b])
        logit = logit[:, 0]
        soft = F.binary_cross_entropy_with_logits(logit, t_tr[b])
        hard = F.binary_cross_entropy_with_logits(logit, y_t[b])
        return 0.7 * soft + 0.3 * hard + 1e-4 * contrib.pow(2).mean()

    def s_prob(xn, xc):
        with torch.no_grad():
            return student(torch.tensor(xn), torch.tensor(xc))[0][:, 0].numpy()

    fit(
        student,
        step,
        len(tr),
        lambda: roc_auc_score(y_va, s_prob(xn_va, xc_va)),
        epochs=8 if opts.quick else 60,
        batch_size=256,
        lr=1e-2,
        seed=opts.seed,
        patience=8,
        budget_s=5 if opts.quick else 120,
        desc="risk student",
    )

    folder = ModelFolder(opts.out, MODEL_NAME)
    onnx_path = onnx_tools.export_onnx(
        student,
        (torch.tensor(xn_te[:4]), torch.tensor(xc_te[:4])),
        folder.version / "model.onnx",
        ["numeric", "categorical"],
        ["probability", "logit", "contributions"],
        {
            n: {0: "batch"}
            for n in ("numeric", "categorical", "probability", "logit", "contributions")
        },
    )
    sess = onnx_tools.session(onnx_path)
    feeds = {"numeric": xn_te, "categorical": xc_te}
    got = onnx_tools.run_session(sess, feeds)
    with torch.no_grad():
        ref = [t.numpy() for t in student(torch.tensor(xn_te), torch.tensor(xc_te))]
    check = onnx_tools.check_outputs(ref, got, atol=1e-4)
    if not check.passed:
        raise RuntimeError(f"risk: ONNX output differs from torch: {check}")
    m = metrics(got[0][:, 0], y_te)
    lat = {
        f"batch_{b}": onnx_tools.measure_latency_ms(
            lambda b=b: sess.run(None, {"numeric": xn_te[:b], "categorical": xc_te[:b]}), runs=runs
        )
        for b in (1, 64)
    }
    rows.append(
        Row(
            "student",
            m["roc_auc"],
            m,
            params=param_count(student),
            size_bytes=onnx_path.stat().st_size,
            latency_ms=lat,
            note="ONNX Runtime CPU, 1 thread",
        )
    )
    # contributions are exact: they sum to the logit
    additivity = float(np.max(np.abs(got[2].sum(1) + float(student.bias.detach()) - got[1][:, 0])))

    # threshold on validation: the F1-best cut of the student's probability
    pv = s_prob(xn_va, xc_va)
    cands = np.unique(np.round(pv, 3))
    f1s = [f1_score(y_va, pv >= c) for c in cands]
    threshold = round(float(cands[int(np.argmax(f1s))]), 3)

    pre = dict(
        p,
        threshold=threshold,
        threshold_rule="max F1 on the validation split",
        bias=float(student.bias.detach()),
        contributions=NUMERIC + CATEGORICAL,
        test_f1_at_threshold=round(float(f1_score(y_te, got[0][:, 0] >= threshold)), 4),
    )
    folder.write_json("1/preprocess.json", pre)
    folder.write_config(
        config_toml(
            MODEL_NAME,
            [
                Tensor("numeric", "TYPE_FP32", [len(NUMERIC)]),
                Tensor("categorical", "TYPE_INT64", [len(CATEGORICAL)]),
            ],
            [
                Tensor("probability", "TYPE_FP32", [1]),
                Tensor("logit", "TYPE_FP32", [1]),
                Tensor("contributions", "TYPE_FP32", [len(NUMERIC) + len(CATEGORICAL)]),
            ],
            max_batch_size=1024,
            preferred_batch_size=[64, 256],
            parameters={
                "preprocess": "preprocess.json",
                "threshold": threshold,
                "feature_names": NUMERIC + CATEGORICAL,
            },
        )
    )
    gate = check_gates(
        rows, served="student", speed_batch="batch_64", min_speedup=1.0, quick=opts.quick
    )
    card = Card(
        MODEL_NAME,
        "purchase-intent / risk score per session (binary: Revenue)",
        {
            "name": "Online Shoppers Purchasing Intention (UCI 468)",
            "rows": rep.rows_out,
            "split": f"stratified 70/15/15 train/valid/test, seed {opts.seed}; test {len(te)} rows"
            + ("; --quick: 3000 training rows" if opts.quick else ""),
        },
        "roc_auc",
        rows,
        gate,
        extra={
            "cleaning": rep.to_dict(),
            "export_check": check.to_dict(),
            "additivity_max_abs": additivity,
            "threshold": threshold,
            "quantization": "not applied: the additive student has no MatMul/Gemm; int8 gains nothing",
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
    )
    finish(opts, folder, card)
