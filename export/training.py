"""Small shared training helpers: seeding, thread limits, a minibatch loop with early stopping.

This machine has 2 cores shared with other jobs: training uses at most 2 torch threads and every
loop is bounded by epochs, an early-stopping patience and a wall-clock budget.
"""

from __future__ import annotations

import copy
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

__all__ = [
    "FitResult",
    "distillation_loss",
    "fit",
    "minibatches",
    "seed_everything",
    "param_count",
]


def seed_everything(seed: int, threads: int = 2) -> None:
    import random

    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)


def param_count(module) -> int:
    return int(sum(p.numel() for p in module.parameters()))


def distillation_loss(student_logits, teacher_logits, temperature: float, dim: int = -1):
    """The soft-target loss of knowledge distillation: KL(teacher || student) between the
    softmaxes (over `dim`) at `temperature`, times T^2 so its gradients keep the label loss's
    scale."""
    import torch.nn.functional as F

    t = temperature
    kl = F.kl_div(
        F.log_softmax(student_logits / t, dim),
        F.log_softmax(teacher_logits / t, dim),
        log_target=True,
        reduction="batchmean",
    )
    return kl * t * t


def minibatches(
    n: int, batch_size: int, rng: np.random.Generator, shuffle: bool = True
) -> Iterator[np.ndarray]:
    order = rng.permutation(n) if shuffle else np.arange(n)
    for i in range(0, n, batch_size):
        yield order[i : i + batch_size]


@dataclass
class FitResult:
    best_score: float
    epochs: int
    seconds: float


def _progress(batches: Iterator[np.ndarray], total: int, desc: str):
    from tqdm import tqdm

    return tqdm(
        batches,
        total=total,
        desc=desc,
        leave=False,
        file=sys.stderr,
        mininterval=1.0,
        disable=None,
    )


def _train_epoch(model, opt, step, bar, out_of_budget: Callable[[], bool], sched=None) -> None:
    """One pass of Adam steps over `bar`'s minibatches, stopping early when out of budget."""
    import torch

    model.train()
    for idx in bar:
        opt.zero_grad()
        loss = step(idx)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        if sched is not None:
            sched.step()
        bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
        if out_of_budget():
            break


def _cosine_schedule(opt, total_steps: int):
    import math

    import torch

    warm = max(1, total_steps // 20)

    def factor(i: int) -> float:
        if i < warm:
            return (i + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (i - warm) / max(1, total_steps - warm))))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def _evaluate(model, evaluate: Callable[[], float]) -> float:
    import torch

    model.eval()
    with torch.no_grad():
        return float(evaluate())


def fit(
    model,
    step: Callable[[np.ndarray], object],
    n_train: int,
    evaluate: Callable[[], float],
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    patience: int = 2,
    budget_s: float = 120.0,
    desc: str = "train",
    weight_decay: float = 0.0,
    cosine: bool = False,
) -> FitResult:
    """Adam on `step(batch_idx) -> loss`, keeping the weights of the best `evaluate()` (higher is better).

    Stops after `epochs`, after `patience` epochs without improvement, or when `budget_s` seconds
    of this process's CPU time are spent: CPU time, not wall time, so that a loaded shared machine
    changes the training less (not nothing: a shared core also makes each CPU second slower).
    `cosine`: the learning rate warms up linearly over the first 5% of the planned steps
    (`epochs` passes), then follows a cosine down to 0 at the last planned step.
    """
    import torch

    opt = torch.optim.Adam(
        [p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=weight_decay
    )
    rng = np.random.default_rng(seed)
    best, best_state, bad, t0, done = -np.inf, None, 0, time.perf_counter(), 0
    cpu0 = time.process_time()

    def out_of_budget() -> bool:
        return time.process_time() - cpu0 > budget_s

    n_batches = (n_train + batch_size - 1) // batch_size
    sched = _cosine_schedule(opt, epochs * n_batches) if cosine else None
    for epoch in range(epochs):
        bar = _progress(
            minibatches(n_train, batch_size, rng), n_batches, f"{desc} {epoch + 1}/{epochs}"
        )
        _train_epoch(model, opt, step, bar, out_of_budget, sched)
        score = _evaluate(model, evaluate)
        done = epoch + 1
        print(f"  {desc}: epoch {done} valid {score:.4f}", file=sys.stderr)
        if score > best:
            best, best_state, bad = score, copy.deepcopy(model.state_dict()), 0
        else:
            bad += 1
        if bad >= patience or out_of_budget():
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return FitResult(float(best), done, round(time.perf_counter() - t0, 1))
