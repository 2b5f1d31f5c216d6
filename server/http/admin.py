"""Who may change what is served: the model control mode (Triton's NONE and POLL refuse explicit
load/unload) and the admin token (a Bearer token compared in constant time)."""

from __future__ import annotations

import hmac

from litestar import Request

from server.errors import Forbidden, Unauthorized
from server.settings import Settings

__all__ = ["check_admin", "check_model_control"]


def check_admin(request: Request, settings: Settings) -> None:
    """Raise unless this request may load or unload models."""
    check_model_control(request.headers.get("authorization", ""), settings)


def check_model_control(authorization: str, settings: Settings) -> None:
    """Raise unless a caller whose `Authorization` is `authorization` may load or unload models
    (REST gives the header, gRPC the metadata of the same name)."""
    if settings.model_control_mode != "explicit":
        raise Forbidden(
            f"explicit model load / unload is not allowed in model_control_mode "
            f"'{settings.model_control_mode}' (start the server with model_control_mode = "
            '"explicit")'
        )
    token = settings.admin_token
    if not token:
        return
    scheme, _, value = authorization.partition(" ")
    if not authorization or scheme.lower() != "bearer" or not value:
        raise Unauthorized("model control needs `Authorization: Bearer <admin token>`")
    if not hmac.compare_digest(value.strip().encode(), token.encode()):
        raise Forbidden("the admin token is not valid")
