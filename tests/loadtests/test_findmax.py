"""`--find-max`'s search on a fake step function, and the per-step SLO verdict (no Locust, no
server)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from loadtests.findmax import Step, find_max, render_step, render_summary, step_problems
from loadtests.locust_run import Usage
from loadtests.report import EndpointStats

SLO = {
    "recommend": {"p99_ms": 50, "error_rate": 0.0},
    "classify": {"p99_ms": 100, "error_rate": 0.0},
    "checkout": {"p99_ms": 10},  # not served: not part of a step's verdict
}


@dataclass
class Fake:
    users: int
    passed: bool


def boundary(limit: int, calls: list[int]):
    """A monotone step: passes up to `limit` users."""

    def step(users: int) -> Fake:
        calls.append(users)
        return Fake(users, users <= limit)

    return step


@pytest.mark.parametrize("limit", [1, 2, 3, 5, 8, 13, 37, 63])
def test_finds_the_exact_boundary_in_few_steps(limit):
    calls: list[int] = []
    best, steps, reason = find_max(
        boundary(limit, calls), start_users=1, max_users=64, max_steps=20, resolution=0
    )
    assert best is not None and best.users == limit and best.passed
    assert [s.users for s in steps] == calls
    assert len(calls) <= 2 * math.ceil(math.log2(64)) + 1  # doubling, then bisection
    assert limit + 1 in calls  # the failing neighbour was seen
    assert f"between {limit} (pass) and {limit + 1} (fail)" in reason


def test_resolution_trades_precision_for_steps():
    exact: list[int] = []
    rough: list[int] = []
    find_max(boundary(37, exact), start_users=2, max_users=64, max_steps=20, resolution=0)
    best, _, _ = find_max(
        boundary(37, rough), start_users=2, max_users=64, max_steps=20, resolution=0.1
    )
    assert len(rough) < len(exact)
    assert best is not None and 37 * 0.9 <= best.users <= 37


def test_all_pass_stops_at_max_users():
    calls: list[int] = []
    best, steps, reason = find_max(
        boundary(10**6, calls), start_users=2, max_users=48, max_steps=20
    )
    assert calls == [2, 4, 8, 16, 32, 48]
    assert best is not None and best.users == 48
    assert "up to --max-users 48 passed" in reason


def test_none_pass_returns_nothing_after_two_steps():
    calls: list[int] = []
    best, steps, reason = find_max(boundary(0, calls), start_users=2, max_users=64, max_steps=20)
    assert best is None and calls == [2, 1]
    assert reason.startswith("no step passed")


def test_the_step_count_is_bounded():
    calls: list[int] = []
    best, steps, reason = find_max(boundary(37, calls), start_users=1, max_users=64, max_steps=4)
    assert calls == [1, 2, 4, 8] and best is not None and best.users == 8
    assert "step limit (4)" in reason
    calls.clear()
    best, _, reason = find_max(
        boundary(37, calls), start_users=1, max_users=64, max_steps=8, resolution=0
    )
    assert len(calls) == 8 and best is not None and best.users <= 37
    assert "the boundary is in" in reason


def row(name: str, p99_ms: float, failures: int = 0, requests: int = 100) -> EndpointStats:
    return EndpointStats(name, requests, failures, 10.0, p99_ms / 4, p99_ms / 2, p99_ms)


def test_a_step_passes_when_every_endpoint_meets_its_p99_without_errors():
    rows = [row("recommend", 49), row("classify", 100), row("Aggregated", 100)]
    assert step_problems(rows, SLO, ["recommend", "classify"]) == []


def test_an_endpoint_over_its_p99_fails_the_step():
    rows = [row("recommend", 51), row("classify", 20)]
    assert step_problems(rows, SLO, ["recommend", "classify"]) == ["recommend: p99_ms 51 > 50"]


def test_any_error_fails_the_step_even_where_the_file_allows_some():
    slo = {"recommend": {"p99_ms": 50, "error_rate": 0.5}}
    rows = [row("recommend", 10, failures=1), row("v2:mlp", 1, failures=2)]
    problems = step_problems(rows, slo, ["recommend"])
    assert problems == ["recommend: error rate 0.0100 > 0.0", "v2:mlp: 2 errors"]


def test_an_endpoint_of_the_mix_that_got_no_answer_fails_the_step():
    problems = step_problems([row("recommend", 10)], SLO, ["recommend", "classify"])
    assert problems == ["classify: no requests were made"]


def test_the_tables_show_each_endpoint_against_its_slo_and_the_answer():
    good = Step(4, True, [row("recommend", 20), row("Aggregated", 20)], [], Usage(0, 10, 5, 12))
    bad = Step(
        8, False, [row("recommend", 80), row("Aggregated", 80)], ["recommend: p99_ms 80 > 50"]
    )
    text = render_step(good, 1, SLO, ["recommend"])
    assert "step 1: 4 users" in text and "-> PASS" in text and "locust 0.50, server 1.20" in text
    assert "MISSED" in render_step(bad, 2, SLO, ["recommend"])
    summary = render_summary([good, bad], good, "boundary between 4 (pass) and 8 (fail) users")
    assert "fail: recommend: p99_ms 80 > 50" in summary
    assert "find-max: 4 users (10.0 requests/s)" in summary.splitlines()[-1]
    assert "no user count met" in render_summary([bad], None, "no step passed")
