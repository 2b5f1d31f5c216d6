"""A tiny shop repository over fake models (tests/server/pipelines/fakes.py): `build_shop(root)`
writes the `search/`, `recommend/`, `classify/` and `score/` pipeline folders (`pipeline.toml`
from the typed specs, and their artifacts) and the fake models' version folders (with the
artifacts that belong to a model version: the ranker's feature tables, the risk model's
`preprocess.json`), and returns the model source to give `create_app(..., models=...)`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import numpy as np

from kernels import Feature, FeatureSpec, FeatureTables
from kernels.lexical import LexicalIndex
from server.contract.card import GateRule, GateSummary
from server.contract.model_config import ModelConfig, TensorConfig
from server.contract.pipelines import (
    ClassifyHead,
    ClassifySpec,
    FeatureTableFiles,
    LexicalFiles,
    PipelineSpec,
    RankingSpec,
    RecommendSpec,
    ScorePreprocessing,
    ScoreSpec,
    SearchSpec,
    encode_pipeline_spec,
)
from server.pipelines.text import TextEncoder
from server.schemas.v1 import Session
from tests.server.pipelines.fakes import (
    FakeModel,
    FakeModelSource,
    classifier_fn,
    query_encoder_fn,
    ranker_fn,
    risk_fn,
    search_encoder_fn,
    tensor,
)

__all__ = [
    "SESSION",
    "Shop",
    "build_shop",
    "write_lexical_index",
    "write_pipeline",
    "write_tokenizer",
]

# -- vocabulary and catalogue -----------------------------------------------------------------------

COLOURS = ["red", "blue", "green", "white", "black"]
NOUNS = ["candle", "mug", "heart", "lantern", "bag", "dress", "sweater", "clock", "frame", "bowl"]
LABEL_WORDS = {
    "sentiment": {
        "negative": ["terrible", "bad", "poor", "returned", "broke"],
        "neutral": ["okay", "fine", "average"],
        "positive": ["love", "great", "good", "perfect", "fits"],
    },
    "recommended": {
        "no": ["never", "avoid", "returned"],
        "yes": ["recommend", "again", "love"],
    },
}
OTHER_WORDS = ["this", "it", "the", "a", "for", "winter", "warm", "holder", "review", "number"]
VOCAB = ["[PAD]", "[UNK]", *COLOURS, *NOUNS] + sorted(
    {w for task in LABEL_WORDS.values() for ws in task.values() for w in ws} | set(OTHER_WORDS)
)
N_ITEMS = len(COLOURS) * len(NOUNS)  # 50
DIM = 16
USERS = ["U1", "U2", "U3"]

# the risk model: column names of the dataset (server/schemas/v1.py::Session), as export splits them
CATEGORICAL = ["Month", "VisitorType", "OperatingSystems", "Browser", "Region", "TrafficType"]
NUMERIC = [f for f in Session.__struct_fields__ if f not in CATEGORICAL]  # Weekend as 0/1
LOG1P = [*NUMERIC[:6], "PageValues"]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "June", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
VOCABS = {
    "Month": ["<unk>", *sorted(MONTHS)],
    "VisitorType": ["<unk>", "New_Visitor", "Other", "Returning_Visitor"],
    "OperatingSystems": ["<unk>", "1", "2", "3"],
    "Browser": ["<unk>", "1", "2"],
    "Region": ["<unk>", "1", "2", "3", "4"],
    "TrafficType": ["<unk>", "1", "2"],
}

SESSION = {
    "Administrative": 0,
    "Administrative_Duration": 0.0,
    "Informational": 0,
    "Informational_Duration": 0.0,
    "ProductRelated": 1,
    "ProductRelated_Duration": 0.0,
    "BounceRates": 0.2,
    "ExitRates": 0.2,
    "PageValues": 0.0,
    "SpecialDay": 0.0,
    "Month": "Feb",
    "OperatingSystems": 1,
    "Browser": 1,
    "Region": 1,
    "TrafficType": 1,
    "VisitorType": "Returning_Visitor",
    "Weekend": False,
}
"""A valid /v1/score session."""


def token_ids() -> TensorConfig:
    """Token ids as export declares them: pad 0, values within the vocabulary."""
    return tensor("input_ids", "TYPE_INT64", [-1], min_value=0, max_value=len(VOCAB) - 1)


# -- the repository ------------------------------------------------------------------------------


@dataclass
class Shop:
    """What `build_shop` wrote: the repository, the fake models and the catalogue."""

    repo: Path
    models: FakeModelSource
    item_ids: list[str]
    titles: list[str]
    prices: np.ndarray
    popularity: np.ndarray
    item_embeddings: np.ndarray
    item_category: np.ndarray
    specs: dict[str, PipelineSpec]
    preprocess: ScorePreprocessing

    def folder(self, pipeline: str) -> Path:
        return self.repo / pipeline / "1"


def write_pipeline(repo: Path, name: str, spec: PipelineSpec) -> Path:
    """`repo/name/pipeline.toml` and the version folder `1/`, which it returns."""
    version = repo / name / "1"
    version.mkdir(parents=True, exist_ok=True)
    (repo / name / "pipeline.toml").write_bytes(encode_pipeline_spec(name, spec))
    return version


def write_lexical_index(folder: Path, index: LexicalIndex, files: LexicalFiles) -> None:
    """A lexical index's files as export writes them (export/search.py: write_lexical_index)."""
    terms = sorted(index.vocabulary, key=index.vocabulary.__getitem__)
    (folder / files.vocabulary).write_text(json.dumps(terms))
    np.save(folder / files.idf, index.idf)
    np.save(folder / files.indptr, index.indptr)
    np.save(folder / files.items, index.items)
    np.save(folder / files.weights, index.weights)


