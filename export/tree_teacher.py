"""The gradient-boosted-trees teacher of the additive score families (risk, cancellation_risk).

sklearn's HistGradientBoosting, every choice on the validation split: early stopping watches the
validation rows (`X_val`), and the setting (learning rate, leaves) is the best of a small grid by
the family's metric on validation. Categories enter as their vocabulary codes (ordinal): skl2onnx
cannot convert HistGradientBoosting's native categorical splits, and the teacher is converted so
that it is timed in the runtime that serves the student (ONNX Runtime).

The ONNX teacher takes the student's own inputs (`numeric` float32, `categorical` int64); a
prefix graph casts the codes and concatenates them in front of the trees.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from export import onnx_tools

if TYPE_CHECKING:
    from collections.abc import Callable

    from export.risk_models import RiskSplit

__all__ = ["Teacher", "teacher_onnx", "train_teacher"]

ML_OPSET = 3  # ai.onnx.ml: TreeEnsembleClassifier as skl2onnx writes it


@dataclass
class Teacher:
    model: object  # the fitted HistGradientBoostingClassifier
    setting: dict  # the chosen learning rate and leaves, iterations run
    valid_metric: float
    tried: list[dict]  # every setting with its validation metric

    def prob(self, split: RiskSplit) -> np.ndarray:
        return self.model.predict_proba(features(split))[:, 1]

    @property
    def nodes(self) -> int:
        return int(sum(len(t[0].nodes) for t in self.model._predictors))


def features(split: RiskSplit) -> np.ndarray:
    return np.hstack([split.num, split.cat.astype(np.float32)])


def train_teacher(
    train: RiskSplit,
    valid: RiskSplit,
    grid: tuple[dict, ...],
    metric: Callable[[np.ndarray, np.ndarray], float],
    *,
    seed: int,
    max_iter: int = 500,
) -> Teacher:
    """The best of `grid` (HistGradientBoostingClassifier keyword sets: learning_rate,
    max_leaf_nodes, min_samples_leaf, l2_regularization) by `metric(y, prob)` on `valid`; each
    fit early-stops on `valid`'s log loss (20 rounds without improvement)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    best: Teacher | None = None
    tried = []
    for params in grid:
        gbt = HistGradientBoostingClassifier(
            **params,
            max_iter=max_iter,
            early_stopping=True,
            n_iter_no_change=20,
            random_state=seed,
        )
        gbt.fit(features(train), train.y, X_val=features(valid), y_val=valid.y)
        score = float(metric(valid.y, gbt.predict_proba(features(valid))[:, 1]))
        setting = {**params, "iterations": int(gbt.n_iter_)}
        tried.append({**setting, "valid_metric": round(score, 4)})
        if best is None or score > best.valid_metric:
            best = Teacher(gbt, setting, score, tried)
    assert best is not None
    return best


def _prefix(n_num: int, n_cat: int, opsets: dict[str, int]):
    """(numeric, categorical) -> X = concat(numeric, float(categorical)), the trees' input."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["categorical"], ["categorical_f"], to=TensorProto.FLOAT),
            helper.make_node("Concat", ["numeric", "categorical_f"], ["X"], axis=1),
        ],
        "teacher_inputs",
        [
            helper.make_tensor_value_info("numeric", TensorProto.FLOAT, [None, n_num]),
            helper.make_tensor_value_info("categorical", TensorProto.INT64, [None, n_cat]),
        ],
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, n_num + n_cat])],
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()]
    )


def teacher_onnx(teacher: Teacher, n_num: int, n_cat: int, path: Path) -> Path:
    """The teacher as ONNX at `path`, with the student's inputs; output `probabilities` [n, 2].
    Raises whatever skl2onnx raises for a model it cannot convert."""
    import onnx
    from onnx import compose
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    with warnings.catch_warnings():  # onnx warns that skl2onnx writes bools as int attributes
        warnings.simplefilter("ignore", DeprecationWarning)
        trees = to_onnx(
            teacher.model,
            initial_types=[("X", FloatTensorType([None, n_num + n_cat]))],
            options={id(teacher.model): {"zipmap": False}},
            target_opset={"": onnx_tools.OPSET, "ai.onnx.ml": ML_OPSET},
        )
    opsets = {o.domain: o.version for o in trees.opset_import}
    prefix = _prefix(n_num, n_cat, opsets)
    prefix.ir_version = trees.ir_version
    model = compose.merge_models(prefix, trees, io_map=[("X", "X")])
    model.ir_version = min(model.ir_version, onnx_tools.IR_VERSION)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
