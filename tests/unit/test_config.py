"""Settings come from defaults, then LOYALTY_* variables, then flags."""

from __future__ import annotations

from dataclasses import fields

import pytest

from service.config import Settings, load_settings


def test_defaults_serve_on_loopback_with_an_embedded_sqlite_store() -> None:
    settings = load_settings([], environ={})
    assert settings == Settings()
    assert settings.address.startswith("127.0.0.1:")
    assert settings.database_url.startswith("sqlite:///")


def test_environment_overrides_defaults_and_flags_override_environment() -> None:
    environ = {
        "LOYALTY_CURRENCY": "EUR",
        "LOYALTY_TIME_ZONE": "Europe/Berlin",
        "LOYALTY_REFLECTION": "off",
        "LOYALTY_MAX_WORKERS": "4",
    }
    settings = load_settings(["--currency", "USD", "--demo-data"], environ=environ)
    assert settings.currency == "USD"
    assert settings.time_zone == "Europe/Berlin"
    assert settings.reflection is False
    assert settings.max_workers == 4
    assert settings.demo_data is True


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--time-zone", "Nowhere/City"], "unknown time zone"),
        (["--time-zone", "America"], "unknown time zone"),  # a directory of zones
        (["--currency", "rubles"], "ISO 4217"),
        (["--max-workers", "0"], ">= 1"),
        (["--max-sale-time-age-s", "0"], "max_sale_time_age_s must be > 0"),
        (["--max-sale-time-age-s", "nan"], "max_sale_time_age_s must be > 0"),
        (["--max-sale-time-age-s", "inf"], "max_sale_time_age_s must be > 0"),
        (["--log-format", "xml"], "log_format must be json or text"),
        (["--log-level", "LOUD"], "log_level must be one of"),
        (["--otlp-endpoint", "collector:4317"], "otlp_endpoint must be an http"),
        (["--token-format", "1"], "token_format must be 2 or 3"),
    ],
)
def test_bad_settings_are_refused_with_a_clear_message(flags: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_settings(flags, environ={})


def test_every_flag_says_what_it_does_and_its_default():
    parser_help = _help_text()
    for f in fields(Settings):
        flag = "--" + f.name.replace("_", "-")
        assert flag in parser_help
        assert f.metadata.get("help"), f"{f.name} has no help text"
    blocks = parser_help.split("\n  --")[1:]
    assert len(blocks) == len(fields(Settings))
    for block in blocks:
        flat = " ".join(block.split())
        assert "(default: " in flat and "env LOYALTY_" in flat, flat


def test_help_shows_the_default_of_a_number_and_a_flag():
    text = " ".join(_help_text().split())
    assert (
        "threads serving unary calls in one process (default: 16; env LOYALTY_MAX_WORKERS)" in text
    )
    assert "(default: false; env LOYALTY_DEVELOPMENT)" in text


def _help_text() -> str:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        load_settings(["--help"], environ={})
    return out.getvalue()