def write_tokenizer(path: Path) -> None:
    """A lower-casing whitespace WordLevel tokenizer over VOCAB ([PAD] = 0), built offline."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import WordLevel

    tok = Tokenizer(WordLevel({w: i for i, w in enumerate(VOCAB)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(path))


def _config(name: str, max_batch: int, inputs: list[TensorConfig], outputs: list[TensorConfig]):
    return ModelConfig(name=name, max_batch_size=max_batch, input=inputs, output=outputs)


@dataclass
class _Build:
    """What the pipeline builders share: the catalogue and what has been written so far."""

    root: Path
    rng: np.random.Generator
    ids: list[str]
    titles: list[str]
    prices: np.ndarray
    popularity: np.ndarray
    category: np.ndarray
    models: dict[str, FakeModel] = field(default_factory=dict)
    specs: dict[str, PipelineSpec] = field(default_factory=dict)

    @property
    def repo(self) -> Path:
        return self.root / "repo"

    def model_dir(self, name: str, version: int) -> Path:
        """Fake models' version folders live outside the repository: the engine loads none."""
        folder = self.root / "models" / name / str(version)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def pipeline(self, name: str, spec: PipelineSpec, catalog: bool = False) -> Path:
        self.specs[name] = spec
        folder = write_pipeline(self.repo, name, spec)
        if catalog:
            (folder / "item_ids.json").write_text(json.dumps(self.ids))
            (folder / "item_titles.json").write_text(json.dumps(self.titles))
            np.save(folder / "item_prices.npy", self.prices.astype(np.float32))
        return folder


def _search(b: _Build) -> None:
    """The encoder is the mean of a fixed word table; the products are their encoded titles."""
    table = b.rng.standard_normal((len(VOCAB), DIM)).astype(np.float32)
    table[0] = 0.0
    b.models["search_encoder"] = FakeModel(
        _config("search_encoder", 32, [token_ids()], [tensor("embedding", "TYPE_FP32", [DIM])]),
        search_encoder_fn(table),
        b.model_dir("search_encoder", 3),
        version=3,
        gate=GateSummary(passed=True, rules=[GateRule("recall_at_10", 0.9, 0.5, True)]),
    )
    folder = b.pipeline("search", SearchSpec(encoder="search_encoder", max_tokens=16), True)
    write_tokenizer(folder / "tokenizer.json")
    title_ids = TextEncoder(folder / "tokenizer.json", 16).ids(b.titles)
    product = search_encoder_fn(table)({"input_ids": title_ids})["embedding"]
    np.save(folder / "product_embeddings.npy", product)


RANKING_FEATURES = FeatureSpec(
    (
        Feature("popularity", "item", column=0, transform="log1p"),
        Feature("price", "item", column=1),
        Feature("affinity", "affinity"),
        Feature("recent_category", "recent_category", half_life_s=86400.0),
        Feature("price_ratio", "price_ratio", column=1, column2=0),
    )
)


def _recommend(b: _Build) -> np.ndarray:
    """The query encoder is the mean item embedding; the ranker prefers cheap items."""
    item_emb = b.rng.standard_normal((N_ITEMS, DIM)).astype(np.float32)
    history = tensor(
        "history", "TYPE_INT64", [-1], pad_value=-1, min_value=0, max_value=N_ITEMS - 1
    )
    b.models["query_encoder"] = FakeModel(
        _config("query_encoder", 64, [history], [tensor("user_vector", "TYPE_FP32", [DIM])]),
        query_encoder_fn(item_emb),
        b.model_dir("query_encoder", 2),
        version=2,
        gate=GateSummary(passed=False, rules=[GateRule("ndcg_at_10", 0.1, 0.2, False)]),
    )
    # the ranking artifacts belong to the ranker's version folder
    ranker_folder = b.model_dir("ranker", 5)
    RANKING_FEATURES.save(ranker_folder / "features.json")
    tables = FeatureTables(
        user_features=b.rng.uniform(5, 30, (len(USERS) + 1, 1)).astype(np.float32),  # 0: unknown
        item_features=np.stack([b.popularity, b.prices], 1).astype(np.float32),
        item_category=b.category,
        affinity_indptr=np.asarray([0, 0, 2, 3, 5], np.int64),
        affinity_category=np.asarray([0, 3, 1, 2, 4], np.int64),
        affinity_value=np.asarray([0.5, 0.2, 0.9, 0.3, 0.1], np.float32),
    )
    files = FeatureTableFiles()  # the contract's default names, field by field
    for name in files.__struct_fields__:
        np.save(ranker_folder / getattr(files, name), getattr(tables, name))
    (ranker_folder / "user_ids.json").write_text(json.dumps(USERS))
    features = tensor("features", "TYPE_FP32", [RANKING_FEATURES.n_features])
    b.models["ranker"] = FakeModel(
        _config(
            "ranker",
            1024,
            [features, tensor("retrieval_score", "TYPE_FP32", [1])],
            [tensor("score", "TYPE_FP32", [1])],
        ),
        # minus the price, plus a little of the rest: the ranked order is the cheapest first
        ranker_fn(np.asarray([0.0, -1.0, 0.01, 0.0, 0.0]), 1e-3),
        ranker_folder,
        version=5,
    )
    spec = RecommendSpec(
        query_encoder="query_encoder",
        max_history=10,
        ranking=RankingSpec(model="ranker", candidates=20),
    )
    folder = b.pipeline("recommend", spec, True)
    np.save(folder / "item_embeddings.npy", item_emb)
    np.save(folder / "popularity.npy", b.popularity)
    return item_emb


