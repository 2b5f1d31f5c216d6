"""The gRPC server: `grpc.aio` on the event loop that serves HTTP, started and stopped by the
app's lifespan (server/app.py), on `settings.grpc_port`."""

from __future__ import annotations

import logging

import grpc

from server.grpc.service import InferenceService, generic_handlers
from server.http.deps import Services

__all__ = ["GrpcServer"]

log = logging.getLogger("shopserve.grpc")


class GrpcServer:
    def __init__(self, services: Services, *, reuse_port: bool = False) -> None:
        self.services = services
        # the workers of a multi-worker server all bind grpc_port (the supervisor holds it first:
        # server/workers/sockets.py); one server alone binds it exclusively
        self.reuse_port = reuse_port
        self.port = 0
        self._server: grpc.aio.Server | None = None

    @property
    def address(self) -> str:
        s = self.services.settings
        host = f"[{s.host}]" if ":" in s.host else s.host
        return f"{host}:{self.port or s.grpc_port}"

    async def start(self) -> None:
        """Bind and serve; a port that is taken raises (SO_REUSEPORT off unless this is one of
        several workers: two servers never share a port without knowing)."""
        settings = self.services.settings
        server = grpc.aio.server(
            options=[
                ("grpc.so_reuseport", int(self.reuse_port)),
                # as REST's max_body_bytes; answers are not bounded (tritonclient's aren't either)
                ("grpc.max_receive_message_length", settings.max_body_bytes),
                ("grpc.max_send_message_length", -1),
            ]
        )
        server.add_generic_rpc_handlers(generic_handlers(InferenceService(self.services)))
        address = self.address
        try:
            port = server.add_insecure_port(address)
        except RuntimeError as exc:
            raise RuntimeError(f"gRPC: cannot listen on {address}: {exc}") from None
        if port == 0:
            raise RuntimeError(f"gRPC: cannot listen on {address}")
        self.port = port
        await server.start()
        self._server = server
        log.info("gRPC (KServe V2) on %s", self.address)

    async def stop(self, grace_s: float) -> None:
        """Refuse new calls, give the running ones `grace_s` to finish, then cancel them."""
        if self._server is not None:
            await self._server.stop(grace_s)
            self._server = None
