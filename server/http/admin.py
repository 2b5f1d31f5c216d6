"""Who may change what is served: the model control mode (Triton's NONE and POLL refuse explicit
load/unload) and the admin token (a Bearer token compared in constant time)."""

from __future__ import annotations

import hmac

from litestar import Request

from server.errors import Forbidden, Unauthorized
from server.settings import Settings

__all__ = ["check_admin"]


def check_admin(request: Request, settings: Settings) -> None:
    """Raise unless this request may load or unload models."""
    if settings.model_control_mode != "explicit":
        raise Forbidden(
            f"explicit model load / unload is not allowed in model_control_mode "
            f"'{settings.model_control_mode}' (start the server with model_control_mode = "
            '"explicit")'
        )
    token = settings.admin_token
    if not token:
        return
    given = request.headers.get("authorization", "")
    scheme, _, value = given.partition(" ")
    if not given or scheme.lower() != "bearer" or not value:
        raise Unauthorized("model control needs `Authorization: Bearer <admin token>`")
    if not hmac.compare_digest(value.strip().encode(), token.encode()):
        raise Forbidden("the admin token is not valid")
