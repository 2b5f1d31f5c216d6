"""The other workers of a multi-worker server, as one worker sees them, and what needs them.

Every worker listens on the shared port and on its own Unix socket, `worker-<i>.sock` in the
run's private directory; a call from a sibling carries the run's token in `x-shopserve-sibling`.
Two things reach every worker this way, with the routes they already have:
- statistics: `/v2/models/.../stats` answers this worker's counters summed with every sibling's
  (each sibling answers its own when the token is present), REST and gRPC alike;
- explicit load / unload: done here, then asked of every sibling; the models then loaded are
  written to the run's `explicit.json`, which a restarted worker loads instead of `load_models`.
Asking the siblings directly keeps the supervisor a plain process watcher (no relay to hang)."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.errors import InternalError
from server.http.deps import Services

__all__ = [
    "SIBLING_HEADER",
    "Answer",
    "Siblings",
    "gather_stats",
    "load_everywhere",
    "merge_stats",
    "read_loaded",
    "unload_everywhere",
]

log = logging.getLogger("shopserve.siblings")

SIBLING_HEADER = "x-shopserve-sibling"
STATS_TIMEOUT_S = 5.0
LOAD_TIMEOUT_S = 600.0  # a sibling loads the model as this worker did: ONNX Runtime + warm-up


@dataclass(frozen=True)
class Answer:
    worker: int
    status: int  # 0: the worker could not be reached (restarting, or gone)
    body: bytes


class Siblings:
    def __init__(
        self, index: int, workers: int, socket_dir: Path, token: str, state_file: Path
    ) -> None:
        self.index, self.workers = index, workers
        self.socket_dir, self.state_file = Path(socket_dir), Path(state_file)
        self._token = token.encode()

    def socket_path(self, index: int) -> Path:
        return self.socket_dir / f"worker-{index}.sock"

    def is_sibling_call(self, headers: Any) -> bool:
        value = headers.get(SIBLING_HEADER)
        return bool(value) and hmac.compare_digest(value.encode(), self._token)

    async def call_all(self, method: str, path: str, timeout_s: float) -> list[Answer]:
        """`method path` on every other worker, at once; one Answer each, in worker order."""
        others = [i for i in range(self.workers) if i != self.index]
        return list(await asyncio.gather(*(self._call(i, method, path, timeout_s) for i in others)))

    async def _call(self, index: int, method: str, path: str, timeout_s: float) -> Answer:
        try:
            return await asyncio.wait_for(self._request(index, method, path), timeout_s)
        except (OSError, TimeoutError, ValueError, IndexError) as exc:
            return Answer(index, 0, f"{type(exc).__name__}: {exc}".encode())

    async def _request(self, index: int, method: str, path: str) -> Answer:
        reader, writer = await asyncio.open_unix_connection(str(self.socket_path(index)))
        try:
            writer.write(
                f"{method} {path} HTTP/1.1\r\nhost: worker-{index}\r\n"
                f"{SIBLING_HEADER}: {self._token.decode()}\r\ncontent-length: 0\r\n"
                "connection: close\r\n\r\n".encode()
            )
            await writer.drain()
            raw = await reader.read()  # to EOF: the worker closes after answering
        finally:
            writer.close()
        head, _, body = raw.partition(b"\r\n\r\n")
        return Answer(index, int(head.split(b" ", 2)[1]), body)

    def remember_loaded(self, names: list[str]) -> None:
        tmp = self.state_file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(sorted(names)))
        tmp.replace(self.state_file)


def read_loaded(state_file: Path) -> list[str] | None:
    """The models loaded through the explicit API so far; None before the first load/unload."""
    try:
        names = json.loads(Path(state_file).read_text())
    except (OSError, ValueError):
        return None
    return [str(n) for n in names] if isinstance(names, list) else None


# -- statistics --------------------------------------------------------------------------------


def _add(into: dict[str, Any], other: dict[str, Any]) -> None:
    for key, value in other.items():
        if key in ("name", "version", "batch_size"):
            continue
        if key == "last_inference":
            into[key] = max(into.get(key, 0), value)
        elif key == "batch_stats":
            by_size = {b["batch_size"]: b for b in into.setdefault(key, [])}
            for b in value:
                if b["batch_size"] in by_size:
                    _add(by_size[b["batch_size"]], b)
                else:
                    into[key].append(b)
            into[key].sort(key=lambda b: b["batch_size"])
        elif isinstance(value, bool) or not isinstance(value, int | dict):
            into.setdefault(key, value)
        elif isinstance(value, int):
            into[key] = into.get(key, 0) + value
        else:
            _add(into.setdefault(key, {}), value)


def merge_stats(bodies: list[dict[str, Any]]) -> dict[str, Any]:
    """Triton statistics bodies of several workers summed per (model, version); the first body's
    order, then versions only the others hold (a sibling still serving one mid-swap)."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for body in bodies:
        for stat in body.get("model_stats", []):
            key = (stat["name"], stat["version"])
            if key in merged:
                _add(merged[key], stat)
            else:
                merged[key] = json.loads(json.dumps(stat))  # a deep copy we may add into
    return {"model_stats": list(merged.values())}


async def gather_stats(services: Services, path: str, local: dict[str, Any]) -> dict[str, Any]:
    """`local` (this worker's body for `path`) summed with every sibling's."""
    if services.siblings is None:
        return local
    bodies = [local]
    for a in await services.siblings.call_all("GET", path, STATS_TIMEOUT_S):
        if a.status == 200:
            bodies.append(json.loads(a.body))
        else:  # restarting, or the model is not loaded there (yet): its share is left out
            log.debug("worker %d left out of %s: %s %s", a.worker, path, a.status, a.body[:200])
    return merge_stats(bodies)


# -- explicit model control ----------------------------------------------------------------------


async def load_everywhere(services: Services, name: str) -> None:
    await services.repository.load(name)
    await _fan_out(services, "load", name)


async def unload_everywhere(services: Services, name: str) -> None:
    await services.repository.unload(name)
    await _fan_out(services, "unload", name)


async def _fan_out(services: Services, op: str, name: str) -> None:
    siblings = services.siblings
    if siblings is None:
        return
    answers = await siblings.call_all("POST", f"/v2/repository/models/{name}/{op}", LOAD_TIMEOUT_S)
    siblings.remember_loaded([n for n, e in services.repository.entries.items() if e.ready])
    failed = [a for a in answers if a.status != 200]
    if failed:
        why = "; ".join(
            f"worker {a.worker}: "
            + (f"{a.status} {a.body[:300].decode(errors='replace')}" if a.status else "unreachable")
            for a in failed
        )
        raise InternalError(
            f"{op} of model '{name}' done on this worker but not on every worker ({why}); "
            f"a restarting worker {op}s it as it starts; retry to be sure"
        )
