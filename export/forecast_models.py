"""The forecast family's models: two baselines, the quantile-tree teacher, the distilled student.

All forecast `HORIZON` days from an origin; every output is in units and is zeroed on closed days
by the caller (the same mask for every model). Targets are scaled by each sample's scale (the
item's mean of its last 56 days, known at the origin); losses weight a sample by its scale, so a
scaled loss is the loss in units (what WAPE counts).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from export.forecast_data import HORIZON, DemandTable
from export.forecast_features import Samples, all_horizons, teacher_rows

__all__ = [
    "MLP_CONFIGS",
    "StudentConfig",
    "TeacherConfig",
    "fit_student",
    "fit_teacher",
    "moving_average",
    "pinball",
    "seasonal_naive",
]


# training targets over 100 x the item's recent mean are clipped (one-off bulk orders)
MAX_SCALED = 100.0


def sample_weight(scale: np.ndarray) -> np.ndarray:
    """A sample's weight in the losses: its scale (a scaled loss is then the loss in units, what
    WAPE counts) over the mean, capped at 20 so that a few huge items do not take all of it."""
    return np.minimum(scale / scale.mean(), 20.0)


def pinball(y: np.ndarray, q: np.ndarray, tau: float) -> np.ndarray:
    d = y - q
    return np.maximum(tau * d, (tau - 1) * d)


def _history(t: DemandTable, s: Samples, days: int) -> np.ndarray:
    """float32 [n, days]: each sample's last `days` columns up to its origin, oldest first."""
    cols = s.origins[:, None] - days + 1 + np.arange(days)[None, :]
    return np.where(cols >= 0, t.quantity[s.rows[:, None], np.maximum(cols, 0)], 0.0)


def seasonal_naive(t: DemandTable, s: Samples) -> tuple[np.ndarray, np.ndarray]:
    """p50: the same weekday in the last week before the origin (the last 7 days, repeated; a
    Saturday repeats last Saturday's 0); p90: the 90th percentile of that weekday's last four."""
    last = _history(t, s, 28)  # four weeks, oldest first: column 21 + k is the last week's day k
    k = np.arange(HORIZON) % 7
    p50 = last[:, 21 + k]
    weeks = np.stack([last[:, 7 * w + k] for w in range(4)], axis=2)
    return p50, np.maximum(np.percentile(weeks, 90, axis=2), p50)


def moving_average(
    t: DemandTable, s: Samples, closed: np.ndarray, days: int = 28
) -> tuple[np.ndarray, np.ndarray]:
    """p50: the mean of the last `days` open days; p90: their 90th percentile (every day ahead)."""
    cols = s.origins[:, None] - days + 1 + np.arange(days)[None, :]
    hist = _history(t, s, days)
    open_ = ~closed[np.maximum(cols, 0)]
    n = np.maximum(open_.sum(1), 1)
    mean = (hist * open_).sum(1) / n
    masked = np.where(open_, hist, np.nan)
    p90 = np.nan_to_num(np.nanpercentile(masked, 90, axis=1))
    p90 = np.maximum(p90, mean)
    return np.repeat(mean[:, None], HORIZON, 1), np.repeat(p90[:, None], HORIZON, 1)


# -- the teacher ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TeacherConfig:
    rows: int  # (sample, day ahead) training rows
    max_iter: int
    learning_rate: float = 0.1
    max_leaf_nodes: int = 31
    min_samples_leaf: int = 40
    every: int = 10  # validation checks every `every` trees
    patience: int = 3


@dataclass
class Teacher:
    """Two quantile HistGradientBoosting models over scaled targets (p50 and p90)."""

    p50: object
    p90: object
    iters: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def predict(self, t: DemandTable, s: Samples) -> tuple[np.ndarray, np.ndarray]:
        """Units [n, HORIZON]: every sample at every day ahead; p90 >= p50."""
        x = all_horizons(t, s)
        sc = s.scale[:, None]
        a = np.maximum(self.p50.predict(x).reshape(len(s), HORIZON), 0) * sc  # type: ignore[attr-defined]
        b = np.maximum(self.p90.predict(x).reshape(len(s), HORIZON), 0) * sc  # type: ignore[attr-defined]
        return a, np.maximum(a, b)


