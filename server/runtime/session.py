"""ONNX Runtime sessions for one model version: `count` instances, the device decided from what
each session really got (and, where both providers exist, by timing the model on each:
server/runtime/device_choice.py), IO binding on the GPU, an fp16 variant on CUDA when export wrote
one, warm-up over the batch sizes the batcher uses."""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path

import msgspec
import numpy as np
import onnxruntime as ort

from server.contract.dtypes import ONNX_TO_CONFIG
from server.contract.model_config import ModelConfig, TensorConfig
from server.errors import ModelLoadError
from server.runtime.device_choice import (
    DeviceChoice,
    choose_device,
    measure_curve,
    pinned,
    shared_choice,
)
from server.runtime.placement import Placement
from server.runtime.providers import CPU, cuda_provider, device_plan
from server.runtime.weights import external_weights_model

__all__ = ["OrtModel", "fp16_variant"]

log = logging.getLogger("shopserve.runtime")

_GRAPH_LEVEL = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
_CUDA = "CUDAExecutionProvider"
# warm-up: a size whose best run is under 1 ms gets the best of 6 runs, not 2: the placement rule
# (server/batching/runner.py) reads these times, and a shape's first runs pay ORT's planning
_CHEAP_RUN_NS, _CHEAP_RUNS = 1_000_000, 6
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


def fp16_variant(path: Path) -> Path:
    """Where export writes a model's fp16 variant: `model.onnx` -> `model_fp16.onnx` beside it."""
    return path.with_name(f"{path.stem}_fp16{path.suffix}")


