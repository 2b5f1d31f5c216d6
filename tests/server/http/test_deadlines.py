"""One timeout rule for V1 and V2: a request may only shorten its deadline; the header is a
finite number of ms >= 1; V2's `parameters.timeout` is in us, 0 meaning "no override"."""

from __future__ import annotations

import pytest

from server.budget import Budget, server_timing
from server.errors import BadRequest, DeadlineExceeded
from server.http.deadlines import v1_budget, v2_timeout_us


def test_v1_budget_is_the_smallest_given():
    assert v1_budget(None, None, 50.0, 0, "r").budget_ms == 50.0
    assert v1_budget(20, None, 50.0, 0, "r").budget_ms == 20
    assert v1_budget(20, "5", 50.0, 0, "r").budget_ms == 5.0
    assert v1_budget(None, "500", 50.0, 0, "r").budget_ms == 50.0  # never lengthened
    b = v1_budget(10, None, 50.0, 1_000, "rid")
    assert (b.deadline_ns, b.request_id) == (1_000 + 10_000_000, "rid")


@pytest.mark.parametrize("header", ["0", "0.5", "-1", "abc", "nan", "inf", "3600001"])
def test_bad_timeout_headers_are_400(header):
    with pytest.raises(BadRequest, match="X-Request-Timeout-Ms"):
        v1_budget(None, header, 50.0, 0, "")
    with pytest.raises(BadRequest, match="X-Request-Timeout-Ms"):
        v2_timeout_us({}, header)


def test_v2_timeout_parameter_and_header():
    assert v2_timeout_us({}, None) is None
    assert v2_timeout_us({"timeout": 0}, None) is None  # 0: no override, as in Triton
    assert v2_timeout_us({"timeout": 2_000}, None) == 2_000
    assert v2_timeout_us({"timeout": 2_000}, "1") == 1_000
    for bad in (-1, 1.5, True, "10"):
        with pytest.raises(BadRequest, match="parameters.timeout"):
            v2_timeout_us({"timeout": bad}, None)


def test_budget_stages_and_server_timing():
    b = Budget(60_000)
    with b.stage("encode"):
        pass
    with b.stage("encode"):
        pass
    b.check("retrieve")
    assert set(b.stages) == {"encode"} and b.left_ns() > 0
    assert b.server_timing().startswith("encode;dur=") and ", total;dur=" in b.server_timing()
    assert server_timing({"a": 1_500_000}) == "a;dur=1.500"
    spent = Budget(1, arrival_ns=0)
    with pytest.raises(DeadlineExceeded, match="budget of 1 ms spent before stage 'rank'"):
        spent.check("rank")
