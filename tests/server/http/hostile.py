"""The app both hostile-input suites attack (test_hostile_codec.py, test_hostile_schemathesis.py):
the demo repository with bagofwords' token ids bounded to its vocabulary, admin calls allowed
with the token `t`, and a pool to send each request with a client timeout."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import msgspec
from litestar.testing import TestClient

from server.app import create_app
from server.contract.model_config import encode_config
from server.settings import Settings

CLIENT_TIMEOUT_S = 15.0
MAX_BODY = 256 * 1024
VOCAB = 1000


def bounded_repository(demo_repo: Path, out: Path) -> Path:
    """The demo repository, with bagofwords' token ids bounded to its vocabulary."""
    from export.demo import demo_configs

    shutil.copytree(demo_repo, out)
    cfg = demo_configs()["bagofwords"]
    ids = msgspec.structs.replace(cfg.input[0], min_value=0, max_value=VOCAB - 1)
    bounded = msgspec.structs.replace(cfg, input=[ids])
    (out / "bagofwords" / "config.toml").write_bytes(encode_config(bounded))
    return out


@contextmanager
def hostile_app(demo_repo: Path, out: Path) -> Iterator[tuple[TestClient, ThreadPoolExecutor]]:
    """(client, pool) over bounded_repository(demo_repo, out), every model loaded."""
    app = create_app(
        Settings(
            model_repository=str(bounded_repository(demo_repo, out)),
            device="cpu",
            model_control_mode="explicit",
            load_models=["*"],
            admin_token="t",
            max_body_bytes=MAX_BODY,
        )
    )
    with TestClient(app) as client, ThreadPoolExecutor(1) as pool:
        yield client, pool
