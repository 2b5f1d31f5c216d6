"""Running the text encoders over token ids (torch and ONNX Runtime) and the classifiers' metric,
macro-F1."""

from __future__ import annotations

import numpy as np

from export.text_data import INPUT_IDS

__all__ = ["embed", "macro_f1", "run_sorted", "run_sorted_all"]


def _length_order(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(real lengths, length-sorted order, its inverse): batches of similar length pad less."""
    lens = (ids != 0).sum(1)
    order = np.argsort(lens)
    inv = np.empty_like(order)
    inv[order] = np.arange(len(order))
    return lens, order, inv


def embed(model_fn, ids: np.ndarray, batch: int = 64) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Run an encoder (`ids -> (embedding, {task: logits})`) over `ids` in length-sorted, trimmed
    batches, results back in input order."""
    import torch

    lens, order, inv = _length_order(ids)
    embs, logits = [], {}
    with torch.no_grad():
        for i in range(0, len(ids), batch):
            b = order[i : i + batch]
            e, lg = model_fn(torch.tensor(ids[b, : int(lens[b].max())]))[:2]
            embs.append(e.numpy())
            for k, v in lg.items():
                logits.setdefault(k, []).append(v.numpy())
    return np.concatenate(embs)[inv], {k: np.concatenate(v)[inv] for k, v in logits.items()}


def run_sorted_all(sess, ids: np.ndarray, batch: int = 64) -> list[np.ndarray]:
    """ONNX Runtime over length-sorted, trimmed batches, every output in input order."""
    lens, order, inv = _length_order(ids)
    outs = []
    for i in range(0, len(ids), batch):
        b = order[i : i + batch]
        outs.append(sess.run(None, {INPUT_IDS.name: ids[b, : int(lens[b].max())]}))
    return [np.concatenate([o[j] for o in outs])[inv] for j in range(len(outs[0]))]


def run_sorted(sess, ids: np.ndarray, batch: int = 64) -> np.ndarray:
    """ONNX Runtime over length-sorted, trimmed batches, the first output in input order."""
    return run_sorted_all(sess, ids, batch)[0]


def macro_f1(y, pred) -> dict[str, float]:
    """Macro-F1 and accuracy over the rows that have a label (y >= 0)."""
    from sklearn.metrics import accuracy_score, f1_score

    m = y >= 0
    return {
        "macro_f1": round(float(f1_score(y[m], pred[m], average="macro")), 4),
        "accuracy": round(float(accuracy_score(y[m], pred[m])), 4),
    }
