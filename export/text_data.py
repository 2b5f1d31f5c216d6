"""Reviews for the text family: loading, the random split, token ids, the build plan of each tier,
and the serving `tokenizer.json` (the data step of `export_text`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export.data import load_retail, load_reviews, retail_sequences
from export.specs import TensorSpec

__all__ = [
    "INPUT_IDS",
    "MAX_TOKENS",
    "TASKS",
    "TextData",
    "TextIds",
    "TextPlan",
    "catalog_items",
    "dataset_card",
    "load_text_data",
    "plan_for",
    "random_split",
    "tokenize",
    "tokenize_all",
    "tokenizer_json",
]

TASKS = {
    "sentiment": ["negative", "neutral", "positive"],
    "recommended": ["no", "yes"],
    "department": None,  # the dataset's Department Name values, sorted
}
MAX_TOKENS = 128  # the default truncation of a served tokenizer (search keeps it)
# every text model's input: token ids [batch, tokens], 0 = pad (the mask is computed in-graph)
VOCAB = 30522  # the BERT uncased WordPiece vocabulary (MiniLM's, shared by every student)
MAX_POSITIONS = 512  # MiniLM's position table (the students keep it)
# token ids in the vocabulary, no longer than the position table: checked by the server before
# queueing, so one bad request cannot fail the batch it would join
INPUT_IDS = TensorSpec(
    "input_ids",
    "TYPE_INT64",
    (-1,),
    pad_value=0,
    min_value=0,
    max_value=VOCAB - 1,
    max_dims=(MAX_POSITIONS,),
)
SPLIT = (0.70, 0.15, 0.15)  # train / valid / test shares of the reviews a build uses


@dataclass(frozen=True)
class TextPlan:
    """What a tier of the text family buys: reviews, tokens per review, timing runs."""

    reviews: int | None  # None: every cleaned review
    max_len: int  # tokens per review (training, evaluation and the served tokenizer)
    bench_runs: int  # latency runs per session and batch size
    bench_s: float  # latency budget per session and batch size
    check_reviews: int = 256  # test reviews each served file is checked on (torch, its graph)
    # the batch sizes timed; the gate's speed rule and the served variant read batch 1
    bench_batches: tuple[int, ...] = (1, 64)


# full: 128 tokens hold 88.7% of the reviews whole (96: 62%, 64: 37%; the longest is 169)
PLANS = {
    "quick": TextPlan(430, 32, 5, 0.5),
    # preview: the first answer of `make serve` waits for it (issue 10 item 7), so it checks each
    # served file on 64 reviews and times batch 1 only (the gate's and the variant choice's)
    "preview": TextPlan(2400, 64, 20, 1.0, check_reviews=64, bench_batches=(1,)),
    "full": TextPlan(None, 128, 60, 3.0),
}


def plan_for(quick: bool, tier: str) -> TextPlan:
    return PLANS["quick" if quick else tier]


@dataclass
class TextData:
    texts: list[str]
    labels: dict[str, np.ndarray]  # -1 = no label for that task
    split: dict[str, np.ndarray]  # indices into `texts`, disjoint
    label_names: dict[str, list[str]]
    rows: int  # cleaned reviews in the dataset (the build may use a subset)
    cleaning: dict
    seed: int

    @property
    def tasks(self) -> list[str]:
        return list(self.label_names)

    def y(self, task: str, split: str) -> np.ndarray:
        return self.labels[task][self.split[split]]

    def split_texts(self, split: str) -> np.ndarray:
        return np.array(self.texts, dtype=object)[self.split[split]]


@dataclass
class TextIds:
    """Token ids of every review the family trains or evaluates on, per split [n, max_len]."""

    split: dict[str, np.ndarray]
    max_len: int


def random_split(n: int, seed: int, take: int | None = None) -> dict[str, np.ndarray]:
    """A seeded permutation of `n` rows (its first `take` when given) cut 70/15/15."""
    order = np.random.default_rng(seed).permutation(n)[: take or n]
    a = int(round(SPLIT[0] * len(order)))
    b = a + int(round(SPLIT[1] * len(order)))
    return {"train": order[:a], "valid": order[a:b], "test": order[b:]}


def catalog_items(n: int | None = None):
    """The Online Retail products (StockCode, Description, price), the first `n` if given."""
    retail, _ = load_retail()
    _, items, _ = retail_sequences(retail)
    return items if n is None else items.iloc[:n]


def load_text_data(plan: TextPlan, seed: int) -> TextData:
    df, rep = load_reviews()
    depts = sorted(d for d in df["department"].unique() if d)
    dept = df["department"].map({d: i for i, d in enumerate(depts)}).fillna(-1).astype(int)
    labels = {
        "sentiment": df["sentiment"].to_numpy(),
        "recommended": df["recommended"].to_numpy(),
        "department": dept.to_numpy(),
    }
    return TextData(
        df["text"].tolist(),
        labels,
        random_split(len(df), seed, plan.reviews),
        {**{k: v for k, v in TASKS.items() if v}, "department": depts},
        rep.rows_out,
        rep.to_dict(),
        seed,
    )


def dataset_card(data: TextData, task: str, tier: str) -> dict:
    """The reviews' `dataset` entry of a classifier card: the split's exact counts."""
    n = {k: len(v) for k, v in data.split.items()}
    used = sum(n.values())
    labelled = {k: int((data.y(task, k) >= 0).sum()) for k in n}
    whole = "all" if used == data.rows else f"a {tier} subset of {used:,} of the"
    split = (
        f"random 70/15/15 (seed {data.seed}) of {whole} {data.rows:,} cleaned reviews: "
        f"train {n['train']:,} / valid {n['valid']:,} / test {n['test']:,}"
    )
    if labelled != n:
        left = sum(n.values()) - sum(labelled.values())
        split += (
            f"; {left} without a {task} left out, labelled train {labelled['train']:,} / "
            f"valid {labelled['valid']:,} / test {labelled['test']:,}"
        )
    return {
        "name": "Women's E-Commerce Clothing Reviews (Kaggle, CC0)",
        "rows": used,
        "split": split,
    }


def tokenize(tok, texts: list[str], max_len: int) -> np.ndarray:
    enc = tok(texts, truncation=True, max_length=max_len, padding="max_length", return_tensors="np")
    return enc["input_ids"].astype(np.int64)


def tokenize_all(tok, data: TextData, max_len: int) -> TextIds:
    texts = np.array(data.texts, dtype=object)
    split = {s: tokenize(tok, list(texts[ix]), max_len) for s, ix in data.split.items()}
    return TextIds(split=split, max_len=max_len)


def tokenizer_json(model_path: str, max_tokens: int = MAX_TOKENS) -> str:
    """The teacher's tokenizer.json with padding off (the server pads per batch) and truncation set."""
    t = json.loads((Path(model_path) / "tokenizer.json").read_text())
    t["padding"] = None
    t["truncation"] = {
        "direction": "Right",
        "max_length": max_tokens,
        "strategy": "LongestFirst",
        "stride": 0,
    }
    return json.dumps(t)
