"""Request and response Structs of the shop endpoints; limits live in the types, so a bad field
fails decoding with its `$.path`."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from msgspec import Meta

from server.schemas.base import Wire

__all__ = [
    "Answer",
    "AnswerRequest",
    "AnswerResponse",
    "ClassifyRequest",
    "ClassifyResponse",
    "ClassifyResult",
    "ForecastPoint",
    "ForecastRequest",
    "ForecastResponse",
    "Contribution",
    "Item",
    "OrderLine",
    "PipelineModel",
    "PipelineStatus",
    "PipelinesResponse",
    "RecommendFilters",
    "RecommendRequest",
    "RecommendResponse",
    "ScoreRequest",
    "ScoreResponse",
    "ScoreTask",
    "SearchFilters",
    "SearchRequest",
    "SearchResponse",
    "Session",
]


class _In(Wire):
    pass


class _Out(Wire):
    pass


BudgetMs = Annotated[int, Meta(ge=1, le=60_000, description="latency budget in ms")]
Price = Annotated[float, Meta(ge=0, le=1e9)]
Count = Annotated[int, Meta(ge=0, le=1_000_000)]
Seconds = Annotated[float, Meta(ge=0, le=1e8)]
Rate = Annotated[float, Meta(ge=0, le=1)]


# -- score ----------------------------------------------------------------------------------------


class Session(_In):
    """One browsing session, under the Online Shoppers Intention dataset's own column names."""

    Administrative: Count
    Administrative_Duration: Seconds
    Informational: Count
    Informational_Duration: Seconds
    ProductRelated: Count
    ProductRelated_Duration: Seconds
    BounceRates: Rate
    ExitRates: Rate
    PageValues: Annotated[float, Meta(ge=0, le=1e6)]
    SpecialDay: Rate
    Month: Literal[
        "Jan", "Feb", "Mar", "Apr", "May", "June", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
    ]
    OperatingSystems: Annotated[int, Meta(ge=0, le=1000)]
    Browser: Annotated[int, Meta(ge=0, le=1000)]
    Region: Annotated[int, Meta(ge=0, le=1000)]
    TrafficType: Annotated[int, Meta(ge=0, le=1000)]
    VisitorType: Annotated[str, Meta(min_length=1, max_length=64)]
    Weekend: bool


