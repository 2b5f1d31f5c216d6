"""The shop pipelines' specs: `<repository>/<name>/pipeline.toml`, one tagged Struct per kind.

A pipeline folder holds `pipeline.toml` and numeric version folders with its artifacts, like a
model folder holds `config.toml`. Export builds these Structs and writes them with
`msgspec.toml.encode` (defaults are omitted: TOML has no null); the server decodes them with
`decode_pipeline_spec`. Every field that names a file is an `Artifact`: a plain relative name
checked to stay inside the version folder it is read from.

Artifacts that belong to a model version (the ranker's feature tables, the risk model's
preprocessing, a classifier's labels) live in that model's version folder, so a model reload
and its artifacts can never disagree; the pipeline is rebuilt when such a model changes.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path, PurePosixPath
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from server.contract.model_config import Name

__all__ = [
    "PIPELINE_FILE",
    "AnswerSpec",
    "Artifact",
    "CatalogFiles",
    "ClassifyHead",
    "ClassifySpec",
    "FeatureTableFiles",
    "ForecastSpec",
    "LexicalFiles",
    "OrderScoreSpec",
    "PipelineSpec",
    "RankingSpec",
    "RecommendSpec",
    "ScorePreprocessing",
    "ScoreSpec",
    "SearchSpec",
    "artifact_path",
    "decode_pipeline_spec",
    "encode_pipeline_spec",
    "load_pipeline_spec",
]

PIPELINE_FILE = "pipeline.toml"

Artifact = Annotated[
    str, Meta(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*$")
]
"""A file name relative to a version folder (sub-folders allowed, `..` refused by `artifact_path`)."""

Tokens = Annotated[int, Meta(ge=1, le=8192)]


class _Spec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    pass


class _Kind(_Spec, frozen=True, tag_field="kind"):
    """A pipeline spec: TOML's `[spec]` table names its `kind`."""


def artifact_path(folder: Path, name: str) -> Path:
    """`folder / name`, refusing absolute names and any that leave `folder`."""
    rel = PurePosixPath(name)
    if rel.is_absolute() or ".." in rel.parts or name.startswith(("/", "\\")):
        raise ValueError(f"artifact '{name}' must be a relative name inside {folder.name}/")
    path = (folder / rel).resolve()
    if not path.is_relative_to(folder.resolve()):
        raise ValueError(f"artifact '{name}' resolves outside {folder.name}/")
    return path


class CatalogFiles(_Spec, frozen=True):
    """The product catalogue a retrieval pipeline answers with (rows aligned with its embeddings)."""

    item_ids: Artifact = "item_ids.json"  # JSON list of str
    item_titles: Artifact = "item_titles.json"  # JSON list of str
    item_prices: Artifact = "item_prices.npy"  # float32 [n_items]


class LexicalFiles(_Spec, frozen=True):
    """A lexical product index (`kernels.lexical.LexicalIndex`): how texts become terms, and the
    postings by term, aligned with the catalogue's rows."""

    analyzer: Literal["char_wb", "word"] = "char_wb"  # character n-grams in words, or words
    weighting: Literal["tfidf", "bm25"] = "tfidf"
    ngram_min: Annotated[int, Meta(ge=1, le=8)] = 2
    ngram_max: Annotated[int, Meta(ge=1, le=8)] = 4
    vocabulary: Artifact = "lexical_vocabulary.json"  # JSON list of terms: term id = position
    idf: Artifact = "lexical_idf.npy"  # float32 [n_terms]
    indptr: Artifact = "lexical_indptr.npy"  # int64 [n_terms + 1]
    items: Artifact = "lexical_items.npy"  # int32 [nnz]: catalogue rows
    weights: Artifact = "lexical_weights.npy"  # float32 [nnz]

    def __post_init__(self) -> None:
        if self.ngram_min > self.ngram_max:
            raise ValueError(f"ngram_min {self.ngram_min} > ngram_max {self.ngram_max}")


class SearchSpec(_Kind, frozen=True, tag="search"):
    """query -> tokens -> `encoder` -> inner product with `product_embeddings`; with a `lexical`
    index, hybrid: `lexical_weight` x lexical score / its max + (1 - `lexical_weight`) x the
    min-max-normalised inner product (`kernels.lexical.fuse_scores`), then the top k."""

    encoder: Name
    product_embeddings: Artifact = "product_embeddings.npy"  # float32 [n_items, dim], unit rows
    catalog: CatalogFiles = CatalogFiles()
    tokenizer: Artifact = "tokenizer.json"
    max_tokens: Tokens = 64
    lexical: LexicalFiles | None = None
    lexical_weight: Annotated[float, Meta(ge=0, le=1)] = 0.0

    def __post_init__(self) -> None:
        if self.lexical_weight > 0 and self.lexical is None:
            raise ValueError("lexical_weight > 0 needs a `lexical` index")

    @property
    def models(self) -> list[str]:
        return [self.encoder]


