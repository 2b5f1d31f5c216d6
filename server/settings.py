"""Server settings: one frozen tree, validated when built, loaded once at start-up from a TOML
file plus `SHOPSERVE_*` environment overrides, then passed down. Tests build it directly."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

__all__ = ["Limits", "Settings", "available_cores", "load_settings"]

_ENV_PREFIX = "SHOPSERVE_"
# the SLOs of the storefront: recommend and search p99 <= 50 ms, classify <= 100, score <= 20
DEFAULT_BUDGETS_MS = {
    "recommend": 50.0,
    "search": 50.0,
    "classify": 100.0,
    "score": 20.0,
    "answer": 50.0,  # issue 13: customer-service answers, p99 <= 50 ms
    "forecast": 20.0,  # issue 13: demand forecasts, p99 <= 20 ms
}


class Limits(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Global bounds on one request, checked before anything large is allocated (a model's own
    bounds in its config.toml are checked after decoding, before it is queued)."""

    max_rank: Annotated[int, Meta(ge=1, le=32)] = 8  # dims per input
    max_elements: Annotated[int, Meta(ge=1)] = 16 * 1024 * 1024  # per input
    max_bytes_elements: Annotated[int, Meta(ge=1)] = 65_536  # BYTES elements per input
    max_bytes_length: Annotated[int, Meta(ge=1)] = 1024 * 1024  # bytes per BYTES element
    # the largest -1 dim of a model whose config sets no `max_dims`: bounds the memory that
    # padding a batch to its longest request can take (rows x this)
    max_dynamic_dim: Annotated[int, Meta(ge=1)] = 8192


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    model_repository: str = "model_repository"
    host: str = "127.0.0.1"
    port: Annotated[int, Meta(ge=0, le=65535)] = 8000
    # the V2 gRPC endpoint on `host` (8001, as Triton); 0: none. Bound without SO_REUSEPORT, so a
    # port already taken fails the start instead of being shared silently
    grpc_port: Annotated[int, Meta(ge=0, le=65535)] = 8001
    # bodies over this are refused with 413 before they are parsed
    max_body_bytes: Annotated[int, Meta(ge=1024)] = 64 * 1024 * 1024
    # a body not received in full within this is answered 408 (a slow or stalled client would
    # otherwise hold its connection and admission slot): 64 MiB at 30 s is ~2.2 MB/s
    body_timeout_s: Annotated[float, Meta(gt=0, le=3600)] = 30.0
    # a connection whose request headers take longer than this is closed (a new one that sends
    # nothing included), so idle or half-sent connections cannot pile up (http = "httptools")
    header_timeout_s: Annotated[float, Meta(gt=0, le=3600)] = 10.0
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "text"] = "json"
    # seconds that SIGTERM waits for queued and running requests before giving up
    graceful_timeout_s: Annotated[float, Meta(ge=0)] = 30.0
    # Triton's model control modes. "none": the repository as found at start-up, load/unload
    # refused; "poll": the repository is watched every `repository_poll_secs` and new, changed
    # and removed models follow it (load/unload refused); "explicit": load/unload through the
    # API, start-up loads `load_models` (["*"]: every model)
    model_control_mode: Literal["none", "poll", "explicit"] = "none"
    repository_poll_secs: Annotated[float, Meta(gt=0, le=3600)] = 5.0
    load_models: list[str] = []
    # when set, load and unload need `Authorization: Bearer <admin_token>`
    admin_token: str = ""
    # explicit mode on a non-loopback host without a token refuses to start unless this is true
    allow_open_admin: bool = False
    # ready only when every model and pipeline that should be loaded is READY (Triton's
    # --strict-readiness); false: when the server is up and at least one is
    strict_readiness: bool = True
    # where a model whose config leaves `instance_group kind` at KIND_AUTO runs (docs/gpu.md):
    # "auto": where CUDA loads, timed on CPU and CUDA at the batcher's sizes at load and run on
    # the faster per batch size (small batches may stay on the CPU); without CUDA, the CPU.
    # "cuda": CUDA whenever it loads, unmeasured. "cpu": never try CUDA
    device: Literal["auto", "cuda", "cpu"] = "auto"
    # ASGI server choices, measured in docs/performance.md
    http: Literal["httptools", "h11", "auto"] = "httptools"
    loop: Literal["uvloop", "asyncio", "auto"] = "uvloop"
    access_log: bool = False
    # worker processes on `port` (docs/performance.md, "Worker processes"); "auto": one per core
    # this process may run on. More than one: a supervisor process starts, watches and restarts
    # them, and `listen` says how they share the port: "shared" (one listening socket, bound by
    # the supervisor and inherited, as gunicorn and uvicorn --workers) or "reuseport" (a socket
    # per worker with SO_REUSEPORT, the kernel spreading connections). Measured: "shared"
    workers: Annotated[int, Meta(ge=1, le=256)] | Literal["auto"] = 1
    listen: Literal["shared", "reuseport"] = "shared"
    limits: Limits = Limits()
    # the placement rule: CPU work predicted to take less than this runs inline on the event
    # loop, longer work off it. Pipeline work (tokenization, kernels, fusion) goes to a 2-thread
    # pool (server/pipelines/cpu_work.py); a CPU model's batch to the model's executor thread
    # (server/batching/runner.py; its run time as the latency model measured it). A very large
    # value keeps everything inline; 0 sends everything off the loop
    inline_cpu_us: Annotated[float, Meta(ge=0)] = 75.0
    # overload control, on by default: every model's queue is bounded (a model's own
    # max_queue_size wins), and so is what one worker holds admitted and not yet answered
    default_max_queue_size: Annotated[int, Meta(ge=1)] = 1024
    max_inflight_requests: Annotated[int, Meta(ge=1)] = 4096
    max_inflight_bytes: Annotated[int, Meta(ge=1024)] = 512 * 1024 * 1024
    # the shop endpoints' default latency budgets (the pipeline serving /v1/X is the folder X)
    budgets_ms: dict[str, Annotated[float, Meta(gt=0, le=60_000)]] = msgspec.field(
        default_factory=lambda: dict(DEFAULT_BUDGETS_MS)
    )

    def __post_init__(self) -> None:
        # a partial table in the file overrides only the endpoints it names
        for k, ms in DEFAULT_BUDGETS_MS.items():
            self.budgets_ms.setdefault(k, ms)

    @property
    def repository_path(self) -> Path:
        return Path(self.model_repository)

    @property
    def worker_count(self) -> int:
        """`workers`, with "auto" resolved to the cores this process may run on."""
        return available_cores() if self.workers == "auto" else self.workers


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity: taskset and cgroup cpusets shrink it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def _from_env(environ: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field in Settings.__struct_fields__:
        key = _ENV_PREFIX + field.upper()
        if key in environ:
            raw = environ[key]
            if field == "load_models":
                out[field] = [m for m in raw.split(",") if m]
            elif field == "workers" and raw.isdigit():
                out[field] = int(raw)  # the union int | "auto" takes no string for its int
            else:
                out[field] = raw
    return out


def load_settings(
    config_file: Path | None = None,
    environ: dict[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """File, then environment, then explicit overrides (CLI flags); `None` overrides are skipped."""
    data: dict[str, Any] = {}
    if config_file is not None:
        data.update(msgspec.toml.decode(Path(config_file).read_bytes()))
    data.update(_from_env(dict(os.environ if environ is None else environ)))
    data.update({k: v for k, v in overrides.items() if v is not None})
    if "model_repository" in data:
        data["model_repository"] = str(data["model_repository"])
    # strict=False lets environment strings become ints/floats/bools
    return msgspec.convert(data, Settings, strict=False)
