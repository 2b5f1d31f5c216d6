"""Settings: the file, then the environment, then flags; bad values name the field."""

from pathlib import Path

import pytest

from server.settings import load_settings


def test_settings_file_then_env_then_flags(tmp_path: Path):
    f = tmp_path / "s.toml"
    f.write_text('port = 9000\nlog_level = "debug"\nmax_body_bytes = 4096\n')
    s = load_settings(
        f, environ={"SHOPSERVE_PORT": "9100", "SHOPSERVE_LOAD_MODELS": "a,b"}, host="127.0.0.2"
    )
    assert (s.port, s.log_level, s.max_body_bytes, s.host, s.load_models) == (
        9100,
        "debug",
        4096,
        "127.0.0.2",
        ["a", "b"],
    )
    with pytest.raises(Exception, match="port"):
        load_settings(None, environ={"SHOPSERVE_PORT": "-3"})
