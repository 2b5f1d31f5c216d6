"""What one worker asks of its siblings (server/http/siblings.py): statistics summed per model
version, calls over each sibling's Unix socket carrying the run's token, the explicit API's list
of loaded models for a restarted worker."""

from __future__ import annotations

import asyncio
from pathlib import Path

from server.http.siblings import SIBLING_HEADER, Siblings, merge_stats, read_loaded


def _stat(version: str, success: int, last: int, batches: dict[int, int]) -> dict:
    return {
        "name": "mlp",
        "version": version,
        "last_inference": last,
        "inference_count": success,
        "inference_stats": {"success": {"count": success, "ns": 10 * success}},
        "batch_stats": [
            {"batch_size": b, "compute_infer": {"count": n, "ns": n}} for b, n in batches.items()
        ],
        "memory_usage": [],
        "shopserve": {"rejected": 1},
    }


def test_stats_sum_per_version_and_keep_what_only_a_sibling_holds():
    mine = {"model_stats": [_stat("2", 3, 100, {1: 3})]}
    theirs = {"model_stats": [_stat("2", 5, 200, {1: 1, 4: 1}), _stat("1", 7, 50, {})]}
    merged = merge_stats([mine, theirs])["model_stats"]
    assert [(s["version"]) for s in merged] == ["2", "1"]
    two = merged[0]
    assert two["inference_count"] == 8 and two["last_inference"] == 200
    assert two["inference_stats"]["success"] == {"count": 8, "ns": 80}
    assert [(b["batch_size"], b["compute_infer"]["count"]) for b in two["batch_stats"]] == [
        (1, 4),
        (4, 1),
    ]
    assert two["shopserve"] == {"rejected": 2} and two["memory_usage"] == []
    assert mine["model_stats"][0]["inference_count"] == 3  # the inputs are left alone


def test_calls_reach_each_sibling_with_the_token(tmp_path: Path):
    seen: list[bytes] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
        await writer.drain()
        writer.close()

    async def scenario() -> list:
        me = Siblings(0, 3, tmp_path, "s3cret", tmp_path / "explicit.json")
        server = await asyncio.start_unix_server(answer, path=str(me.socket_path(1)))
        async with server:  # worker 2 has no socket: restarting
            return await me.call_all("GET", "/v2/models/stats", 5.0)

    one, two = asyncio.run(scenario())
    assert (one.worker, one.status, one.body) == (1, 200, b"{}")
    assert (two.worker, two.status) == (2, 0)
    assert f"{SIBLING_HEADER}: s3cret".encode() in seen[0]
    assert seen[0].startswith(b"GET /v2/models/stats HTTP/1.1")


def test_the_token_tells_a_sibling_call_and_the_loaded_list_survives(tmp_path: Path):
    s = Siblings(1, 2, tmp_path, "tok", tmp_path / "explicit.json")
    assert s.is_sibling_call({SIBLING_HEADER: "tok"})
    assert not s.is_sibling_call({SIBLING_HEADER: "other"}) and not s.is_sibling_call({})
    assert read_loaded(tmp_path / "explicit.json") is None
    s.remember_loaded(["simple", "mlp"])
    assert read_loaded(tmp_path / "explicit.json") == ["mlp", "simple"]
