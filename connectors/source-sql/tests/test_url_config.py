"""source-sql's URL: a NUL hidden as %00 is refused before anything connects (a driver would cut
the setting there and drop what follows, such as sslmode)."""

from __future__ import annotations

import pytest

from dbkit import ConfigError, load_config
from source_sql.config import SqlUrlConfig


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://reader:pa%00ss@127.0.0.1:5432/shop",
        "postgresql+psycopg://re%00ader:secret@127.0.0.1:5432/shop",
        "postgresql+psycopg://reader:secret@127.0.0.1:5432/sh%00op",
        "postgresql+psycopg://reader:secret@127.0.0.1:5432/shop?sslmode=require%00",
        "postgresql+psycopg://reader:secret@127.0.0.1:5432/shop?sslmode=require&application_name=a%00b",
    ],
)
def test_a_percent_encoded_nul_is_refused(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(SqlUrlConfig, {"url": url})
    message = str(info.value)
    assert "url" in message
    assert "NUL" in message
    assert "secret" not in message
    assert "pa%00ss" not in message


def test_a_url_without_nul_is_accepted() -> None:
    config = load_config(SqlUrlConfig, {"url": "postgresql+psycopg://reader:secret@127.0.0.1:5432/shop"})
    assert config.url.get_secret_value().endswith("/shop")
