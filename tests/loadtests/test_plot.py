"""The load-test figure (SLO lines, requests/s and error rate beside latency), the mix read from
`/v1/pipelines`, and the Locust command line, on synthetic data: no Locust run."""

from __future__ import annotations

import csv
import json
import math
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from loadtests.locust_run import LocustRun, _command
from loadtests.mix import (
    format_mix,
    parse_mix,
    pipeline_rows,
    served_classify_tasks,
    served_endpoints,
    served_mix,
)
from loadtests.plot import plot_report, read_history, report_figure

pytest.importorskip("matplotlib")

COLUMNS = ["Timestamp", "User Count", "Type", "Name", "Requests/s", "Failures/s"]
COLUMNS += ["50%", "95%", "99%", "Total Request Count", "Total Failure Count"]


def write_history(prefix: Path) -> None:
    """20 s at 40 + 5 requests/s; score fails every other second; the totals restart at 5 s
    (the warm-up's reset)."""
    with open(f"{prefix}_stats_history.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for t in range(20):
            since = t if t < 5 else t - 5  # seconds counted in the totals
            for name, rps in (("recommend", 40), ("score", 5), ("Aggregated", 45)):
                fails = (since + 1) // 2 if name == "score" else 0
                p50 = "N/A" if t == 0 else 3
                w.writerow([1000 + t, 4, "POST", name, 0, 0, p50, 9, 15 + t, since * rps, fails])


def test_history_is_read_per_endpoint_with_rates_from_the_totals(tmp_path):
    write_history(tmp_path / "locust")
    series = read_history(tmp_path / "locust")
    assert set(series) == {"recommend", "score", "Aggregated"}
    s = series["score"]
    assert s.t_s[:3] == [0, 1, 2] and s.p99_ms[-1] == 34 and s.p50_ms[0] != s.p50_ms[0]  # NaN
    assert s.rps[:5] == [0.0] + [5.0] * 4 and s.rps[6:] == [5.0] * 14
    assert math.isnan(s.rps[5]) and math.isnan(s.error_pct[5])  # the reset: a gap, not a dip
    assert series["recommend"].rps[1:5] == [40.0] * 4
    assert s.error_pct[1:5] == [20.0, 0.0, 20.0, 0.0]


def test_each_latency_panel_draws_its_slo_and_rates_sit_beside_it(tmp_path):
    write_history(tmp_path / "locust")
    slo = {"recommend": {"p99_ms": 50}, "score": {"p99_ms": 20, "error_rate": 0.0}}
    fig = report_figure(read_history(tmp_path / "locust"), slo, warmup_s=5)
    by_title = {ax.get_title(): ax for ax in fig.axes if ax.get_title()}
    assert list(by_title) == [
        "recommend: latency (10 s window)",
        "recommend: throughput and errors",
        "score: latency (10 s window)",
        "score: throughput and errors",
        "Aggregated: latency (10 s window)",
        "Aggregated: throughput and errors",
    ]
    for name, limit in (("recommend", 50), ("score", 20)):
        lines = {
            line.get_label(): line for line in by_title[f"{name}: latency (10 s window)"].lines
        }
        slo_line = lines[f"SLO p99 {limit} ms"]
        assert list(slo_line.get_ydata()) == [limit, limit]  # horizontal, at the SLO
        assert {"p50", "p95", "p99"} <= set(lines)
    aggregated = by_title["Aggregated: latency (10 s window)"]
    assert not any(line.get_label().startswith("SLO") for line in aggregated.lines)
    rate_ax = by_title["score: throughput and errors"]
    assert [line.get_label() for line in rate_ax.lines] == ["requests/s"]
    twins = [ax for ax in fig.axes if ax is not rate_ax and ax.bbox.bounds == rate_ax.bbox.bounds]
    assert [line.get_label() for twin in twins for line in twin.lines] == ["error rate %"]
    assert list(twins[0].lines[0].get_ydata())[1:3] == [20.0, 0.0]
    out = tmp_path / "latency.png"
    plot_report(tmp_path / "locust", out, slo, warmup_s=5)
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_the_mix_keeps_only_served_endpoints():
    mix = parse_mix("recommend=50, search=30,classify=15,score=0")
    assert format_mix(mix) == "recommend=50,search=30,classify=15,score=0"
    assert served_mix(mix, ["score", "recommend", "classify"]) == {"recommend": 50, "classify": 15}


def _row(name: str, kind: str, state: str = "READY", models: dict[str, str] | None = None):
    ms = [
        {"name": m, "version": v, "gate": "passed" if v else "missing"}
        for m, v in (models or {}).items()
    ]
    return {"name": name, "kind": kind, "state": state, "models": ms}


def test_served_endpoints_and_classify_tasks_come_from_v1_pipelines():
    heads = {"classify_sentiment": "", "classify_recommended": "2", "classify_department": "1"}
    body = json.dumps(
        {
            "pipelines": [
                _row("recommend", "recommend"),
                _row("search", "search", "UNAVAILABLE"),
                _row("score", "score"),
                _row("score_cancellation", "order_score"),
                _row("answer", "answer"),
                _row("classify", "classify", models=heads),
            ]
        }
    ).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            self.send_response(200 if self.path == "/v1/pipelines" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        rows = pipeline_rows(f"http://127.0.0.1:{server.server_port}/")
        assert served_endpoints(rows) == ["recommend", "classify", "score", "answer"]
        # the head that failed its gate (no version) is not sent: its requests would be 400s
        assert served_classify_tasks(rows) == ["recommended", "department"]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_the_locust_run_time_includes_the_warmup(tmp_path):
    run = LocustRun("http://h", 8, 4, duration_s=30, report_dir=tmp_path, warmup_s=10, html=False)
    cmd = _command(run)
    assert cmd[cmd.index("-t") + 1] == "40s" and "--html" not in cmd
    assert cmd[cmd.index("--csv") + 1] == str(tmp_path / "locust")
