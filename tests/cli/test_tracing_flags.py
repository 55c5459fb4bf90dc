"""`agentcore server run|start --tracing --otlp-endpoint --trace-retention --trace-max-spans`: parsed
into the server's configuration, malformed values refused, and forwarded by `start`."""

from __future__ import annotations

from pathlib import Path

import pytest

from open_agentcore.cli.main import parser
from open_agentcore.cli.server import _forwarded, config_of


def test_tracing_is_on_by_default_and_kept_a_week() -> None:
    parsed = config_of(parser().parse_args(["server", "run", "--data-dir", "/tmp/x"]))
    assert (parsed.tracing, parsed.otlp_endpoint, parsed.trace_retention, parsed.trace_max_spans) == (
        True, None, 7 * 86400.0, 200_000,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("age", "seconds"),
    [("3600", 3600.0), ("90m", 5400.0), ("24h", 86400.0), ("7d", 604800.0), ("1.5h", 5400.0)],
)
def test_retention_ages(age: str, seconds: float) -> None:
    assert (
        config_of(parser().parse_args(["server", "run", "--trace-retention", age])).trace_retention == seconds
    )


def test_the_flags_reach_the_configuration_and_start_forwards_them() -> None:
    args = parser().parse_args([
        "server", "run", "--data-dir", str(Path("/tmp/x")), "--tracing", "off",
        "--otlp-endpoint", "http://127.0.0.1:4318", "--trace-retention", "2h", "--trace-max-spans", "50",
    ])  # fmt: skip
    parsed = config_of(args)
    assert (parsed.tracing, parsed.otlp_endpoint, parsed.trace_retention, parsed.trace_max_spans) == (
        False, "http://127.0.0.1:4318", 7200.0, 50,
    )  # fmt: skip
    again = config_of(parser().parse_args(["server", "run", *_forwarded(args, parsed)]))
    assert (again.tracing, again.otlp_endpoint, again.trace_retention, again.trace_max_spans) == (
        False, "http://127.0.0.1:4318", 7200.0, 50,
    )  # fmt: skip


BAD = {
    "--tracing": ("maybe", "invalid choice"),
    "--otlp-endpoint": ("ftp://collector", "expected an http:// or https:// URL"),
    "--trace-retention": ("soon", "expected an age like 3600, 90m, 24h or 7d"),
    "--trace-max-spans": ("0", "expected a positive whole number"),
}


@pytest.mark.parametrize("flag", BAD)
@pytest.mark.parametrize("command", ["run", "start"])
def test_malformed_values_are_usage_errors(
    flag: str, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    value, message = BAD[flag]
    with pytest.raises(SystemExit) as exited:
        parser().parse_args(["server", command, f"{flag}={value}"])
    assert exited.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("age", ["-5", "0", "5y", "inf", "nanh"])
def test_bad_ages_are_refused(age: str) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["server", "run", f"--trace-retention={age}"])