class OrtModel:
    """`count` InferenceSessions of one ONNX file (per device it runs on); `run(inputs, instance)`
    is thread-safe per instance and is called from the batcher's executor threads (ORT releases
    the GIL). A model split between devices holds `count` sessions on each and runs every batch
    where it was measured faster for its row count."""

    def __init__(
        self,
        path: Path,
        config: ModelConfig,
        device_setting: str = "auto",
        placement: Placement | None = None,
    ) -> None:
        self.path = path
        self.config = config
        self._placement = placement or Placement()
        group = config.instances
        self.device_id = group.gpus[0] if group.gpus else 0
        self.cpu_sessions: list[ort.InferenceSession] = []
        self.cuda_sessions: list[ort.InferenceSession] = []
        self.cuda_path: Path | None = None
        plan, why = device_plan(group.kind, device_setting)
        try:
            self.choice = self._load(plan, why)
        except ModelLoadError:
            raise
        except Exception as exc:
            raise ModelLoadError(f"{path}: ONNX Runtime could not load the model: {exc}") from exc
        # the device a batch of the largest size runs on: what most of the work sees
        self.device = "cuda" if self.cuda_sessions else "cpu"
        self.sessions = self.cuda_sessions or self.cpu_sessions
        binding = config.optimization.io_binding
        self._bind = {"cpu": binding == "on", "cuda": binding != "off"}
        self.output_names = [o.name for o in self.sessions[0].get_outputs()]
        log.info(
            "loaded %s, %d instance(s), io_binding=%s: %s",
            path,
            group.count,
            self.io_binding,
            self.choice.summary(),
        )

    # -- sessions and the device ------------------------------------------------------------------

    def _options(self, level: str | None = None) -> ort.SessionOptions:
        opt = self.config.optimization
        options = ort.SessionOptions()
        options.graph_optimization_level = _GRAPH_LEVEL[level or opt.graph_level]
        options.intra_op_num_threads = self._placement.intra_op_threads(
            opt.intra_op_threads, self.config.name
        )
        options.inter_op_num_threads = opt.inter_op_threads
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # spinning pool threads steal the core the event loop needs on small machines
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        return options

    def _cpu(self) -> list[ort.InferenceSession]:
        options, source = self._options(), self.path
        weights_dir = self._placement.weights_dir
        if weights_dir is not None:
            opt = self.config.optimization
            level = options.graph_optimization_level
            source = external_weights_model(self.path, weights_dir, level, opt.graph_level)
            # already optimized: again would copy fused weights out of the mapped file
            options = self._options("disable")
        return [
            ort.InferenceSession(str(source), sess_options=options, providers=[CPU])
            for _ in range(self.config.instances.count)
        ]

    def _cuda(self, required: bool) -> list[ort.InferenceSession]:
        """CUDA sessions, or [] when the provider did not load (an error when `required`)."""
        source = self.path
        if self.config.optimization.cuda_fp16 == "auto" and fp16_variant(self.path).is_file():
            source = fp16_variant(self.path)
        providers = [cuda_provider(self.device_id)] + ([] if required else [CPU])
        first = ort.InferenceSession(str(source), self._options(), providers=providers)
        got = first.get_providers()
        if not got or got[0] != _CUDA:
            if required:
                raise ModelLoadError(
                    f"{self.path}: instance_group kind KIND_GPU but the CUDA provider did not "
                    f"load (session providers: {got}); use KIND_AUTO or KIND_CPU on this machine"
                )
            return []
        self.cuda_path = source
        rest = [
            ort.InferenceSession(str(source), self._options(), providers=providers)
            for _ in range(self.config.instances.count - 1)
        ]
        return [first, *rest]

    def _load(self, plan: str, why: str) -> DeviceChoice:
        if plan != "cpu":
            self.cuda_sessions = self._cuda(required=plan == "cuda")
            if not self.cuda_sessions:
                why = "the CUDA provider did not load"
            else:
                self._check_io(self.cuda_sessions[0])  # the fp16 variant's too
                if plan != "measure":
                    return pinned("cuda", why)
        self.cpu_sessions = self._cpu()
        self._check_io(self.cpu_sessions[0])  # before anything runs on it
        if not self.cuda_sessions:
            return pinned("cpu", why)
        cache = self._placement.weights_dir  # the run's directory when there are several workers
        choice = (
            self._measure() if cache is None else shared_choice(cache, self._key(), self._measure)
        )
        if choice.device == "cpu":
            self.cuda_sessions = []  # frees the GPU memory its arena holds
            self.cuda_path = None
        elif choice.device == "cuda":
            self.cpu_sessions = []
        return choice

    def _key(self) -> str:
        """What a measurement depends on: the files, the config, the share of the cores."""
        files = [self.path] + ([self.cuda_path] if self.cuda_path else [])
        stats = [(str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
        where = (self._placement.workers, self._placement.cores)
        raw = f"{stats}|{msgspec.json.encode(self.config)!r}|{where}|{ort.__version__}"
        return hashlib.sha256(raw.encode()).hexdigest()[:20]

    def _measure(self) -> DeviceChoice:
        """Both devices timed at the batcher's sizes (CUDA first: the CPU curve stops early once
        it is far behind), then `choose_device`."""
        self.output_names = [o.name for o in self.cpu_sessions[0].get_outputs()]
        dyn = self.config.model_warmup.dynamic_dim
        samples = {rows: self.sample_inputs(rows, dyn) for rows in self.warmup_sizes()}

        def on(sessions: list[ort.InferenceSession], device: str):
            bind = self.config.optimization.io_binding != "off" if device == "cuda" else False
            return lambda rows: self._run_on(sessions[0], samples[rows], bind, device)

        cuda_ns = measure_curve(on(self.cuda_sessions, "cuda"), samples)
        cpu_ns = measure_curve(on(self.cpu_sessions, "cpu"), samples, against=cuda_ns)
        return choose_device(cpu_ns, cuda_ns)

    @property
    def io_binding(self) -> bool:
        return self._bind[self.device]

    # -- the config against the graph --------------------------------------------------------------

    def _check_io(self, session: ort.InferenceSession) -> None:
        """The config must agree with the graph: names, dtypes, and static dims."""
        batch = self.config.max_batch_size > 0
        graph_inputs = {i.name: i for i in session.get_inputs()}
        graph_outputs = {o.name: o for o in session.get_outputs()}
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

    # -- running ---------------------------------------------------------------------------------

    @property
    def instances(self) -> int:
        return len(self.sessions)

    def run(self, inputs: dict[str, np.ndarray], instance: int = 0) -> dict[str, np.ndarray]:
        rows = 1
        if self.config.max_batch_size > 0 and inputs:
            rows = len(next(iter(inputs.values())))
        device = self.choice.device_for(rows)
        sessions = self.cuda_sessions if device == "cuda" else self.cpu_sessions
        inputs = {k: _ort_strings(v) if v.dtype == _OBJECT else v for k, v in inputs.items()}
        values = self._run_on(sessions[instance], inputs, self._bind[device], device)
        return {
            k: _wire_strings(v) if v.dtype == _OBJECT else v
            for k, v in zip(self.output_names, values, strict=True)
        }

    def _run_on(
        self, session: ort.InferenceSession, inputs: dict[str, np.ndarray], bind: bool, device: str
    ) -> list[np.ndarray]:
        if not bind:
            return session.run(self.output_names, inputs)
        binding = session.io_binding()
        for name, value in inputs.items():
            binding.bind_cpu_input(name, np.ascontiguousarray(value))
        for name in self.output_names:
            binding.bind_output(name, device, self.device_id if device == "cuda" else 0)
        session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()

    # -- warm-up ---------------------------------------------------------------------------------

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
        """Run every instance over the warm-up sizes; return the best run time (ns) per size
        (on the device each size runs on)."""
        timings: dict[int, int] = {}
        dyn = self.config.model_warmup.dynamic_dim
        for rows in self.warmup_sizes():
            sample = self.sample_inputs(rows, dyn)
            best = None
            for instance in range(self.instances):
                for i in range(_CHEAP_RUNS):
                    t0 = time.perf_counter_ns()
                    self.run(sample, instance)
                    dt = time.perf_counter_ns() - t0
                    best = dt if best is None else min(best, dt)
                    if i >= 1 and best >= _CHEAP_RUN_NS:
                        break  # an expensive size: best of two
            timings[rows] = int(best or 0)
        return timings
