"""`agentcore server run`'s tracing flags: `--tracing`, `--otlp-endpoint`, `--trace-retention`,
`--trace-max-spans` (see docs/observability.md)."""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import urlsplit

from open_agentcore.server.config import ServerConfig

_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def add_tracing_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tracing", choices=["on", "off"], default="on",
                        help="a span per request, W3C traceparent into workers, OTEL_* given to workers, "
                        "OTLP received at /v1/traces (default on; off removes all of it)")  # fmt: skip
    parser.add_argument("--otlp-endpoint", type=_endpoint, metavar="URL",
                        help="also forward every span to this OTLP/HTTP collector (Jaeger, Tempo, "
                        "an OpenTelemetry Collector), e.g. http://127.0.0.1:4318; /v1/traces is "
                        "appended")  # fmt: skip
    parser.add_argument("--trace-retention", type=_duration, default=7 * 86400.0, metavar="AGE",
                        help="keep spans this long: 3600, 90m, 24h, 7d (default 7d)")  # fmt: skip
    parser.add_argument("--trace-max-spans", type=_count, default=200_000, metavar="N",
                        help="keep at most N spans, dropping the oldest first (default 200000)")  # fmt: skip


def tracing_options(args: argparse.Namespace) -> dict[str, Any]:
    """The `ServerConfig` fields the tracing flags set."""
    return {
        "tracing": args.tracing == "on",
        "otlp_endpoint": args.otlp_endpoint,
        "trace_retention": args.trace_retention,
        "trace_max_spans": args.trace_max_spans,
    }


def forwarded_tracing(config: ServerConfig) -> list[str]:
    """The tracing flags that give `server run` the same tracing (for `server start`)."""
    options = ["--tracing", "on" if config.tracing else "off", "--trace-retention",
               repr(config.trace_retention), "--trace-max-spans", str(config.trace_max_spans)]  # fmt: skip
    return [*options, "--otlp-endpoint", config.otlp_endpoint] if config.otlp_endpoint else options


def _endpoint(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"expected an http:// or https:// URL, got {text!r}")
    return text


def _duration(text: str) -> float:
    cleaned = text.strip().lower()
    unit = cleaned[-1:] if cleaned[-1:] in _DURATION_UNITS else "s"
    try:
        seconds = (
            float(cleaned.removesuffix(unit) if cleaned[-1:] == unit else cleaned) * _DURATION_UNITS[unit]
        )
    except ValueError:
        seconds = 0.0
    if not 0 < seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"expected an age like 3600, 90m, 24h or 7d, got {text!r}")
    return seconds


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return int(text)


__all__ = ["add_tracing_arguments", "forwarded_tracing", "tracing_options"]