class AnswerSpec(_Kind, frozen=True, tag="answer"):
    """Customer-service answers (issue 13): question -> tokens -> `encoder` -> cosine with every
    phrasing of every knowledge-base entry (`phrasing_embeddings`, entry e owns rows
    `phrasing_indptr[e]:phrasing_indptr[e + 1]`), max per entry; with a `lexical` index over the
    entries, fused as search fuses (`kernels.lexical.fuse_scores`, `lexical_weight`); the top k
    entries. Intent: softmax(`intent_weights` @ embedding + `intent_bias`) over `intents`; the
    answer is handed off to a person when the best phrasing cosine is under `min_cosine` or the
    intent's probability under `min_confidence` (both chosen on validation by export)."""

    encoder: Name
    intents: Annotated[list[Annotated[str, Meta(min_length=1)]], Meta(min_length=1)]
    entries: Artifact = "entries.json"  # JSON list of {id, intent, question, answer}
    phrasing_embeddings: Artifact = "phrasing_embeddings.npy"  # float32 [n_phrasings, dim]
    phrasing_indptr: Artifact = "phrasing_indptr.npy"  # int64 [n_entries + 1]
    intent_weights: Artifact = "intent_weights.npy"  # float32 [n_intents, dim]
    intent_bias: Artifact = "intent_bias.npy"  # float32 [n_intents]
    tokenizer: Artifact = "tokenizer.json"
    max_tokens: Tokens = 64
    lexical: LexicalFiles | None = None
    lexical_weight: Annotated[float, Meta(ge=0, le=1)] = 0.0
    min_cosine: Annotated[float, Meta(ge=-1, le=1)] = -1.0
    min_confidence: Annotated[float, Meta(ge=0, le=1)] = 0.0

    def __post_init__(self) -> None:
        if self.lexical_weight > 0 and self.lexical is None:
            raise ValueError("lexical_weight > 0 needs a `lexical` index")
        if len(set(self.intents)) != len(self.intents):
            raise ValueError(f"duplicate intents in {self.intents}")

    @property
    def models(self) -> list[str]:
        return [self.encoder]


MonthDay = Annotated[str, Meta(pattern=r"^(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")]


class ForecastSpec(_Kind, frozen=True, tag="forecast"):
    """Demand forecasts (issue 13): item -> its row of the daily history table (`quantity` and
    `price`, float32 [n_items, n_days], column 0 is `first_day`) -> `kernels.history.
    origin_features` at the origin -> `model` (features, scale -> p50, p90 per day ahead, up to
    `horizon_days`). An item first sold fewer than `min_history_days` before the origin gets its
    category's profile (`category_profile` float32 [n_categories, 7, 2]: p50, p90 by weekday; a
    category of `min_category_items` items or fewer: `global_profile` float32 [7, 2]). Every
    forecast is 0 on a closed day: a `closed_weekdays` weekday (Monday 0) or a `closed_dates`
    MM-DD."""

    model: Name
    first_day: date
    horizon_days: Annotated[int, Meta(ge=1, le=366)] = 28
    min_history_days: Annotated[int, Meta(ge=0, le=366)] = 28
    min_category_items: Annotated[int, Meta(ge=0)] = 5
    closed_weekdays: list[Annotated[int, Meta(ge=0, le=6)]] = []
    closed_dates: list[MonthDay] = []
    quantity: Artifact = "quantity.npy"
    price: Artifact = "price.npy"
    item_ids: Artifact = "item_ids.json"  # JSON list of str, one per table row
    item_category: Artifact = "item_category.npy"  # int64 [n_items]
    category_items: Artifact = "category_items.npy"  # int64 [n_categories]: items behind a profile
    category_profile: Artifact = "category_profile.npy"
    global_profile: Artifact = "global_profile.npy"

    @property
    def models(self) -> list[str]:
        return [self.model]


class FeatureTableFiles(_Spec, frozen=True):
    """`kernels.FeatureTables`, field by field (names, not the order of a list)."""

    user_features: Artifact = "user_features.npy"
    item_features: Artifact = "item_features.npy"
    item_category: Artifact = "item_category.npy"
    affinity_indptr: Artifact = "affinity_indptr.npy"
    affinity_category: Artifact = "affinity_category.npy"
    affinity_value: Artifact = "affinity_value.npy"


class RankingSpec(_Spec, frozen=True):
    """The ranker stage. Its files are read from the ranker model's served version folder."""

    model: Name
    feature_spec: Artifact = "features.json"
    tables: FeatureTableFiles = FeatureTableFiles()
    user_ids: Artifact = "user_ids.json"  # JSON list; row u + 1 is user_ids[u], row 0 unknown
    unknown_user_row: Annotated[int, Meta(ge=0)] = 0
    candidates: Annotated[int, Meta(ge=1, le=1000)] = 100
    recent_items: Annotated[int, Meta(ge=1, le=1000)] = 50
    recent_age_step_s: Annotated[float, Meta(gt=0)] = 86400.0


