"""Cancellation risk (`/v1/score`, task cancellation_risk): an order line as the storefront knows
it -> the customer's and product's history as of the line's invoice time (looked up in this
pipeline's `order_history.npz`, never sent by the client) -> the additive student -> probability,
decision at the spec's threshold and exact per-feature contributions (logit units).

The features are computed by `server.contract.order_history.order_line_features`, the function
export trained on, over the tables export wrote: a customer or product the history does not know
has no history (a new customer), as in training.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import ClassVar

import numpy as np

from server.budget import Budget
from server.contract.order_history import (
    FEATURES,
    OrderHistory,
    order_line_features,
    time_categories,
)
from server.contract.pipelines import OrderScoreSpec, ScorePreprocessing, artifact_path
from server.errors import BadRequest, ModelLoadError
from server.pipelines.base import InferModel, ModelSource, infer_within
from server.pipelines.score import Standardizer, explained, read_preprocessing
from server.schemas.v1 import OrderLine, ScoreRequest, ScoreResponse

__all__ = ["OrderScorePipeline"]

CATEGORICAL = ["country", "hour", "weekday", "month"]
EPOCH = datetime(1970, 1, 1)
EARLIEST, LATEST = datetime(2000, 1, 1), datetime(2100, 1, 1)
SECOND = timedelta(seconds=1)


class OrderScorePipeline:
    kind: ClassVar[str] = "order_score"

    def __init__(
        self,
        spec: OrderScoreSpec,
        model: InferModel,
        pre: ScorePreprocessing,
        history: OrderHistory,
    ) -> None:
        if pre.numeric != FEATURES or pre.categorical != CATEGORICAL:
            raise ModelLoadError(
                f"{model.name}/{model.version}/{spec.preprocess}: features {pre.numeric} + "
                f"{pre.categorical} are not the server's order-line features "
                f"{FEATURES} + {CATEGORICAL}"
            )
        self.spec = spec
        self.model = model
        self.threshold = spec.threshold
        self.std = Standardizer(pre)
        self.history = history

    @classmethod
    def load(cls, spec: OrderScoreSpec, folder: Path, models: ModelSource) -> OrderScorePipeline:
        model = models.get_model(spec.model)
        pre = read_preprocessing(model, spec.preprocess)
        path = artifact_path(folder, spec.history)
        try:
            history = OrderHistory.load(path)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(
                f"{folder.parent.name}/{folder.name}/{spec.history}: {exc}"
            ) from None
        return cls(spec, model, pre, history)

    def versions(self) -> dict[str, str]:
        return {self.model.name: str(self.model.version)}

    def features(self, line: OrderLine) -> dict[str, np.ndarray]:
        if not EARLIEST <= line.invoice_time < LATEST:
            raise BadRequest(
                "$.order_line.invoice_time: must be in 2000-01-01T00:00:00 .. 2099-12-31T23:59:59"
            )
        seconds = np.array([(line.invoice_time - EPOCH) // SECOND], np.int64)
        num = order_line_features(
            self.history,
            self.history.customer_rows([line.customer_id]),
            self.history.product_rows([line.stock_code.upper()]),
            seconds,
            np.array([line.quantity], np.float64),
            np.array([line.unit_price], np.float64),
        )[0]
        cats = {"country": line.country, **{k: v[0] for k, v in time_categories(seconds).items()}}
        return self.std.inputs(num, cats)

    async def run(self, request: ScoreRequest, budget: Budget) -> ScoreResponse:
        if request.order_line is None:
            raise BadRequest(f"$.order_line: required for task '{request.task}'")
        with budget.stage("features"):
            inputs = self.features(request.order_line)
        budget.check("model")
        with budget.stage("model"):
            res = await infer_within(self.model, inputs, budget, "order_line")
        return explained(res, self.std, self.threshold, self.versions())
