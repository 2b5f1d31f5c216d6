"""The HTTP floor: shopserve's own app (same Litestar build, error handlers and lifespan, over an
empty model repository) plus one route that reads the body and answers a fixed JSON, served by
uvicorn with the same options as `shopserve serve`. `noop` minus this is what a model costs.

    python -m bench.server_noop --port PORT
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from litestar import Request, Response, post

__all__ = ["main", "noop_infer"]

_ANSWER = b'{"model_name":"noop","model_version":"1","outputs":[]}'


@post("/v2/models/{model_name:str}/noop", status_code=200)
async def noop_infer(request: Request, model_name: str) -> Response:
    await request.body()  # the body is read, as a real infer would
    return Response(content=_ANSWER, media_type="application/json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.server_noop")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)

    import uvicorn

    from server.app import create_app
    from server.logs import configure_logging
    from server.settings import load_settings

    with tempfile.TemporaryDirectory(prefix="shopserve-noop-") as empty:
        settings = load_settings(model_repository=Path(empty), host=args.host, port=args.port)
        configure_logging(settings.log_level, settings.log_format)
        app = create_app(settings, extra_routes=[noop_infer])
        # the options of server/main.py's uvicorn.Config, so the floor is the same stack
        config = uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            http=settings.http,
            loop=settings.loop,
            lifespan="on",
            access_log=settings.access_log,
            log_level=settings.log_level,
            timeout_graceful_shutdown=settings.graceful_timeout_s,
            server_header=False,
        )
        server = uvicorn.Server(config)
        server.run()
        return 0 if server.started else 1


if __name__ == "__main__":
    raise SystemExit(main())
