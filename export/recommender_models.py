"""The recommender's teacher and student (torch), what each tier trains, and in which order.

Teacher: SASRec-style causal transformer (`TIERS[...].blocks` blocks of 2 heads, tied item
embeddings + a per-item bias started at log popularity, full catalogue softmax, loss on every
position, cosine learning rate). Student: one block with one head (no head split: about a third
of the teacher's ONNX nodes; batch-1 latency is mostly per-node overhead at this size) on a
history length chosen on validation, sharing the teacher's item embeddings and bias FROZEN (a
cheaper query encoder into the teacher's item space: the served item matrix is the teacher's),
its block, positions and norm started from the teacher's first block, positions and norm, and
trained on 0.5 labels + 0.5 KL to the teacher's softened (T=2) next-item distribution.

Order (full tier): the global-time split's teacher and student train on the events before the
test window, and are evaluated on it; the leave-one-out models CONTINUE from them on the
leave-one-out training events (a superset: no leave-one-out validation or test event is in the
time split's training, see `export.recommender_data`). One set of training runs gives both
tables. Preview and --quick train on leave-one-out only.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace

import numpy as np

from export.options import ExportOptions
from export.recommender_data import RecData, SeqSplit, popularity
from export.recommender_train import SeqTraining, model_metrics, train_seq
from export.training import FitResult

__all__ = ["TIERS", "Plan", "Trained", "plan_of", "train_all"]


@dataclass(frozen=True)
class Plan:
    """One tier: sizes, epochs and the CPU cap of each run (seconds of this process's CPU, about
    three times what the epochs take on a quiet machine: the epochs, not the cap, end a run
    there; a loaded machine makes each CPU second slower and may hit it).

    The student starts at its teacher's first block and learns at a low rate (2.5e-4 in full):
    at 4e-3 its validation NDCG fell after the first epoch, to 93% of a well-trained teacher's;
    at 2.5e-4 it keeps ~98%. The teacher's 12 epochs: validation NDCG@10 on the time split went
    0.155 (4 epochs), 0.180 (8), 0.192 (12), at ~15 s of wall time per epoch on a quiet machine."""

    width: int
    blocks: int
    max_len: int
    teacher: SeqTraining
    student: SeqTraining
    tune: SeqTraining | None  # leave-one-out continuation (None: no time split)
    student_histories: tuple[int, ...]  # the student's history lengths tried on validation
    budget: str  # the wall-clock budget the tier is sized for (the card says it)


TIERS = {
    "quick": Plan(
        32,
        2,
        20,
        SeqTraining("teacher SASRec", epochs=3, budget_s=6),
        SeqTraining("student SASRec (distil)", epochs=2, budget_s=6),
        SeqTraining("leave-one-out continuation", epochs=1, budget_s=6),
        (20, 10),
        "tests only",
    ),
    "preview": Plan(
        32,
        2,
        30,
        SeqTraining("teacher SASRec", epochs=2, budget_s=40, lr=1e-2, windows_per_user=1),
        SeqTraining("student SASRec (distil)", epochs=1, budget_s=15, lr=5e-4, windows_per_user=1),
        None,
        (30, 20),
        "recommender + ranker ~60 s wall on a quiet 2-core machine",
    ),
    "full": Plan(
        64,
        2,
        50,
        SeqTraining("teacher SASRec", epochs=12, budget_s=1000, lr=8e-3),
        SeqTraining("student SASRec (distil)", epochs=2, budget_s=150, lr=2.5e-4),
        SeqTraining("leave-one-out continuation", epochs=3, budget_s=300, lr=2e-3),
        (50, 30, 20),
        "7 min wall on a quiet 2-core machine",
    ),
}


def plan_of(opts: ExportOptions) -> tuple[str, Plan]:
    tier = "quick" if opts.quick else opts.tier
    return tier, TIERS[tier]


@dataclass
class Trained:
    teacher: object  # SASRec, frozen
    student: object  # SASRec, frozen
    time_teacher: object | None  # the global-time split's models (None: not trained)
    time_student: object | None
    fits: dict[str, dict]  # run -> epochs, best validation NDCG, seconds
    history_choice: dict  # student history length -> teacher's validation NDCG


def _frozen(model):
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def _teacher(data: RecData, split: SeqSplit, plan: Plan, seed: int):
    """A fresh teacher whose item bias starts at the log popularity of `split`'s training."""
    import torch

    from export.seqmodels import SASRec

    torch.manual_seed(seed)
    model = SASRec(data.n_items, plan.width, plan.blocks, 2, plan.max_len)
    with torch.no_grad():
        model.bias.copy_(torch.log1p(torch.tensor(popularity(split.train, data.n_items))))
    return model


