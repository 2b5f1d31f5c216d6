"""Text models on the clothing reviews, from the pretrained teacher all-MiniLM-L6-v2 (offline wheel).

The family, step by step (one module each):
1. data (`text_data`): reviews with three labels, product descriptions, search queries, token ids;
2. teacher (`text_distil`): MiniLM, frozen, + one logistic-regression head per task;
3. student (`text_distil`, modules in `text_models`): the teacher's first layers, distilled;
4. ONNX export, numeric check, int8 quantization, latency (`text_onnx`);
5. the served models, each with its card and gate: `classify_sentiment`, `classify_recommended`,
   `classify_department` (input_ids -> logits, `text_classify`) and `search_encoder`
   (input_ids -> unit embedding, `text_search`), and the pipelines `classify/` (the published
   heads) and `search/` (the product catalogue embedded by the served encoder).

Export: torch.onnx.export + ONNX Runtime's quantizer, not Optimum. optimum-onnx resolves here
(transformers 4.57), but our graphs are custom (three heads, mask computed in-graph from pad id 0,
a truncated student), so Optimum's task exporters would need custom configs and its quantizer is
a wrapper over the same `quantize_dynamic`: it costs a dependency stack and gives nothing here.
"""

from __future__ import annotations

from export.options import ExportOptions
from export.text_classify import export_classifier, write_classify_pipeline
from export.text_data import TASKS, load_text_data, tokenize_all
from export.text_distil import distil_student, train_teacher
from export.text_models import load_teacher
from export.text_onnx import TextRun
from export.text_search import export_search
from export.training import seed_everything

__all__ = ["TASKS", "export_text", "load_teacher"]


def export_text(opts: ExportOptions) -> None:
    """Build and publish the text models and pipelines; a failed gate stops a model's publishing,
    not the others' (all failures are raised at the end)."""
    seed_everything(opts.seed)
    data = load_text_data(opts.quick, opts.seed)
    tok, bert, teacher_path = load_teacher()
    ids = tokenize_all(tok, data, max_len=32 if opts.quick else 64)
    teacher = train_teacher(opts, data, ids, bert, teacher_path)
    student = distil_student(opts, data, ids, teacher)
    run = TextRun.start(opts, data, ids, teacher, student)
    heads = [h for task in data.tasks if (h := export_classifier(run, task)) is not None]
    if heads:
        run.attempt(write_classify_pipeline, run, heads)
    export_search(run)
    run.raise_failures()
