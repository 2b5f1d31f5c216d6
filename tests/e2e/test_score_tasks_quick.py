"""/v1/score's cancellation_risk task over the model `shopserve export all --quick` built (torch
trains it, so this lives with the other quick-repository tests; the routing and the bad fields
are tested without torch in tests/server/http/test_v1_score_tasks.py)."""

from __future__ import annotations

import pytest
from litestar.testing import TestClient

from server.app import create_app
from server.contract.pipelines import load_pipeline_spec
from server.settings import Settings
from tests.server.http.helpers import assert_error
from tests.server.http.test_v1_score_tasks import N_FEATURES, _cancel, assert_explained
from tests.server.http.v1_checks import GENEROUS, ok
from tests.server.pipelines.order_shop import ORDER_LINE


@pytest.mark.slow
def test_quick_built_cancellation_model_answers_with_exact_contributions(shop_repo):
    _, spec = load_pipeline_spec(shop_repo / "score_cancellation" / "pipeline.toml")
    settings = Settings(model_repository=str(shop_repo), device="cpu", budgets_ms=GENEROUS)
    with TestClient(create_app(settings)) as c:
        for line in (_cancel(), _cancel(customer_id=None, stock_code="NOSUCH")):
            body = ok(c.post("/v1/score", json=line))
            assert 0.0 < body["probability"] < 1.0
            assert body["threshold"] == spec.threshold
            assert body["model_versions"] == {"cancellation_risk": "1"}
            assert_explained(body, N_FEATURES)
        assert_error(c.post("/v1/score", json={"order_line": ORDER_LINE}), 400, "$.order_line")