def student_history(teacher, split: SeqSplit, lengths: tuple[int, ...]) -> tuple[int, dict]:
    """The shortest history whose teacher VALIDATION NDCG@10 keeps >= 99% of the longest's."""
    scores = {}
    full = teacher.max_len
    for n in lengths:
        hists = [h[-n:] for h in split.valid_hist]
        scores[n] = model_metrics(teacher, hists, split.valid_target)["ndcg@10"]
    best = max(lengths)
    ok = [n for n in lengths if scores[n] >= 0.99 * scores[best]]
    return min(ok) if ok else full, scores


def _student_from(teacher, max_len: int, layers=None):
    """One block, one head, on the teacher's item embeddings and bias, which stay FROZEN: the
    student is a cheaper query encoder into the teacher's item space, and the served item matrix
    is the teacher's. Its block, position embeddings and final norm start from `layers` (a
    student) or else from the teacher's first block, positions and norm (layer dropping)."""
    from export.seqmodels import SASRec

    d = teacher.item.embedding_dim
    student = SASRec(teacher.n_items, d, 1, 1, max_len)
    if layers is not None:
        state = dict(layers.state_dict())
    else:
        state = {k: v for k, v in teacher.state_dict().items() if not k.startswith("blocks.")}
        state |= {k: v for k, v in teacher.state_dict().items() if k.startswith("blocks.0.")}
        state["pos.weight"] = state["pos.weight"][:max_len]
    state["item.weight"], state["bias"] = teacher.item.weight, teacher.bias
    student.load_state_dict({k: v.detach().clone() for k, v in state.items()})
    return _shared_frozen(student)


def _shared_frozen(student):
    for p in student.parameters():
        p.requires_grad_(True)
    student.item.weight.requires_grad_(False)
    student.bias.requires_grad_(False)
    return student


def _record(fits: dict, name: str, r: FitResult) -> None:
    fits[name] = {"epochs": r.epochs, "valid_ndcg@10": round(r.best_score, 4), "s": r.seconds}


def _tune(model, split: SeqSplit, run: SeqTraining, seed: int, teacher=None):
    """`model` trained further on `split` (the time split's models -> leave-one-out); the
    starting weights stay when no epoch beats them on `split`'s validation."""
    start = model_metrics(model, split.valid_hist, split.valid_target)["ndcg@10"]
    start_state = copy.deepcopy(model.state_dict())
    r = train_seq(model, split, run, seed, teacher=teacher)
    if r.best_score < start:
        model.load_state_dict(start_state)
        return model, replace(r, best_score=start, epochs=0)
    return model, r


def train_all(data: RecData, plan: Plan, opts: ExportOptions) -> Trained:
    """Teacher, then the student's history length (on validation), then the student; with a
    time split, both first on it, then continued on leave-one-out."""
    fits: dict[str, dict] = {}
    first = data.time if plan.tune is not None else data.loo
    teacher = _teacher(data, first, plan, opts.seed)
    _record(fits, f"teacher ({first.name})", train_seq(teacher, first, plan.teacher, opts.seed))
    _frozen(teacher)
    length, by_length = student_history(teacher, first, plan.student_histories)
    opts.log(f"[recommender] student history {length} (teacher valid NDCG@10: {by_length})")
    student = _student_from(teacher, length)
    r = train_seq(student, first, plan.student, opts.seed, teacher=teacher)
    _record(fits, f"student ({first.name})", r)
    _frozen(student)
    if plan.tune is None:
        return Trained(teacher, student, None, None, fits, by_length)
    t_loo = copy.deepcopy(teacher)
    for p in t_loo.parameters():
        p.requires_grad_(True)
    t_loo, r = _tune(t_loo, data.loo, plan.tune, opts.seed)
    _record(fits, "teacher (leave-one-out continuation)", r)
    _frozen(t_loo)
    run = replace(plan.student, desc="student leave-one-out continuation (distil)")
    s_loo, r = _tune(_student_from(t_loo, length, student), data.loo, run, opts.seed, t_loo)
    _record(fits, "student (leave-one-out continuation)", r)
    return Trained(t_loo, _frozen(s_loo), teacher, student, fits, by_length)


def popularity_scores(counts: np.ndarray, n: int) -> np.ndarray:
    return np.broadcast_to(counts, (n, len(counts)))