class RecommendSpec(_Kind, frozen=True, tag="recommend"):
    """history -> `query_encoder` -> candidates over `item_embeddings` -> `ranking` -> top k."""

    query_encoder: Name
    item_embeddings: Artifact = "item_embeddings.npy"  # float32 [n_items, dim]
    popularity: Artifact = "popularity.npy"  # float [n_items]: the cold-start order
    catalog: CatalogFiles = CatalogFiles()
    max_history: Annotated[int, Meta(ge=1, le=1000)] = 50
    ranking: RankingSpec | None = None

    @property
    def models(self) -> list[str]:
        return [self.query_encoder] + ([self.ranking.model] if self.ranking else [])


class ClassifyHead(_Spec, frozen=True):
    """One `task` of /v1/classify: a model whose output `logits` has one column per label."""

    task: Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[a-z0-9_]+$")]
    model: Name
    labels: Annotated[list[Annotated[str, Meta(min_length=1)]], Meta(min_length=2)]


class ClassifySpec(_Kind, frozen=True, tag="classify"):
    heads: Annotated[list[ClassifyHead], Meta(min_length=1)]
    tokenizer: Artifact = "tokenizer.json"
    max_tokens: Tokens = 128

    def __post_init__(self) -> None:
        tasks = [h.task for h in self.heads]
        if len(tasks) != len(set(tasks)):
            raise ValueError(f"duplicate classify tasks in {tasks}")

    @property
    def models(self) -> list[str]:
        return [h.model for h in self.heads]


class ScoreSpec(_Kind, frozen=True, tag="score"):
    """session -> features (`preprocess`, read from the model's version folder) -> `model`."""

    model: Name
    preprocess: Artifact = "preprocess.json"  # a ScorePreprocessing
    threshold: Annotated[float, Meta(ge=0, le=1)] = 0.5

    @property
    def models(self) -> list[str]:
        return [self.model]


class OrderScoreSpec(_Kind, frozen=True, tag="order_score"):
    """order line -> features (the customer's and product's `history`, read from this pipeline's
    version folder, as of the line's time; `preprocess`, read from the model's) -> `model`."""

    model: Name
    preprocess: Artifact = "preprocess.json"  # a ScorePreprocessing, in the model's version folder
    history: Artifact = "order_history.npz"  # server.contract.order_history.OrderHistory
    threshold: Annotated[float, Meta(ge=0, le=1)] = 0.5

    @property
    def models(self) -> list[str]:
        return [self.model]


class ScorePreprocessing(_Spec, frozen=True):
    """`preprocess.json` of a score model: how a session (or an order line's features) becomes
    its two input tensors."""

    numeric: list[str]
    log1p: list[str]
    mean: list[float]
    std: list[float]
    categorical: list[str]
    vocab: dict[str, list[str]]
    bias: float
    contributions: list[str]  # output column names of `contributions`, in order

    def __post_init__(self) -> None:
        if not (len(self.numeric) == len(self.mean) == len(self.std)):
            raise ValueError("numeric, mean and std differ in length")
        if set(self.log1p) - set(self.numeric):
            extra = sorted(set(self.log1p) - set(self.numeric))
            raise ValueError(f"log1p names non-numeric columns {extra}")
        missing = [c for c in self.categorical if c not in self.vocab]
        if missing:
            raise ValueError(f"vocab lacks categorical column(s) {missing}")
        if len(self.contributions) != len(self.numeric) + len(self.categorical):
            raise ValueError("contributions must name every numeric and categorical column")


PipelineSpec = (
    SearchSpec
    | RecommendSpec
    | ClassifySpec
    | ScoreSpec
    | OrderScoreSpec
    | AnswerSpec
    | ForecastSpec
)


class _File(_Spec, frozen=True):
    """What `pipeline.toml` holds: the pipeline's name (= folder) and its spec, tagged by kind."""

    name: Name
    spec: PipelineSpec


def encode_pipeline_spec(name: str, spec: PipelineSpec) -> bytes:
    return msgspec.toml.encode(_File(name=name, spec=spec))


def decode_pipeline_spec(text: str | bytes) -> tuple[str, PipelineSpec]:
    """(name, spec); raises msgspec.ValidationError / DecodeError naming the field."""
    f = msgspec.toml.decode(text, type=_File)
    return f.name, f.spec


def load_pipeline_spec(path: Path) -> tuple[str, PipelineSpec]:
    return decode_pipeline_spec(path.read_bytes())
