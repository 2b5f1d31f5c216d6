"""Model weights that every worker maps from one file: N workers, one copy in the page cache.

ONNX Runtime backs an initializer stored in an external data file by a memory map of that file
(no copy); initializers stored inside model.onnx are parsed into each process's own memory. So
with several workers, a CPU model is first saved once (by whichever worker gets the lock first)
as ONNX Runtime's own optimized graph with every initializer over 1 KiB in `model.onnx.data`,
into the run's private directory, and every worker loads that copy with graph optimization off
(ONNX Runtime's "offline" mode: optimizing again would make private copies of fused weights).

`session.use_ort_model_bytes_for_initializers` would do this for the ORT format, but only from a
buffer the caller keeps alive; Python's InferenceSession takes `bytes`, a private copy per process.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
from pathlib import Path

import onnxruntime as ort

__all__ = ["external_weights_model"]

_MIN_EXTERNAL_BYTES = 1024


def _key(path: Path, graph_level: str) -> str:
    st = path.stat()
    raw = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{graph_level}|{ort.__version__}"
    return hashlib.sha256(raw.encode()).hexdigest()[:20]


def external_weights_model(
    path: Path, cache_dir: Path, graph_level: ort.GraphOptimizationLevel, level_name: str
) -> Path:
    """The optimized copy of `path` with external weights under `cache_dir`, made on first use
    (once across processes: a file lock, then an atomic rename of the finished folder)."""
    key = _key(path, level_name)
    done = cache_dir / key
    model = done / "model.onnx"
    if model.is_file():
        return model
    with open(cache_dir / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if model.is_file():
            return model
        tmp = cache_dir / f"{key}.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            options = ort.SessionOptions()
            options.graph_optimization_level = graph_level
            options.intra_op_num_threads = 1
            options.log_severity_level = 3
            options.optimized_model_filepath = str(tmp / "model.onnx")
            options.add_session_config_entry(
                "session.optimized_model_external_initializers_file_name", "model.onnx.data"
            )
            options.add_session_config_entry(
                "session.optimized_model_external_initializers_min_size_in_bytes",
                str(_MIN_EXTERNAL_BYTES),
            )
            ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            tmp.rename(done)
        finally:
            with contextlib.suppress(OSError):
                shutil.rmtree(tmp)
    return model
