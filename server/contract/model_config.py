"""The model-repository contract: `config.toml` decoded into frozen msgspec Structs.

Field names are Triton's `config.pbtxt` vocabulary written as TOML (see DESIGN.md); constraints
live in the types, cross-field rules in `__post_init__`, so a bad file fails at decode time with
msgspec's `$.path` naming the field. Extensions beyond Triton are marked "extension" below.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from server.contract.dtypes import CONFIG_TO_V2

__all__ = [
    "BATCH_CAP",
    "CONFIG_FILE",
    "DataType",
    "DynamicBatching",
    "InstanceGroup",
    "ModelConfig",
    "ModelWarmup",
    "Name",
    "Optimization",
    "QueuePolicy",
    "TensorConfig",
    "VersionPolicy",
    "decode_config",
    "encode_config",
    "load_config",
    "triton_config",
]

CONFIG_FILE = "config.toml"
BATCH_CAP = 1 << 20  # sanity bound on max_batch_size: rows of one batch

DataType = Literal[
    "TYPE_BOOL",
    "TYPE_UINT8",
    "TYPE_UINT16",
    "TYPE_UINT32",
    "TYPE_UINT64",
    "TYPE_INT8",
    "TYPE_INT16",
    "TYPE_INT32",
    "TYPE_INT64",
    "TYPE_FP16",
    "TYPE_FP32",
    "TYPE_FP64",
    "TYPE_STRING",
]
Dim = Annotated[int, Meta(ge=-1)]
Micros = Annotated[int, Meta(ge=0)]
Name = Annotated[str, Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.\-:]+$")]


class _Base(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    pass


class TensorConfig(_Base, frozen=True):
    name: Name
    data_type: DataType
    dims: list[Dim]
    # extension: padding for a dynamic non-batch dim (token ids) when requests are batched
    pad_value: int | float = 0
    # extension: bounds checked before a request is queued (a 400 naming the input), so that one
    # bad request never fails the batch it would join. Inclusive value range (integer inputs:
    # vocabulary size, catalogue size; `pad_value` is always allowed) and the largest size of
    # each -1 dim, in order (a position table; also what bounds padding memory).
    min_value: int | float | None = None
    max_value: int | float | None = None
    max_dims: list[Annotated[int, Meta(ge=1)]] = []

    def __post_init__(self) -> None:
        if any(d == 0 for d in self.dims):
            raise ValueError(f"dims of `{self.name}` must be >= 1 or -1 (dynamic), got {self.dims}")
        if self.max_dims and len(self.max_dims) != self.dims.count(-1):
            raise ValueError(
                f"max_dims of `{self.name}` needs one bound per -1 dim of {self.dims}, "
                f"got {self.max_dims}"
            )
        if (
            self.min_value is not None
            and self.max_value is not None
            and self.min_value > self.max_value
        ):
            raise ValueError(f"min_value of `{self.name}` is above its max_value")

    @property
    def datatype(self) -> str:
        """The V2 wire name (FP32, INT64, BYTES...)."""
        return CONFIG_TO_V2[self.data_type]

    @property
    def dynamic_axes(self) -> tuple[int, ...]:
        """Positions (within `dims`) of dynamic non-batch dims."""
        return tuple(i for i, d in enumerate(self.dims) if d == -1)


class QueuePolicy(_Base, frozen=True):
    max_queue_size: Annotated[int, Meta(ge=0)] = 0  # 0: the server's default_max_queue_size
    default_timeout_microseconds: Micros = 0  # 0: no deadline, as in Triton
    allow_timeout_override: bool = True  # a request may only shorten its deadline


class DynamicBatching(_Base, frozen=True):
    max_queue_delay_microseconds: Micros = 0
    preferred_batch_size: list[Annotated[int, Meta(ge=1)]] = []
    default_queue_policy: QueuePolicy = QueuePolicy()
    # extension (text-embeddings-inference's max_batch_tokens): for a model with a padded -1
    # input, a batch is also bounded by rows x its longest request; 0 turns the bound off
    max_batch_tokens: Annotated[int, Meta(ge=0)] = 8192


class InstanceGroup(_Base, frozen=True):
    count: Annotated[int, Meta(ge=1, le=64)] = 1
    kind: Literal["KIND_AUTO", "KIND_GPU", "KIND_CPU"] = "KIND_AUTO"
    gpus: list[Annotated[int, Meta(ge=0)]] = []


class Optimization(_Base, frozen=True):
    graph_level: Literal["disable", "basic", "extended", "all"] = "all"
    # unset: the worker's share of the cores less one for its event loop, cores // workers - 1
    # (at least 1; server/runtime/placement.py); set, it wins (0:
    # ONNX Runtime's default, a thread per core), with a warning when workers x threads > cores
    intra_op_threads: Annotated[int, Meta(ge=0, le=256)] | None = None
    inter_op_threads: Annotated[int, Meta(ge=0, le=256)] = 1  # extension
    io_binding: Literal["auto", "on", "off"] = "auto"  # extension: "auto" binds on GPU only
    # extension: "auto": a CUDA session loads the fp16 variant that `shopserve export model --fp16`
    # writes beside the model (`model.onnx` -> `model_fp16.onnx`) when it is there; CPU sessions
    # always load the model itself. "off": CUDA loads the model itself too
    cuda_fp16: Literal["auto", "off"] = "auto"


class _Latest(_Base, frozen=True):
    num_versions: Annotated[int, Meta(ge=1)] = 1


class _All(_Base, frozen=True):
    pass


class _Specific(_Base, frozen=True):
    versions: Annotated[list[Annotated[int, Meta(ge=1)]], Meta(min_length=1)]


class VersionPolicy(_Base, frozen=True):
    latest: _Latest | None = None
    all: _All | None = None
    specific: _Specific | None = None

    def __post_init__(self) -> None:
        given = [p for p in (self.latest, self.all, self.specific) if p is not None]
        if len(given) > 1:
            raise ValueError("version_policy takes one of `latest`, `all`, `specific`")

    def select(self, available: list[int]) -> list[int]:
        """The versions to serve out of the numeric folders present, ascending."""
        available = sorted(available)
        if self.all is not None:
            return available
        if self.specific is not None:
            return [v for v in available if v in set(self.specific.versions)]
        n = self.latest.num_versions if self.latest is not None else 1
        return available[-n:]


class ModelWarmup(_Base, frozen=True):
    """Extension: what warm-up runs at load (Triton's `model_warmup` names explicit samples)."""

    batch_sizes: list[Annotated[int, Meta(ge=1)]] = []  # empty: 1, preferred sizes and the max
    dynamic_dim: Annotated[int, Meta(ge=1, le=65536)] = 16  # value for -1 non-batch dims


class ModelConfig(_Base, frozen=True):
    name: Name
    platform: Literal["onnxruntime_onnx"] = "onnxruntime_onnx"
    max_batch_size: Annotated[int, Meta(ge=0, le=BATCH_CAP)] = 0
    input: list[TensorConfig] = []
    output: list[TensorConfig] = []
    dynamic_batching: DynamicBatching | None = None
    instance_group: list[InstanceGroup] = []
    optimization: Optimization = Optimization()
    version_policy: VersionPolicy = VersionPolicy()
    default_model_filename: Annotated[str, Meta(min_length=1)] = "model.onnx"
    model_warmup: ModelWarmup = ModelWarmup()
    # extension: the queue of a model without [dynamic_batching] (same fields as its
    # default_queue_policy); ignored when dynamic batching is on
    queue_policy: QueuePolicy = QueuePolicy()
    # Triton's `parameters` (string values): notes for operators, shown by `/config`; the server
    # never reads behaviour from them (pipelines have typed specs: server/contract/pipelines.py)
    parameters: dict[str, str] = {}

    def __post_init__(self) -> None:
        if not self.input:
            raise ValueError("an onnxruntime_onnx model needs at least one [[input]]")
        for kind, tensors in (("input", self.input), ("output", self.output)):
            names = [t.name for t in tensors]
            if len(names) != len(set(names)):
                raise ValueError(f"duplicate {kind} names in {names}")
        if self.dynamic_batching is not None:
            if self.max_batch_size == 0:
                raise ValueError("dynamic_batching needs max_batch_size > 0")
            too_big = [
                p for p in self.dynamic_batching.preferred_batch_size if p > self.max_batch_size
            ]
            if too_big:
                raise ValueError(
                    f"preferred_batch_size {too_big} exceeds max_batch_size {self.max_batch_size}"
                )
        if len(self.instance_group) > 1:
            raise ValueError("one [[instance_group]] per model is supported")

    @property
    def instances(self) -> InstanceGroup:
        return self.instance_group[0] if self.instance_group else InstanceGroup()

    @property
    def effective_queue_policy(self) -> QueuePolicy:
        """`[dynamic_batching.default_queue_policy]`, or for a model without dynamic batching
        the top-level `[queue_policy]` (extension: Triton has no queue for such models)."""
        if self.dynamic_batching is None:
            return self.queue_policy
        return self.dynamic_batching.default_queue_policy


def encode_config(config: ModelConfig) -> bytes:
    """TOML text of a config (export writes with this; needs `tomli-w`, in the export extra)."""
    return msgspec.toml.encode(config)


def decode_config(text: str | bytes) -> ModelConfig:
    """Decode TOML text; raises msgspec.ValidationError / DecodeError naming the field."""
    return msgspec.toml.decode(text, type=ModelConfig)


def load_config(path: Path) -> ModelConfig:
    return decode_config(path.read_bytes())


def triton_config(config: ModelConfig, verdict: dict[str, str] | None = None) -> dict[str, Any]:
    """Triton's JSON model configuration (what `perf_analyzer` and tritonclient read); `verdict`
    (the card's gate as strings) joins the notes in `parameters`, as gRPC's ModelConfig carries."""

    def tensor(t: TensorConfig) -> dict[str, Any]:
        return {"name": t.name, "data_type": t.data_type, "dims": list(t.dims)}

    out: dict[str, Any] = {
        "name": config.name,
        "platform": config.platform,
        "backend": "onnxruntime",
        "max_batch_size": config.max_batch_size,
        "input": [tensor(t) for t in config.input],
        "output": [tensor(t) for t in config.output],
        "instance_group": [
            {
                "name": f"{config.name}_0",
                "count": config.instances.count,
                "kind": config.instances.kind,
            }
        ],
        "default_model_filename": config.default_model_filename,
        "version_policy": msgspec.to_builtins(config.version_policy)
        or {"latest": {"num_versions": 1}},
        "parameters": {
            k: {"string_value": v} for k, v in {**config.parameters, **(verdict or {})}.items()
        },
    }
    db = config.dynamic_batching
    if db is not None:
        out["dynamic_batching"] = {
            "preferred_batch_size": list(db.preferred_batch_size),
            "max_queue_delay_microseconds": db.max_queue_delay_microseconds,
            "default_queue_policy": {
                "max_queue_size": db.default_queue_policy.max_queue_size,
                "default_timeout_microseconds": db.default_queue_policy.default_timeout_microseconds,
                "allow_timeout_override": db.default_queue_policy.allow_timeout_override,
            },
        }
    return out
