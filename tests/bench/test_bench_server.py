"""`shopserve bench server`: the wrk summary parser, the ratios and targets, and one real cell
(shopserve batched, MLP, concurrency 1, 1 s) when wrk is installed."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from bench.server import main, parse_args
from bench.server_report import cpu_targets, evaluate_targets, format_table, ratios
from bench.server_wrk import lua_script, parse_wrk_output


def test_parse_wrk_output_reads_the_done_line():
    text = (
        "Running 2s test @ http://127.0.0.1:1/x\n  1 threads and 8 connections\n"
        'SHOPSERVE_WRK {"requests":5000,"duration_us":2000000,"p50_us":1500,"p99_us":4200,'
        '"mean_us":1600.5,"max_us":9000,"connect":0,"read":0,"write":0,"status":10,"timeout":0}\n'
    )
    r = parse_wrk_output(text)
    assert (r.requests, r.errors) == (5000, 10)
    assert r.p50_ms == pytest.approx(1.5) and r.p99_ms == pytest.approx(4.2)
    assert r.rps == pytest.approx(4990 / 2.0)  # non-2xx answers are not throughput


def test_parse_wrk_output_without_summary_fails():
    with pytest.raises(ValueError, match="no wrk summary"):
        parse_wrk_output("Running 2s test\nunable to connect\n")


def test_lua_script_reads_the_body_file(tmp_path: Path):
    script = lua_script(tmp_path / 'body "1".json')
    assert 'io.open("' in script and 'body \\"1\\".json' in script
    assert "latency:percentile(99)" in script and 'wrk.method = "POST"' in script


def _row(variant: str, c: int, rps: float, p50: float, p99: float, model: str = "mlp") -> dict:
    return {"variant": variant, "model": model, "concurrency": c, "rps": rps,
            "p50_ms": p50, "p99_ms": p99}  # fmt: skip


def test_ratios_and_targets():
    rows = [
        _row("direct", 1, 80000, 0.012, 0.03),
        _row("noop", 1, 5000, 0.18, 0.4),
        _row("unbatched", 1, 2500, 0.40, 0.9),
        _row("batched", 1, 2400, 0.42, 1.0),
        _row("unbatched", 64, 3000, 20.0, 40.0),
        _row("batched", 64, 4500, 14.0, 30.0),
        _row("litserve", 64, 2000, 30.0, 35.0),
    ]
    q = {(r["model"], r["concurrency"]): r for r in ratios(rows)}
    assert q[("mlp", 64)]["batched_over_unbatched_rps"] == pytest.approx(1.5)
    assert q[("mlp", 64)]["batched_over_litserve_rps"] == pytest.approx(2.25)
    assert q[("mlp", 1)]["batched_p50_over_floor_ms"] == pytest.approx(0.42 - 0.192)
    verdicts = {t.name.split(" ")[0] + t.name.split(" ")[-1]: t.met for t in evaluate_targets(rows)}
    assert all(verdicts.values()), verdicts
    # a litserve p99 below ours fails that target even at 2.25x the throughput
    rows[-1] = _row("litserve", 64, 2000, 30.0, 25.0)
    lit = [t for t in evaluate_targets(rows) if "litserve" in t.name]
    assert [t.met for t in lit] == [False]
    assert "NOT MET" in format_table(rows)


def test_cpu_per_request_over_the_http_floor():
    cells = {
        ("mlp", "noop", 1): {"req_per_server_cpu_s": 5000.0},  # 200 us
        ("mlp", "batched", 1): {"req_per_server_cpu_s": 1e6 / 310},  # +110 us: met
        ("mlp", "unbatched", 1): {"req_per_server_cpu_s": 2500.0},  # +200 us: not met
        ("mlp", "batched", 8): {"req_per_server_cpu_s": 3000.0},  # no noop cell: n/a
        ("encoder", "batched", 1): {"req_per_server_cpu_s": 100.0},  # not a CPU-target model
    }
    got = {
        (t.name.split(" ")[0], t.name.split("@c")[1].split(" ")[0]): t for t in cpu_targets(cells)
    }
    assert set(got) == {("batched", "1"), ("unbatched", "1"), ("batched", "8")}
    assert got[("batched", "1")].met is True
    assert got[("batched", "1")].got == "310 us = noop's 200 +110 us"
    assert got[("unbatched", "1")].met is False
    assert got[("batched", "8")].met is None


def test_parse_args_quick_and_subsets():
    a = parse_args(["--quick", "--models", "mlp", "--variants", "batched", "--concurrency", "1"])
    assert (a.warm_s, a.measure_s, a.models, a.variants, a.concurrency) == (
        1, 2, ["mlp"], ["batched"], [1])  # fmt: skip
    with pytest.raises(SystemExit):
        parse_args(["--variants", "triton"])


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)"
)
def test_one_cell_end_to_end(tmp_path: Path):
    out = tmp_path / "bench.json"
    t0 = time.monotonic()
    rc = main(["--models", "mlp", "--variants", "batched", "--concurrency", "1", "--warm-s", "0",
               "--measure-s", "1", "--no-install", "--json", str(out)])  # fmt: skip
    assert rc == 0
    assert time.monotonic() - t0 < 20
    doc = json.loads(out.read_text())
    [row] = doc["rows"]
    assert set(row) == {"variant", "model", "concurrency", "rps", "p50_ms", "p99_ms"}
    assert row["variant"] == "batched" and row["concurrency"] == 1 and row["rps"] > 0
    assert 0 < row["p50_ms"] <= row["p99_ms"]