class OrderLine(_In):
    """One order line as the storefront knows it when the order is placed. The customer's and
    the product's history (orders, spend, past cancellations) is looked up server-side, as of
    `invoice_time`; an unknown or missing customer is scored as a new one."""

    stock_code: Annotated[str, Meta(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_\-]+$")]
    quantity: Annotated[int, Meta(ge=1, le=100_000)]
    unit_price: Annotated[float, Meta(gt=0, le=100_000, description="GBP per unit")]
    country: Annotated[str, Meta(min_length=1, max_length=64)]
    invoice_time: Annotated[
        datetime,
        Meta(tz=False, description="the shop's local time, no offset (2000-01-01 .. 2099-12-31)"),
    ]
    customer_id: Annotated[str, Meta(min_length=1, max_length=64)] | None = None


ScoreTask = Literal["purchase_intent", "cancellation_risk"]


class ScoreRequest(_In):
    """`task` purchase_intent scores a `session`; cancellation_risk scores an `order_line`."""

    task: ScoreTask = "purchase_intent"
    session: Session | None = None
    order_line: OrderLine | None = None
    budget_ms: BudgetMs | None = None


class Contribution(_Out):
    feature: str
    contribution: float


class ScoreResponse(_Out):
    probability: float
    label: bool
    threshold: float
    base: float
    explanation: list[Contribution]
    model_versions: dict[str, str]
    warnings: list[str] = []  # a model that failed its gate or is a preview (issue 10)


# -- classify -------------------------------------------------------------------------------------

Text = Annotated[str, Meta(min_length=1, max_length=5000)]


class ClassifyRequest(_In):
    texts: Annotated[list[Text], Meta(min_length=1, max_length=64)]
    task: Annotated[str, Meta(min_length=1, max_length=64, examples=["sentiment"])]
    budget_ms: BudgetMs | None = None


class ClassifyResult(_Out):
    label: str
    scores: dict[str, float]


class ClassifyResponse(_Out):
    results: list[ClassifyResult]
    model_versions: dict[str, str]
    warnings: list[str] = []  # a model that failed its gate or is a preview (issue 10)


# -- search and recommend -----------------------------------------------------------------------


class Item(_Out):
    item_id: str
    title: str
    price: float
    score: float


class SearchFilters(_In):
    price_min: Price | None = None
    price_max: Price | None = None


class SearchRequest(_In):
    query: Annotated[str, Meta(min_length=1, max_length=512)]
    k: Annotated[int, Meta(ge=1, le=100)] = 10
    filters: SearchFilters | None = None
    budget_ms: BudgetMs | None = None


class SearchResponse(_Out):
    items: list[Item]
    degraded: bool
    model_versions: dict[str, str]
    warnings: list[str] = []  # a model that failed its gate or is a preview (issue 10)


class RecommendFilters(_In):
    price_min: Price | None = None
    price_max: Price | None = None
    exclude_history: bool = True


class RecommendRequest(_In):
    history: Annotated[list[Annotated[str, Meta(max_length=64)]], Meta(max_length=1000)] = []
    user_id: Annotated[str, Meta(max_length=64)] | None = None
    k: Annotated[int, Meta(ge=1, le=100)] = 10
    filters: RecommendFilters | None = None
    budget_ms: BudgetMs | None = None


class RecommendResponse(_Out):
    items: list[Item]
    degraded: bool
    ignored_items: list[str]
    model_versions: dict[str, str]
    warnings: list[str] = []  # a model that failed its gate or is a preview (issue 10)


# -- answer (customer service) --------------------------------------------------------------------


class AnswerRequest(_In):
    """A customer's question, answered from the shop's knowledge base (issue 13)."""

    question: Annotated[str, Meta(min_length=1, max_length=2000)]
    k: Annotated[int, Meta(ge=1, le=20)] = 3
    budget_ms: BudgetMs | None = None


class Answer(_Out):
    faq_id: str
    question: str
    answer: str
    score: float


class AnswerResponse(_Out):
    answers: list[Answer]
    intent: str
    confidence: float  # the intent's probability
    handoff: bool  # out of scope or unsure: the storefront routes the question to a person
    model_versions: dict[str, str]
    warnings: list[str] = []  # a model that failed its gate or is a preview (issue 10)


# -- forecast (logistics) ------------------------------------------------------------------------


class ForecastRequest(_In):
    """Daily demand of one item for the `horizon_days` after `as_of` (issue 13); `as_of`
    (the origin, default the last day of the served history) sees the history up to it only."""

    item_id: Annotated[str, Meta(min_length=1, max_length=32)]
    horizon_days: Annotated[int, Meta(ge=1, le=28)]
    as_of: date | None = None
    budget_ms: BudgetMs | None = None


class ForecastPoint(_Out):
    date: str  # YYYY-MM-DD
    p50: float
    p90: float  # >= p50


class ForecastResponse(_Out):
    item_id: str
    forecasts: list[ForecastPoint]
    fallback: bool  # too little history: the item's category profile (or the global one)
    model_versions: dict[str, str]
    warnings: list[str] = []  # a model that failed its gate or is a preview (issue 10)


# -- the pipelines' own listing -------------------------------------------------------------------


class PipelineModel(_Out):
    name: str
    version: str  # "" when the model is not served
    gate: str  # "passed" | "failed" | "none" (no card) | "missing"


class PipelineStatus(_Out):
    name: str
    kind: str
    version: str
    state: str
    reason: str
    models: list[PipelineModel]


class PipelinesResponse(_Out):
    pipelines: list[PipelineStatus]
