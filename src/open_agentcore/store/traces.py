"""Spans and the traces they make up: written in batches, listed newest trace first, pruned by age and count.

A trace has no row of its own: it is the spans that share a trace id, summarised when listed.
"""

from __future__ import annotations

import dataclasses
import json
import operator
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, case, delete, func, insert, select, tuple_

from .errors import InvalidPaginationToken
from .records import Page
from .tables import SpanRow
from .transactions import Repository

KINDS = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")  # OTLP's numbering
STATUS_CODES = ("UNSET", "OK", "ERROR")
# Attributes that say which runtime and session a span belongs to: the server sets them from what
# it knows (its own request, or the credential a worker posted with), never from what a sender claims.
RUNTIME_ATTRIBUTE = "agentcore.runtime.id"
SESSION_ATTRIBUTE = "agentcore.session.id"


@dataclass
class SpanRecord:
    """One finished span. Ids are lower-case hex (32 and 16 digits); times are Unix nanoseconds.

    `runtime_id` and `session_id` are the server's word on where the span came from: None for a
    span no runtime's request or worker produced.
    """

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: str
    service: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any] = field(default_factory=dict)
    status_code: str = "UNSET"
    status_message: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)
    runtime_id: str | None = None
    session_id: str | None = None

    def stamp(self, runtime_id: str | None, session_id: str | None) -> None:
        """Say where the span came from, replacing whatever its sender's attributes claimed."""
        self.runtime_id, self.session_id = runtime_id, session_id
        for name, value in ((RUNTIME_ATTRIBUTE, runtime_id), (SESSION_ATTRIBUTE, session_id)):
            if value is None:
                self.attributes.pop(name, None)
            else:
                self.attributes[name] = value


@dataclass(frozen=True)
class TraceSummary:
    """One trace as a listing shows it: its root span's name, its extent and its outcome."""

    trace_id: str
    root_name: str
    start_ns: int
    duration_ns: int
    span_count: int
    runtime_id: str | None
    session_id: str | None
    status: str  # "ERROR" when any span failed, else "OK"


# A span's columns: its record's fields, in order, then when it arrived. SQLite's driver takes the
# same insert with the JSON columns encoded as SQLAlchemy's JSON type would encode them.
_FIELDS = tuple(spec.name for spec in dataclasses.fields(SpanRecord))
_COLUMNS = (*_FIELDS, "received_at")
_JSON_AT = tuple(_FIELDS.index(name) for name in ("attributes", "events"))
_values = operator.attrgetter(*_FIELDS)
_EMPTY_JSON: dict[type, str] = {dict: "{}", list: "[]"}
# Built from our own field names, never from input.
_SQLITE_INSERT = f"INSERT INTO spans ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"  # noqa: S608


def _sqlite_row(record: SpanRecord, received_at: float) -> tuple[Any, ...]:
    row = [*_values(record), received_at]
    for at in _JSON_AT:
        value = row[at]
        empty = None if value else _EMPTY_JSON.get(type(value))  # most spans have no events
        row[at] = json.dumps(value) if empty is None else empty
    return tuple(row)


