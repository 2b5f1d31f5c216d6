"""Review classifiers on the clothing reviews, from the pretrained teacher all-MiniLM-L6-v2
(offline wheel). Product search is its own family (`export.search`).

The family, step by step (one module each):
1. data (`text_data`): every cleaned review (a subset in the preview and --quick tiers), a random
   70/15/15 split, token ids;
2. baselines (`text_baselines`): TF-IDF + logistic regression, features and C chosen on validation;
3. teacher pass (`text_distil`): MiniLM over every review once (cached), pooled layer outputs;
4. teacher and student heads (`text_distil`, fitted in `text_heads`, modules in `text_models`): a
   lexical bag + a linear head over the sentence embedding of all six layers (teacher) or of the
   first two (student; distilled from the teacher's soft targets where that is better on
   validation), logistic regressions stacked with a weight chosen on validation;
5. ONNX export, int8 modes, numeric checks, latency (`text_onnx`);
6. the served models, each with its card and gate: `classify_sentiment`, `classify_recommended`,
   `classify_department` (input_ids -> logits, `text_classify`), and the `classify/` pipeline.

Export: torch.onnx.export + ONNX Runtime's quantizer, not Optimum. optimum-onnx resolves here
(transformers 4.57), but our graphs are custom (a lexical bag and a linear head per task, the mask
computed in-graph from pad id 0, a truncated encoder), so Optimum's task exporters would need
custom configs and its quantizer is a wrapper over the same `quantize_dynamic`.
"""

from __future__ import annotations

import time

from export.options import ExportOptions
from export.text_baselines import classify_baseline_row
from export.text_classify import export_classifier, write_classify_pipeline
from export.text_data import TASKS, TextIds, load_text_data, plan_for, tokenize_all, tokenizer_json
from export.text_distil import ALPHAS, build_models, teacher_pass
from export.text_heads import BAG_C, BETAS, EMB_C
from export.text_models import STUDENT_LAYERS, load_teacher
from export.text_onnx import Bench, TextRun
from export.training import seed_everything
from server.contract.pipelines import ClassifyHead

__all__ = ["TASKS", "export_text", "load_teacher"]

BUDGET_S = {"full": 540, "preview": 60}  # wall seconds on the 2-core machine (issue 10)
SEED_NOTE = (
    "The seed article's LSTM row is no longer trained: at ~40 s per head it cost a quarter of the "
    "9-minute budget for a row that is reported, never gated (round 2: macro-F1 0.49 sentiment, "
    "0.70 recommended, below every other row)."
)


HEAD_FIT = (
    f"class-balanced logistic regressions (scikit-learn lbfgs): the bag with C in {list(BAG_C)}, "
    f"the embedding with C in {list(EMB_C)}, stacked with weight beta in {list(BETAS)}; each "
    "chosen on validation macro-F1"
)


def kept_heads(opts: ExportOptions, data, built: set[str]) -> list[ClassifyHead]:
    """Heads this build did not publish (failed gate) whose earlier model is still in the
    repository, e.g. a preview: `classify/` keeps serving them (flagged by their own cards)
    rather than dropping the task."""
    return [
        ClassifyHead(task=t, model=f"classify_{t}", labels=list(data.label_names[t]))
        for t in data.tasks
        if t not in built and (opts.out / f"classify_{t}" / "config.toml").exists()
    ]


def _coverage(ids: TextIds) -> float:
    """Share of the reviews that fit whole in `max_len` tokens (the last position is padding)."""
    n = sum(len(v) for v in ids.split.values())
    return round(sum(int((v[:, -1] == 0).sum()) for v in ids.split.values()) / n, 4)


# Character 2-5 grams beside the words were considered: on the full split they multiply the
# baseline's features and fitting time several times over (minutes per C on this 2-core machine),
# beyond the family's budget; `choose_baseline` still takes them (`feature_sets`).
FEATURE_SETS = ("word 1-2",)


def export_text(opts: ExportOptions) -> None:
    """Build and publish the text models and pipeline; a failed gate stops a model's publishing,
    not the others' (all failures are raised at the end)."""
    t0 = time.perf_counter()
    seed_everything(opts.seed)
    plan = plan_for(opts.quick, opts.tier)
    data = load_text_data(plan, opts.seed)
    tok, bert, path = load_teacher()
    ids = tokenize_all(tok, data, plan.max_len)
    baselines = {t: classify_baseline_row(data, t, FEATURE_SETS) for t in data.tasks}
    opts.log(f"[text] baselines in {time.perf_counter() - t0:.0f} s")
    work = opts.cache / "text"
    tp = teacher_pass(opts, ids, bert, path, work)
    models = build_models(opts, plan, data, ids, tp, bert, path)
    run = TextRun(
        opts,
        plan,
        data,
        ids,
        models,
        Bench(plan.bench_runs, plan.bench_s, plan.bench_batches),
        work,
        tokenizer_json(path, plan.max_len),
    )
    run.export_graphs()
    run.extra = {
        "cleaning": data.cleaning,
        "latency_input": "32 tokens",
        "student_layers": STUDENT_LAYERS,
        "max_tokens": plan.max_len,
        "reviews_within_max_tokens": _coverage(ids),
        "soft_target_weights_tried": list(ALPHAS),
        "seed_note": SEED_NOTE,
        "budget": {
            "tier": "quick" if opts.quick else opts.tier,
            "limit_s": None if opts.quick else BUDGET_S[opts.tier],
            "reviews": sum(len(v) for v in data.split.values()),
            "head_fit": HEAD_FIT,
            "teacher_pass_s": tp.seconds,
            "teacher_pass_cached": tp.cached,
            "wall_s_before_cards": round(time.perf_counter() - t0, 1),
        },
    }
    heads = [h for t in data.tasks if (h := export_classifier(run, t, baselines[t])) is not None]
    heads += kept_heads(opts, data, {h.task for h in heads})
    if heads:
        run.attempt(write_classify_pipeline, run, heads)
    opts.log(f"[text] done in {time.perf_counter() - t0:.0f} s")
    run.raise_failures()
