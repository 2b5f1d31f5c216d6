"""A short, bounded Locust run through `shopserve loadtest` against a server it starts itself."""

from __future__ import annotations

import pytest

from loadtests.cli import main
from loadtests.payloads import Payloads
from loadtests.report import check_slo, read_stats

pytestmark = pytest.mark.slow


def test_payloads_come_from_the_real_data():
    p = Payloads(seed=1)
    assert len(p.reviews) > 20_000 and len(p.sessions) == 12_330
    body = p.recommend()
    assert 1 <= len(body["history"]) <= 20
    assert set(p.score()["session"]) >= {"Month", "VisitorType", "Weekend", "PageValues"}
    assert 1 <= len(p.search()["query"]) <= 512


def test_short_loadtest_writes_reports_and_checks_slo(shop_repo, tmp_path):
    slo = tmp_path / "slo.toml"
    slo.write_text(
        "".join(
            f"[{e}]\np99_ms = 5000\nerror_rate = 0.1\nmin_requests = 1\n\n"
            for e in ("recommend", "search", "classify", "score")
        )
        + '["v2:mlp"]\nerror_rate = 0.0\n'
    )
    # a functional check: on a loaded test machine a model's own queue deadline (100 ms for the
    # text heads) can still expire now and then, so a few 504s are tolerated here
    settings = tmp_path / "settings.toml"
    settings.write_text(
        "[budgets_ms]\nrecommend = 5000\nsearch = 5000\nclassify = 5000\nscore = 5000\n"
    )
    report = tmp_path / "report"
    code = main(
        [
            "--model-repository",
            str(shop_repo),
            "--users",
            "3",
            "--spawn-rate",
            "3",
            "--duration",
            "8",
            "--server-config",
            str(settings),
            "--v2-weight",
            "1",
            "--slo",
            str(slo),
            "--report",
            str(report),
        ]
    )
    assert code == 0
    for name in ("locust_stats.csv", "locust_stats_history.csv", "report.html", "latency.png"):
        assert (report / name).stat().st_size > 0, name
    rows = {r.name: r for r in read_stats(report / "locust")}
    assert rows["score"].requests > 0 and rows["score"].failures == 0
    strict = tmp_path / "strict.toml"
    strict.write_text("[score]\np99_ms = 0\n\n[checkout]\nerror_rate = 0.0\n")
    problems = check_slo(list(rows.values()), strict)
    assert any("score: p99_ms" in p for p in problems)
    assert any("checkout: no requests" in p for p in problems)
