"""The one base of every wire Struct, V1 and V2: unknown fields are refused, so a typo in a
request is a 400 naming the field's `$.path` instead of a silently ignored value."""

from __future__ import annotations

import msgspec

__all__ = ["ErrorBody", "Wire"]


class Wire(msgspec.Struct, forbid_unknown_fields=True):
    pass


class ErrorBody(Wire):
    """Every error answer, V1 and V2 (V2 clients read `error`)."""

    error: str  # the message; it names the field for bad input
    code: str  # the short code of server/errors.py
    request_id: str
