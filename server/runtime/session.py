"""ONNX Runtime sessions for one model version: `count` instances, the device decided from what
each session really got, IO binding on the GPU, warm-up over the batch sizes the batcher uses."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from server.contract.dtypes import ONNX_TO_CONFIG
from server.contract.model_config import ModelConfig, TensorConfig
from server.errors import ModelLoadError
from server.runtime.placement import Placement
from server.runtime.providers import providers_for
from server.runtime.weights import external_weights_model

__all__ = ["OrtModel"]

log = logging.getLogger("shopserve.runtime")

_GRAPH_LEVEL = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


_OBJECT = np.dtype(object)


def _ort_strings(arr: np.ndarray) -> np.ndarray:
    """ONNX Runtime turns `bytes` objects into their repr; it wants `str` (UTF-8 on its side)."""
    flat = [
        v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
        for v in arr.ravel().tolist()
    ]
    return np.array(flat, dtype=object).reshape(arr.shape)


def _wire_strings(arr: np.ndarray) -> np.ndarray:
    flat = [v.encode() if isinstance(v, str) else v for v in arr.ravel().tolist()]
    return np.array(flat, dtype=object).reshape(arr.shape)


class OrtModel:
    """`count` InferenceSessions of one ONNX file; `run(inputs, instance)` is thread-safe per
    instance and is called from the batcher's executor threads (ORT releases the GIL)."""

    def __init__(
        self,
        path: Path,
        config: ModelConfig,
        device_setting: str = "auto",
        placement: Placement | None = None,
    ) -> None:
        self.path = path
        self.config = config
        placement = placement or Placement()
        group = config.instances
        opt = config.optimization
        options = ort.SessionOptions()
        options.graph_optimization_level = _GRAPH_LEVEL[opt.graph_level]
        options.intra_op_num_threads = placement.intra_op_threads(opt.intra_op_threads, config.name)
        options.inter_op_num_threads = opt.inter_op_threads
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # spinning pool threads steal the core the event loop needs on small machines
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        device_id = group.gpus[0] if group.gpus else 0
        providers = providers_for(group.kind, device_setting, device_id)
        source = path
        try:
            if placement.weights_dir is not None and providers == ["CPUExecutionProvider"]:
                source = external_weights_model(
                    path, placement.weights_dir, options.graph_optimization_level, opt.graph_level
                )
                # already optimized: again would copy fused weights out of the mapped file
                options.graph_optimization_level = _GRAPH_LEVEL["disable"]
            self.sessions: list[ort.InferenceSession] = []
            for _ in range(group.count):
                self.sessions.append(
                    ort.InferenceSession(str(source), sess_options=options, providers=providers)
                )
        except Exception as exc:
            raise ModelLoadError(f"{path}: ONNX Runtime could not load the model: {exc}") from exc
        got = self.sessions[0].get_providers()
        self.device = "cuda" if got and got[0] == "CUDAExecutionProvider" else "cpu"
        if group.kind == "KIND_GPU" and self.device != "cuda":
            raise ModelLoadError(
                f"{path}: instance_group kind KIND_GPU but the CUDA provider did not load "
                f"(session providers: {got}); use KIND_AUTO or KIND_CPU on this machine"
            )
        self.device_id = device_id
        self.io_binding = opt.io_binding == "on" or (
            opt.io_binding == "auto" and self.device == "cuda"
        )
        self.output_names = [o.name for o in self.sessions[0].get_outputs()]
        self._check_io()
        log.info(
            "loaded %s on %s (%s), %d instance(s), io_binding=%s",
            path,
            self.device,
            got[0] if got else "?",
            group.count,
            self.io_binding,
        )

    def _check_io(self) -> None:
        """The config must agree with the graph: names, dtypes, and static dims."""
        batch = self.config.max_batch_size > 0
        graph_inputs = {i.name: i for i in self.sessions[0].get_inputs()}
        graph_outputs = {o.name: o for o in self.sessions[0].get_outputs()}
        for kind, tensors, graph in (
            ("input", self.config.input, graph_inputs),
            ("output", self.config.output, graph_outputs),
        ):
            for t in tensors:
                node = graph.get(t.name)
                if node is None:
                    raise ModelLoadError(
                        f"{self.path}: config {kind} `{t.name}` is not in the model "
                        f"(model {kind}s: {sorted(graph)})"
                    )
                dtype = ONNX_TO_CONFIG.get(node.type)
                if dtype != t.data_type:
                    raise ModelLoadError(
                        f"{self.path}: {kind} `{t.name}` data_type is {t.data_type} in config "
                        f"but {node.type} in the model"
                    )
                self._check_dims(kind, t, list(node.shape), batch)
        if self.config.input:
            missing = sorted(set(graph_inputs) - {t.name for t in self.config.input})
            if missing:
                raise ModelLoadError(f"{self.path}: model inputs {missing} are not in the config")

    def _check_dims(self, kind: str, t: TensorConfig, shape: list, batch: bool) -> None:
        dims = shape[1:] if batch else shape
        if batch and len(shape) == 0:
            raise ModelLoadError(
                f"{self.path}: {kind} `{t.name}` is a scalar; max_batch_size must be 0"
            )
        if len(dims) != len(t.dims):
            raise ModelLoadError(
                f"{self.path}: {kind} `{t.name}` dims {t.dims} (rank {len(t.dims)}) do not match "
                f"the model's shape {shape}{' after the batch dim' if batch else ''}"
            )
        for want, have in zip(t.dims, dims, strict=True):
            if want != -1 and isinstance(have, int) and have != want:
                raise ModelLoadError(
                    f"{self.path}: {kind} `{t.name}` dims {t.dims} do not match the model's {shape}"
                )

    @property
    def instances(self) -> int:
        return len(self.sessions)

    def run(self, inputs: dict[str, np.ndarray], instance: int = 0) -> dict[str, np.ndarray]:
        session = self.sessions[instance]
        inputs = {k: _ort_strings(v) if v.dtype == _OBJECT else v for k, v in inputs.items()}
        if self.io_binding:
            binding = session.io_binding()
            for name, value in inputs.items():
                binding.bind_cpu_input(name, np.ascontiguousarray(value))
            for name in self.output_names:
                binding.bind_output(
                    name, self.device if self.device == "cuda" else "cpu", self.device_id
                )
            session.run_with_iobinding(binding)
            values = binding.copy_outputs_to_cpu()
        else:
            values = session.run(self.output_names, inputs)
        return {
            k: _wire_strings(v) if v.dtype == _OBJECT else v
            for k, v in zip(self.output_names, values, strict=True)
        }

    def sample_inputs(self, rows: int, dynamic_dim: int) -> dict[str, np.ndarray]:
        """Inputs of the right dtypes and shapes (pad values; dynamic dims at `dynamic_dim`)."""
        from server.contract.dtypes import V2_TO_NUMPY

        out = {}
        for t in self.config.input:
            dims = [dynamic_dim if d == -1 else d for d in t.dims]
            shape = ([rows] if self.config.max_batch_size > 0 else []) + dims
            dtype = V2_TO_NUMPY[t.datatype]
            if dtype == np.dtype(object):
                out[t.name] = np.full(shape, b"warm-up", dtype=object)
            else:
                out[t.name] = np.full(shape, t.pad_value, dtype=dtype)
        return out

    def warmup_sizes(self) -> list[int]:
        cfg = self.config
        if cfg.max_batch_size == 0:
            return [1]
        if cfg.model_warmup.batch_sizes:
            return sorted({min(b, cfg.max_batch_size) for b in cfg.model_warmup.batch_sizes})
        sizes = {1, cfg.max_batch_size}
        if cfg.dynamic_batching is not None:
            sizes.update(cfg.dynamic_batching.preferred_batch_size)
            b = 2
            while b < cfg.max_batch_size:  # powers of two seed the latency model
                sizes.add(b)
                b *= 2
        return sorted(sizes)

    def warmup(self) -> dict[int, int]:
        """Run every instance over the warm-up sizes; return the best run time (ns) per size."""
        timings: dict[int, int] = {}
        dyn = self.config.model_warmup.dynamic_dim
        for rows in self.warmup_sizes():
            sample = self.sample_inputs(rows, dyn)
            best = None
            for instance in range(self.instances):
                for _ in range(2):
                    t0 = time.perf_counter_ns()
                    self.run(sample, instance)
                    dt = time.perf_counter_ns() - t0
                    best = dt if best is None else min(best, dt)
            timings[rows] = int(best or 0)
        return timings