class TraceRepository(Repository):
    """The `spans` table (store migration 4)."""

    def add_spans(self, records: Sequence[SpanRecord]) -> None:
        """Write a batch of spans in one transaction."""
        if not records:
            return
        now = time.time()
        with self._write() as session:
            connection = session.connection()
            if connection.dialect.name == "sqlite":
                # Every call adds a span or two, on a thread that shares the server's core: the
                # driver's executemany costs ≈ 20 µs a span against ≈ 50 through Core (and more
                # through the ORM).
                connection.exec_driver_sql(_SQLITE_INSERT, [_sqlite_row(r, now) for r in records])
                return
            rows = [dict(zip(_COLUMNS, (*_values(r), now), strict=True)) for r in records]
            session.execute(insert(cast("Table", SpanRow.__table__)), rows)

    def prune_spans(self, max_age: float, max_spans: int) -> int:
        """Delete spans received more than `max_age` seconds ago, then the oldest past `max_spans`."""
        with self._write() as session:
            deleted = session.execute(delete(SpanRow).where(SpanRow.received_at < time.time() - max_age))
            removed = int(getattr(deleted, "rowcount", 0) or 0)
            newest_dropped = session.scalar(
                select(SpanRow.id).order_by(SpanRow.id.desc()).offset(max_spans).limit(1)
            )
            if newest_dropped is not None:
                deleted = session.execute(delete(SpanRow).where(SpanRow.id <= newest_dropped))
                removed += int(getattr(deleted, "rowcount", 0) or 0)
        return removed

    def traced_runtime_ids(self) -> list[str]:
        """Every runtime some kept span belongs to."""
        with self._read() as session:
            rows = session.scalars(
                select(SpanRow.runtime_id).where(SpanRow.runtime_id.is_not(None)).distinct()
            )
            return sorted(str(row) for row in rows)

    def count_spans(self) -> int:
        with self._read() as session:
            return int(session.scalar(select(func.count()).select_from(SpanRow)) or 0)

    def list_traces(
        self,
        runtime_ids: Sequence[str] | None = None,
        session_id: str | None = None,
        max_results: int = 50,
        next_token: str | None = None,
        include_unscoped: bool = True,
    ) -> Page[TraceSummary]:
        """Traces newest first (by their first span's start).

        `runtime_ids` keeps traces with a span of one of those runtimes (None: any runtime);
        `include_unscoped` also keeps traces no runtime's span is part of (control-plane calls).
        """
        limit = self._limit(max_results)
        listing = f"traces:{','.join(sorted(runtime_ids)) if runtime_ids is not None else '*'}:{session_id}"
        after = self._tokens.resume(listing, next_token)
        summary = select(
            SpanRow.trace_id.label("trace_id"),
            func.min(SpanRow.start_ns).label("start_ns"),
            func.max(SpanRow.end_ns).label("end_ns"),
            func.count().label("span_count"),
            func.max(SpanRow.runtime_id).label("runtime_id"),
            func.max(SpanRow.session_id).label("session_id"),
            func.max(case((SpanRow.status_code == "ERROR", 1), else_=0)).label("failed"),
        ).group_by(SpanRow.trace_id)
        if session_id is not None:
            summary = summary.where(
                SpanRow.trace_id.in_(select(SpanRow.trace_id).where(SpanRow.session_id == session_id))
            )
        traces = summary.subquery()
        query = select(traces)
        if runtime_ids is not None:
            scoped = traces.c.runtime_id.in_(list(runtime_ids))
            query = query.where(scoped | traces.c.runtime_id.is_(None) if include_unscoped else scoped)
        elif not include_unscoped:
            query = query.where(traces.c.runtime_id.is_not(None))
        if after is not None:
            start, _, trace_id = str(after).partition(":")
            if not start.isdigit():
                raise InvalidPaginationToken("nextToken is malformed")
            query = query.where(tuple_(traces.c.start_ns, traces.c.trace_id) < tuple_(int(start), trace_id))
        query = query.order_by(traces.c.start_ns.desc(), traces.c.trace_id.desc()).limit(limit + 1)
        with self._read() as session:
            rows = session.execute(query).all()
            roots = self._root_names(session, [row.trace_id for row in rows[:limit]])

        def record(row: Any) -> TraceSummary:
            return TraceSummary(
                trace_id=row.trace_id,
                root_name=roots.get(row.trace_id, ""),
                start_ns=row.start_ns,
                duration_ns=max(0, row.end_ns - row.start_ns),
                span_count=row.span_count,
                runtime_id=row.runtime_id,
                session_id=row.session_id,
                status="ERROR" if row.failed else "OK",
            )

        return self._page(listing, rows, limit, lambda row: f"{row.start_ns}:{row.trace_id}", record)

    @staticmethod
    def _root_names(session: Any, trace_ids: list[str]) -> dict[str, str]:
        """Each trace's root: the earliest span whose parent is not in the trace (a client's
        traceparent makes the server's span a root with a parent)."""
        if not trace_ids:
            return {}
        query = select(SpanRow.trace_id, SpanRow.span_id, SpanRow.parent_span_id, SpanRow.name).where(
            SpanRow.trace_id.in_(trace_ids)
        )
        rows = session.execute(query.order_by(SpanRow.start_ns)).all()
        present = {(row.trace_id, row.span_id) for row in rows}
        roots: dict[str, str] = {}
        for row in rows:
            if row.trace_id not in roots and (row.trace_id, row.parent_span_id) not in present:
                roots[row.trace_id] = row.name
        return roots

    def get_trace(self, trace_id: str) -> list[SpanRecord]:
        """Every span of a trace, earliest first; empty when the store has none of it."""
        with self._read() as session:
            rows = session.scalars(
                select(SpanRow).where(SpanRow.trace_id == trace_id).order_by(SpanRow.start_ns, SpanRow.id)
            ).all()
            return [
                SpanRecord(
                    trace_id=row.trace_id,
                    span_id=row.span_id,
                    parent_span_id=row.parent_span_id,
                    name=row.name,
                    kind=row.kind,
                    service=row.service,
                    start_ns=row.start_ns,
                    end_ns=row.end_ns,
                    attributes=dict(row.attributes or {}),
                    status_code=row.status_code,
                    status_message=row.status_message,
                    events=list(row.events or []),
                    runtime_id=row.runtime_id,
                    session_id=row.session_id,
                )
                for row in rows
            ]


__all__ = [
    "KINDS",
    "RUNTIME_ATTRIBUTE",
    "SESSION_ATTRIBUTE",
    "STATUS_CODES",
    "SpanRecord",
    "TraceRepository",
    "TraceSummary",
]
