"""The `SHOPSERVE_*` variables that the image and the manifests set must be settings the server
reads (server/settings.py): a misspelt one would be ignored silently, which no schema catches."""

from __future__ import annotations

from server.settings import Settings, load_settings

__all__ = ["check_settings_env"]

PREFIX = "SHOPSERVE_"


def check_settings_env(env: dict[str, str]) -> Settings:
    """Every SHOPSERVE_* name is a setting, and the values convert; returns the settings."""
    fields = set(Settings.__struct_fields__)
    names = [k for k in env if k.startswith(PREFIX)]
    unknown = [k for k in names if k[len(PREFIX) :].lower() not in fields]
    assert not unknown, f"not settings in server/settings.py: {unknown}"
    known = {k: v for k, v in env.items() if k[len(PREFIX) :].lower() in Settings.__struct_fields__}
    return load_settings(environ=known)