def _grow(model, x, y, valid: Samples, vx: np.ndarray, tau: float, cfg: TeacherConfig) -> int:
    """Grow `model` (warm start) by `cfg.every` trees at a time while its validation loss in
    units (pinball at tau: WAPE's numerator for p50, open days) improves, stopping after
    `cfg.patience` checks without improvement; the trees after the best check are dropped.
    Returns the tree count."""
    assert valid.y is not None and valid.open is not None
    best, best_n, bad = np.inf, cfg.every, 0
    for n in range(cfg.every, cfg.max_iter + 1, cfg.every):
        model.set_params(max_iter=n, warm_start=True)
        model.fit(x, y)
        p = np.maximum(model.predict(vx).reshape(valid.y.shape), 0) * valid.scale[:, None]
        loss = float((pinball(valid.y, p, tau) * valid.open).sum())
        if loss < best:
            best, best_n, bad = loss, n, 0
        else:
            bad += 1
            if bad >= cfg.patience:
                break
    # HistGradientBoosting cannot prune: keep the first best_n trees of the fitted ensemble
    model._predictors = model._predictors[:best_n]
    model.set_params(max_iter=best_n, warm_start=False)
    return best_n


def fit_teacher(
    t: DemandTable,
    train: Samples,
    cfg: TeacherConfig,
    seed: int,
    valid: Samples | None = None,
    iters: dict[str, int] | None = None,
) -> Teacher:
    """Fit p50 and p90 on `cfg.rows` random (sample, day ahead) rows of `train`, drawn with
    probability `sample_weight(scale)` (the loss in units, as a weight; scikit-learn's weighted
    binning computes a weighted percentile per bin edge and took minutes); with `valid` choose
    each model's number of trees on it, else grow `iters` trees."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    w = sample_weight(train.scale)
    pick = rng.choice(len(train), cfg.rows, p=w / w.sum())  # weights by sampling: see the docstring
    ahead = rng.integers(1, HORIZON + 1, cfg.rows)
    sub = Samples(train.rows[pick], train.origins[pick], train.x[pick], train.scale[pick], None)
    x = teacher_rows(t, sub, ahead)
    assert train.y is not None
    y = np.minimum(train.y[pick, ahead - 1] / sub.scale, MAX_SCALED)
    vx = all_horizons(t, valid) if valid is not None else None
    models, chosen = {}, {}
    for name, tau in (("p50", 0.5), ("p90", 0.9)):
        m = HistGradientBoostingRegressor(
            loss="quantile",
            quantile=tau,
            max_iter=cfg.max_iter if iters is None else iters[name],
            learning_rate=cfg.learning_rate,
            max_leaf_nodes=cfg.max_leaf_nodes,
            min_samples_leaf=cfg.min_samples_leaf,
            early_stopping=False,
            random_state=seed,
        )
        if valid is not None:
            assert vx is not None
            chosen[name] = _grow(m, x, y, valid, vx, tau, cfg)
        else:
            m.fit(x, y)
            chosen[name] = int(m.max_iter)
        models[name] = m
    return Teacher(models["p50"], models["p90"], chosen, round(time.perf_counter() - t0, 1))


# -- the student ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StudentConfig:
    samples: int  # training origins (each with all HORIZON days ahead)
    hidden: int
    epochs: int
    batch_size: int = 256
    lr: float = 2e-3
    alpha: float = 0.5  # weight of the pinball loss on real targets beside the distillation
    budget_s: float = 60.0


MLP_CONFIGS = ("features -> clamp((x - mean) / std, -8, 8) -> Linear(hidden) -> GELU -> Linear(hidden) -> "
               "GELU -> Linear(2 x HORIZON): p50 = softplus(a) x scale, p90 = p50 + softplus(g) x scale")  # fmt: skip


def _student_module(n_in: int, hidden: int, mean: np.ndarray, std: np.ndarray):
    import torch
    from torch import nn

    class Student(nn.Module):
        """features float32 [n, F], scale float32 [n, 1] -> p50, p90 float32 [n, HORIZON]."""

        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
            self.register_buffer("std", torch.tensor(std, dtype=torch.float32))
            self.net = nn.Sequential(
                nn.Linear(n_in, hidden),
                nn.GELU(),
                nn.Linear(hidden, hidden),
                nn.GELU(),
                nn.Linear(hidden, 2 * HORIZON),
            )

        def forward(self, features, scale):
            # clamped: an item silent for 56 days has history at hundreds of times its scale
            out = self.net(((features - self.mean) / self.std).clamp(-8.0, 8.0))
            p50 = nn.functional.softplus(out[:, :HORIZON]) * scale
            p90 = p50 + nn.functional.softplus(out[:, HORIZON:]) * scale
            return p50, p90

    return Student()


def student_predict(model, s: Samples) -> tuple[np.ndarray, np.ndarray]:
    import torch

    with torch.no_grad():
        a, b = model(torch.from_numpy(s.x), torch.from_numpy(s.scale[:, None]))
    return a.numpy(), b.numpy()


def wape(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.abs(y - p).sum() / max(float(np.abs(y).sum()), 1e-9))


def fit_student(
    train: Samples,
    teacher_q: tuple[np.ndarray, np.ndarray],
    cfg: StudentConfig,
    seed: int,
    valid: Samples | None = None,
    epochs: int | None = None,
):
    """The student distilled from the teacher's quantiles `teacher_q` (units [n, HORIZON]) on
    `train`, plus `cfg.alpha` x the pinball loss on its real targets, closed days masked. With
    `valid`, keeps the epoch of the best validation WAPE (p50, closed days zeroed); else trains
    `epochs` epochs. Returns (model, {epochs, valid_wape, seconds})."""
    import torch

    torch.manual_seed(seed)
    t0, cpu0 = time.perf_counter(), time.process_time()
    x = train.x
    # a feature constant in training (days to Christmas under 60: no training origin is that
    # close, the table starts on 1 December) keeps std 1: a 1e-3 floor turned the test origin's
    # first non-constant value into a -250 sigma input
    mean, std = x.mean(0), x.std(0)
    std = np.where(std < 1e-3, 1.0, std).astype(np.float32)
    model = _student_module(x.shape[1], cfg.hidden, mean, std)
    sc = train.scale[:, None]
    assert train.y is not None
    tensors = [
        torch.from_numpy(a.astype(np.float32))
        for a in (x, sc, *(np.minimum(v / sc, MAX_SCALED) for v in (*teacher_q, train.y)))
    ]
    weight = sample_weight(train.scale)[:, None]
    assert train.open is not None
    w = torch.from_numpy((train.open * weight).astype(np.float32))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    rng = np.random.default_rng(seed)
    n_epochs = cfg.epochs if epochs is None else epochs
    best, best_state, best_epoch, done = np.inf, None, n_epochs, 0
    for epoch in range(n_epochs):
        model.train()
        for idx in np.array_split(rng.permutation(len(x)), max(1, len(x) // cfg.batch_size)):
            xb, sb, t50, t90, yb = (a[idx] for a in tensors)
            wb = w[idx]
            p50, p90 = model(xb, torch.ones_like(sb))
            distil = (p50 - t50).abs() + (p90 - t90).abs()
            real = _pinball_t(yb, p50, 0.5) + _pinball_t(yb, p90, 0.9)
            loss = ((distil + cfg.alpha * real) * wb).sum() / wb.sum().clamp(min=1.0)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
        done = epoch + 1
        if valid is not None:
            model.eval()
            assert valid.y is not None
            p, _ = student_predict(model, valid)
            score = wape(valid.y, p * valid.open)
            if score < best:
                best, best_epoch = score, done
                best_state = {k: v.clone() for k, v in model.state_dict().items()}
        if time.process_time() - cpu0 > cfg.budget_s:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    info = {
        "epochs": best_epoch if valid is not None else done,
        "valid_wape": None if valid is None else round(best, 4),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    return model, info


def _pinball_t(y, q, tau: float):
    d = y - q
    return (tau * d).maximum((tau - 1) * d)
