"""The reference rows of the text cards that do not come from the teacher: TF-IDF baselines
(classification and search) and the seed article's LSTM classifier."""

from __future__ import annotations

import numpy as np

from export.card import Row
from export.options import ExportOptions
from export.text_data import TextData, TextIds
from export.text_metrics import macro_f1, recall, topk
from export.training import fit, param_count

__all__ = ["classify_baseline_row", "search_baseline_row", "seed_row"]


def classify_baseline_row(data: TextData, task: str) -> Row:
    """TF-IDF word 1-2 grams + logistic regression, trained on the labelled training reviews."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    y_tr = data.y(task, "train")
    m_tr = y_tr >= 0
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    xv = vec.fit_transform(data.split_texts("train")[m_tr])
    lr = LogisticRegression(max_iter=2000, C=4.0).fit(xv, y_tr[m_tr])
    m = macro_f1(data.y(task, "test"), lr.predict(vec.transform(data.split_texts("test"))))
    return Row(
        "baseline", m["macro_f1"], m, params=int(lr.coef_.size), note="TF-IDF 1-2 grams + LR"
    )


def _train_seed_lstm(opts: ExportOptions, data: TextData, ids: TextIds, task: str):
    import torch
    import torch.nn.functional as F

    from export.text_models import SeedText

    n_cls = len(data.label_names[task])
    model = SeedText(n_cls)
    keep = data.y(task, "train") >= 0
    x_tr = torch.tensor(ids.split["train"][keep])
    y_tr = torch.tensor(data.y(task, "train")[keep])
    x_va, y_va = torch.tensor(ids.split["valid"]), data.y(task, "valid")
    w = torch.tensor(
        len(y_tr) / (n_cls * np.bincount(y_tr.numpy(), minlength=n_cls).clip(min=1)),
        dtype=torch.float32,
    )
    fit(
        model,
        lambda b: F.cross_entropy(model(x_tr[b]), y_tr[b], weight=w),
        len(y_tr),
        lambda: macro_f1(y_va, model(x_va).argmax(1).numpy())["macro_f1"],
        epochs=3 if opts.quick else 12,
        batch_size=64,
        lr=3e-3,
        seed=opts.seed,
        patience=3,
        budget_s=3 if opts.quick else 40,
        desc="seed LSTM text",
    )
    return model.eval()


def seed_row(opts: ExportOptions, data: TextData, ids: TextIds, task: str) -> Row:
    """The seed article's classifier: token embedding -> one LSTM -> linear on the last step."""
    import torch

    model = _train_seed_lstm(opts, data, ids, task)
    with torch.no_grad():
        pred = model(torch.tensor(ids.split["test"])).argmax(1).numpy()
    m = macro_f1(data.y(task, "test"), pred)
    return Row("seed", m["macro_f1"], m, params=param_count(model))


def search_baseline_row(data: TextData, teacher_top: np.ndarray) -> Row:
    """TF-IDF character 2-4 grams, cosine: recall@10 against the teacher's top 10."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True)
    vec.fit(data.products)
    top = topk(vec.transform(data.queries).toarray(), vec.transform(data.products).toarray())
    r = recall(top, teacher_top)
    return Row("baseline", r, {"recall@10": r}, note="TF-IDF char 2-4 grams, cosine")
