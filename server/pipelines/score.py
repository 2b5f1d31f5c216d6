"""Purchase-intent / risk score: session features -> the additive student -> probability, label
at the spec's threshold, and exact per-feature contributions (logit units)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import msgspec
import numpy as np

from server.budget import Budget
from server.contract.pipelines import ScorePreprocessing, ScoreSpec, artifact_path
from server.errors import BadRequest, ModelLoadError
from server.pipelines.base import InferModel, ModelSource, infer_within
from server.schemas.v1 import Contribution, ScoreRequest, ScoreResponse

__all__ = ["ScorePipeline"]


class ScorePipeline:
    """Preprocessing comes from the model's own version folder (`spec.preprocess`), so a reload of
    the model and its preprocessing can never disagree."""

    kind: ClassVar[str] = "score"

    def __init__(self, spec: ScoreSpec, model: InferModel, pre: ScorePreprocessing) -> None:
        self.spec = spec
        self.model = model
        self.threshold = spec.threshold
        self.numeric = pre.numeric
        self.log1p = np.array([c in set(pre.log1p) for c in pre.numeric])
        self.mean = np.asarray(pre.mean, np.float64)
        self.std = np.asarray(pre.std, np.float64)
        self.categorical = pre.categorical
        self.vocab = {c: {v: i for i, v in enumerate(vals)} for c, vals in pre.vocab.items()}
        self.bias = pre.bias
        self.feature_names = pre.contributions

    @classmethod
    def load(cls, spec: ScoreSpec, folder: Path, models: ModelSource) -> ScorePipeline:
        model = models.get_model(spec.model)
        path = artifact_path(model.folder, spec.preprocess)
        try:
            pre = msgspec.json.decode(path.read_bytes(), type=ScorePreprocessing)
        except (OSError, msgspec.MsgspecError) as exc:
            raise ModelLoadError(f"{spec.model}/{model.version}/{spec.preprocess}: {exc}") from None
        return cls(spec, model, pre)

    def versions(self) -> dict[str, str]:
        return {self.model.name: str(self.model.version)}

    def features(self, session: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        num = np.array([float(session[n]) for n in self.numeric], np.float64)
        if not np.isfinite(num).all():
            bad = self.numeric[int(np.argmin(np.isfinite(num)))]
            raise BadRequest(f"session.{bad}: must be a finite number")
        num = np.where(self.log1p, np.log1p(np.maximum(num, 0.0)), num)
        x = ((num - self.mean) / self.std).astype(np.float32)[None, :]
        cat = np.array(
            [[self.vocab[c].get(_category(session[c]), 0) for c in self.categorical]],
            dtype=np.int64,
        )
        return x, cat

    async def run(self, request: ScoreRequest, budget: Budget) -> ScoreResponse:
        with budget.stage("features"):
            x, cat = self.features(msgspec.structs.asdict(request.session))
        budget.check("model")
        with budget.stage("model"):
            inputs = {"numeric": x, "categorical": cat}
            res = await infer_within(self.model, inputs, budget, "session")
        prob = float(res.outputs["probability"][0, 0])
        contrib = res.outputs["contributions"][0].tolist()
        pairs = sorted(zip(self.feature_names, contrib, strict=True), key=lambda p: -abs(p[1]))
        return ScoreResponse(
            probability=prob,
            label=prob >= self.threshold,
            threshold=self.threshold,
            base=self.bias,
            explanation=[Contribution(f, c) for f, c in pairs],
            model_versions=self.versions(),
        )


def _category(value: Any) -> str:
    # the dataset's integer codes (Browser, Region, ...) are vocabulary strings
    if isinstance(value, bool):
        return str(value).upper()
    return str(value)