def _classify(b: _Build) -> None:
    """Two heads over one tokenizer; sentiment's batch is small (requests are split)."""
    heads = []
    for task, version, max_batch in (("sentiment", 1, 4), ("recommended", 4, 64)):
        labels = list(LABEL_WORDS[task])
        w = np.zeros((len(VOCAB), len(labels)), np.float32)
        for j, label in enumerate(labels):
            for word in LABEL_WORDS[task][label]:
                w[VOCAB.index(word), j] = 1.0
        name = f"classify_{task}"
        b.models[name] = FakeModel(
            _config(name, max_batch, [token_ids()], [tensor("logits", "TYPE_FP32", [len(labels)])]),
            classifier_fn(w),
            b.model_dir(name, version),
            version=version,
        )
        heads.append(ClassifyHead(task=task, model=name, labels=labels))
    folder = b.pipeline("classify", ClassifySpec(heads=heads, max_tokens=32))
    write_tokenizer(folder / "tokenizer.json")


def _score(b: _Build) -> ScorePreprocessing:
    """A logistic risk model; its preprocessing lives in its own version folder."""
    w_num = b.rng.normal(0, 0.3, len(NUMERIC))
    w_num[NUMERIC.index("PageValues")] = 1.5
    w_cat = [b.rng.normal(0, 0.2, len(VOCABS[c])) for c in CATEGORICAL]
    w_cat[0][VOCABS["Month"].index("Nov")] = 1.0
    pre = ScorePreprocessing(
        numeric=NUMERIC,
        log1p=LOG1P,
        mean=[0.5] * len(NUMERIC),
        std=[2.0] * len(NUMERIC),
        categorical=CATEGORICAL,
        vocab=VOCABS,
        bias=-1.0,
        contributions=NUMERIC + CATEGORICAL,
    )
    folder = b.model_dir("risk", 7)
    (folder / "preprocess.json").write_bytes(msgspec.json.encode(pre))
    n = len(NUMERIC) + len(CATEGORICAL)
    b.models["risk"] = FakeModel(
        _config(
            "risk",
            1024,
            [
                tensor("numeric", "TYPE_FP32", [len(NUMERIC)]),
                tensor("categorical", "TYPE_INT64", [len(CATEGORICAL)]),
            ],
            [
                tensor("probability", "TYPE_FP32", [1]),
                tensor("logit", "TYPE_FP32", [1]),
                tensor("contributions", "TYPE_FP32", [n]),
            ],
        ),
        risk_fn(w_num, w_cat, pre.bias),
        folder,
        version=7,
    )
    b.pipeline("score", ScoreSpec(model="risk", threshold=0.4))
    return pre


def build_shop(root: Path, seed: int = 0) -> Shop:
    """The four pipelines under `root/repo` and their fake models (version folders under
    `root/models`)."""
    rng = np.random.default_rng(seed)
    # item i is (colour i // 10, noun i % 10); prices 1..50, each once
    b = _Build(
        root=root,
        rng=rng,
        ids=[f"SKU{i:03d}" for i in range(N_ITEMS)],
        titles=[f"{COLOURS[i // len(NOUNS)]} {NOUNS[i % len(NOUNS)]}" for i in range(N_ITEMS)],
        prices=rng.permutation(np.arange(1, N_ITEMS + 1)).astype(np.float32),
        popularity=rng.permutation(np.arange(N_ITEMS) * 3 + 1).astype(np.float64),
        category=np.asarray([i // len(NOUNS) for i in range(N_ITEMS)], np.int64),
    )
    _search(b)
    item_emb = _recommend(b)
    _classify(b)
    pre = _score(b)
    return Shop(
        repo=b.repo,
        models=FakeModelSource(b.models),
        item_ids=b.ids,
        titles=b.titles,
        prices=b.prices,
        popularity=b.popularity,
        item_embeddings=item_emb,
        item_category=b.category,
        specs=b.specs,
        preprocess=pre,
    )
