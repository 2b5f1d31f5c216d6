"""Model control and admin: Triton's none/poll/explicit modes, the admin token, strict readiness,
and the refusal to serve open model control on a non-loopback host."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from litestar.testing import TestClient

from server.app import create_app
from server.contract.layout import PUBLISHING
from server.control import RepositoryPoller
from server.engine.repository import ModelRepository
from server.main import _open_admin
from server.pipelines.registry import PipelineRegistry
from server.settings import Settings
from tests.server.http.helpers import assert_error

UNLOAD = "/v2/repository/models/simple/unload"
LOAD = "/v2/repository/models/simple/load"


def _client(repo: Path, **settings) -> TestClient:
    return TestClient(create_app(Settings(model_repository=str(repo), device="cpu", **settings)))


@pytest.mark.parametrize("mode", ["none", "poll"])
def test_load_and_unload_are_refused_outside_explicit_mode(demo_repo, mode):
    with _client(demo_repo, model_control_mode=mode) as c:
        assert_error(c.post(UNLOAD), 403, "not allowed", mode)
        assert_error(c.post(LOAD), 403, "not allowed")
        assert c.get("/v2/models/simple/ready").status_code == 200


def test_admin_token_guards_load_and_unload(demo_repo):
    with _client(
        demo_repo, model_control_mode="explicit", load_models=["*"], admin_token="s3cret"
    ) as c:
        r = c.post(UNLOAD)
        assert_error(r, 401, "Bearer")
        assert r.headers["www-authenticate"] == "Bearer"
        assert_error(c.post(UNLOAD, headers={"Authorization": "Bearer wrong"}), 403, "not valid")
        assert_error(c.post(UNLOAD, headers={"Authorization": "Basic s3cret"}), 401)
        assert c.post(UNLOAD, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.get("/v2/models/simple/ready").status_code == 503
        assert c.post(LOAD, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.get("/v2/models/simple/ready").status_code == 200


def test_explicit_mode_loads_only_the_models_named(demo_repo):
    with _client(demo_repo, model_control_mode="explicit", load_models=["mlp"]) as c:
        assert c.get("/v2/models/mlp/ready").status_code == 200
        assert c.get("/v2/models/simple/ready").status_code == 503
        assert c.get("/v2/health/ready").status_code == 200  # every model that should be is


def test_strict_readiness_needs_every_model(repo_copy):
    (repo_copy / "broken").mkdir()
    (repo_copy / "broken" / "config.toml").write_text('name = "broken"\nmax_batch_size = "x"\n')
    with _client(repo_copy) as c:
        r = c.get("/v2/health/ready")
        assert r.status_code == 503 and r.json() == {"ready": False}
        rows = c.post("/v2/repository/index").json()
        broken = next(row for row in rows if row["name"] == "broken")
        assert "$.max_batch_size" in broken["reason"]
        assert str(repo_copy) not in broken["reason"]  # paths are relative to the repository
    with _client(repo_copy, strict_readiness=False) as c:
        assert c.get("/v2/health/ready").status_code == 200


def test_poller_follows_the_repository(repo_copy):
    async def main() -> None:
        repo = ModelRepository(repo_copy)
        poller = RepositoryPoller(repo, PipelineRegistry(repo_copy, repo))
        await repo.load_all(["mlp"])
        poller.remember()
        shutil.copytree(repo_copy / "mlp", repo_copy / "mlp2")
        cfg = repo_copy / "mlp2" / "config.toml"
        cfg.write_text(cfg.read_text().replace('name = "mlp"', 'name = "mlp2"'))
        await poller.poll()  # new: loaded
        assert repo.get("mlp2").version == 1
        first = repo.get("mlp2")
        cfg.write_text(cfg.read_text() + "\n")  # re-published: reloaded
        await poller.poll()
        assert repo.get("mlp2") is not first
        shutil.rmtree(repo_copy / "mlp2")
        await poller.poll()  # gone once: maybe mid-publish, still served
        assert repo.get("mlp2").version == 1
        await poller.poll()  # gone twice: unloaded
        assert repo.entries["mlp2"].state == "UNAVAILABLE"
        await repo.close()

    asyncio.run(main())


def test_poller_waits_while_a_family_is_being_published(repo_copy):
    """export moves a family's folders in under `.publishing`: the scan waits for all of them."""

    async def main() -> None:
        repo = ModelRepository(repo_copy)
        poller = RepositoryPoller(repo, PipelineRegistry(repo_copy, repo))
        await repo.load_all(["mlp"])
        poller.remember()
        (repo_copy / PUBLISHING).write_text("1")
        shutil.copytree(repo_copy / "mlp", repo_copy / "mlp2")
        cfg = repo_copy / "mlp2" / "config.toml"
        cfg.write_text(cfg.read_text().replace('name = "mlp"', 'name = "mlp2"'))
        await poller.poll()
        assert "mlp2" not in repo.entries
        (repo_copy / PUBLISHING).unlink()
        await poller.poll()
        assert repo.get("mlp2").version == 1
        await repo.close()

    asyncio.run(main())


@pytest.mark.parametrize(
    ("host", "mode", "token", "allow", "refused"),
    [
        ("0.0.0.0", "explicit", "", False, True),
        ("0.0.0.0", "explicit", "t", False, False),
        ("0.0.0.0", "explicit", "", True, False),
        ("0.0.0.0", "poll", "", False, False),
        ("127.0.0.1", "explicit", "", False, False),
        ("::1", "explicit", "", False, False),
        ("localhost", "explicit", "", False, False),
        ("shop.example", "explicit", "", False, True),
    ],
)
def test_open_model_control_on_a_public_host_is_refused(host, mode, token, allow, refused):
    s = Settings(host=host, model_control_mode=mode, admin_token=token, allow_open_admin=allow)
    assert _open_admin(s) is refused
