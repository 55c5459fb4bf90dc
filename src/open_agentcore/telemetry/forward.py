"""Forwarding spans to an external OTLP/HTTP collector (Jaeger, Tempo, an OpenTelemetry Collector...).

Runs on the span sink's thread: each batch is one protobuf POST to `<endpoint>/v1/traces`. A
collector that is down loses those batches; the failure is logged once when it starts and once
when it ends, never per batch or span.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import httpx

from open_agentcore.store.traces import SpanRecord

from .otlp import PROTOBUF, encode

logger = logging.getLogger("open_agentcore.telemetry")

TIMEOUT = 5.0


def traces_url(endpoint: str) -> str:
    """The collector's trace URL: a base URL gets OTLP's `/v1/traces`; a URL ending in it is kept."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else f"{endpoint}/v1/traces"


class Forwarder:
    """Sends batches of spans to one collector over a kept-alive connection."""

    def __init__(self, endpoint: str) -> None:
        self.url = traces_url(endpoint)
        self._client = httpx.Client(timeout=TIMEOUT)
        self._failing = False
        self.sent = 0

    def send(self, records: Sequence[SpanRecord]) -> bool:
        """POST one batch; False (logged once per outage) when the collector did not take it."""
        try:
            reply = self._client.post(self.url, content=encode(records), headers={"content-type": PROTOBUF})
            problem = None if reply.status_code < 300 else f"it answered HTTP {reply.status_code}"
        except httpx.HTTPError as error:
            problem = str(error) or type(error).__name__
        if problem is not None:
            if not self._failing:
                logger.warning(
                    "Forwarding spans to %s failed (%s); dropping spans until it recovers", self.url, problem
                )
            self._failing = True
            return False
        if self._failing:
            logger.warning("Forwarding spans to %s works again", self.url)
        self._failing = False
        self.sent += len(records)
        return True

    def close(self) -> None:
        self._client.close()


__all__ = ["Forwarder", "traces_url"]
