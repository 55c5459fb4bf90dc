"""Endpoints: named pointers at a runtime's versions, and how they follow builds as they finish."""

from __future__ import annotations

import datetime
from typing import Any

from sqlalchemy import FromClause, Label, RowMapping, Select, and_, bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .errors import DefaultEndpointProtected, EndpointNameConflict, EndpointNotFound, VersionNotFound
from .records import (
    DEFAULT_ENDPOINT,
    EndpointRecord,
    EndpointStatus,
    Page,
    RuntimeRecord,
    RuntimeStatus,
    VersionRecord,
)
from .tables import Endpoint, Runtime, RuntimeVersion
from .transactions import Repository, fingerprint, utcnow

CREATE_ENDPOINT = "CreateAgentRuntimeEndpoint"


def _labelled(table: FromClause, prefix: str) -> list[Label[Any]]:
    return [column.label(prefix + column.name) for column in table.c]


def _columns(row: RowMapping, prefix: str) -> dict[str, Any]:
    """The fields of one table's record in a row of `_ROUTE` (its columns carry `prefix`)."""
    return {name[len(prefix) :]: value for name, value in row.items() if name.startswith(prefix)}


def _route() -> Select[Any]:
    runtimes, endpoints = Runtime.__table__, Endpoint.__table__
    latest, live = RuntimeVersion.__table__.alias("latest"), RuntimeVersion.__table__.alias("live")
    joined = (
        runtimes.join(endpoints, endpoints.c.runtime_id == runtimes.c.id)
        .join(
            latest, and_(latest.c.runtime_id == runtimes.c.id, latest.c.version == runtimes.c.latest_version)
        )
        .outerjoin(live, and_(live.c.runtime_id == runtimes.c.id, live.c.version == endpoints.c.live_version))
    )
    columns = [*_labelled(runtimes, "r_"), *_labelled(endpoints, "e_"), *_labelled(latest, "v_")]
    return (
        select(*columns, *_labelled(live, "l_"))
        .select_from(joined)
        .where(runtimes.c.id == bindparam("runtime_id"), endpoints.c.name == bindparam("name"))
    )


# A runtime (with its latest version), one of its endpoints and the version live on it, in one row.
_ROUTE = _route()


def new_endpoint(
    runtime: Runtime, name: str, version: RuntimeVersion, description: str, now: datetime.datetime
) -> Endpoint:
    """An endpoint row targeting `version`: live at once if that version is already built."""
    ready = version.status is RuntimeStatus.READY
    return Endpoint(
        runtime_id=runtime.id,
        name=name,
        arn=f"{runtime.arn}/runtime-endpoint/{name}",
        target_version=version.version,
        live_version=version.version if ready else None,
        status=EndpointStatus.READY if ready else EndpointStatus.CREATING,
        description=description,
        created_at=now,
        updated_at=now,
    )


def follow_build(session: Session, version: RuntimeVersion, now: datetime.datetime) -> None:
    """Bring a runtime's endpoints up to date with a version whose build has just ended.

    A READY version goes live on every endpoint targeting it, and on `DEFAULT` when it is newer
    than what `DEFAULT` serves (builds may finish out of order). A failed build leaves each
    endpoint serving what it served before.
    """
    endpoints = session.scalars(select(Endpoint).where(Endpoint.runtime_id == version.runtime_id))
    for endpoint in endpoints:
        if version.status is RuntimeStatus.READY:
            newer = endpoint.live_version is None or version.version > endpoint.live_version
            if endpoint.target_version == version.version or (endpoint.name == DEFAULT_ENDPOINT and newer):
                endpoint.live_version = version.version
                if endpoint.target_version <= version.version:
                    endpoint.target_version = version.version
                    endpoint.status = EndpointStatus.READY
                endpoint.updated_at = now
        elif endpoint.target_version == version.version:
            failed = (
                EndpointStatus.CREATE_FAILED
                if endpoint.live_version is None
                else EndpointStatus.UPDATE_FAILED
            )
            endpoint.status = failed
            endpoint.updated_at = now


def retarget_default(session: Session, runtime_id: str, version: int, now: datetime.datetime) -> None:
    """Point `DEFAULT` at a version just added; it keeps serving its live version meanwhile."""
    default = session.get(Endpoint, (runtime_id, DEFAULT_ENDPOINT))
    if default is not None:
        default.target_version = version
        default.status = EndpointStatus.CREATING if default.live_version is None else EndpointStatus.UPDATING
        default.updated_at = now


class EndpointRepository(Repository):
    """Create, read, retarget and delete a runtime's endpoints."""

    def create_endpoint(
        self,
        runtime_id: str,
        name: str,
        version: int | None = None,
        description: str = "",
        client_token: str | None = None,
    ) -> EndpointRecord:
        """A new endpoint pinned to `version` (the latest when None); READY at once if that version is.

        Raises `RuntimeNotFound`, `VersionNotFound`, `EndpointNameConflict`, `DefaultEndpointProtected`
        (for `DEFAULT`), `ClientTokenConflict`. A retry with the same `client_token` returns the
        endpoint the first request made.
        """
        if name == DEFAULT_ENDPOINT:
            raise DefaultEndpointProtected("the DEFAULT endpoint is created with its runtime")
        digest = fingerprint(runtime_id, name, version, description)
        try:
            with self._write() as session:
                runtime = self._runtime_row(session, runtime_id, lock=True)
                if client_token and self._claimed(session, CREATE_ENDPOINT, client_token, digest):
                    existing = session.get(Endpoint, (runtime_id, name))
                    if existing is not None:
                        return existing.record()
                if session.get(Endpoint, (runtime_id, name)) is not None:
                    raise EndpointNameConflict(
                        f"agent runtime {runtime_id!r} already has an endpoint {name!r}"
                    )
                pinned = self._version_row(session, runtime_id, version or runtime.latest_version)
                endpoint = new_endpoint(runtime, name, pinned, description, utcnow())
                session.add(endpoint)
                if client_token:
                    self._claim(session, CREATE_ENDPOINT, client_token, digest, f"{runtime_id}/{name}")
                session.flush()
                return endpoint.record()
        except IntegrityError:
            # Lost a race: the runtime was deleted, or the same name was created, meanwhile.
            with self._read() as session:
                self._runtime_row(session, runtime_id)
            raise EndpointNameConflict(
                f"agent runtime {runtime_id!r} already has an endpoint {name!r}"
            ) from None

    def get_endpoint(self, runtime_id: str, name: str) -> EndpointRecord:
        """One endpoint. Raises `RuntimeNotFound`, `EndpointNotFound`."""
        with self._read() as session:
            return self._endpoint_row(session, runtime_id, name).record()

    def get_route(
        self, runtime_id: str, name: str
    ) -> tuple[RuntimeRecord, EndpointRecord, VersionRecord | None]:
        """A runtime, one of its endpoints and the version live on it (None while none is), read
        together in one transaction: what an invocation needs to find its workers.

        Raises `RuntimeNotFound`, `EndpointNotFound`.
        """
        # One prebuilt statement without the ORM: a new session arriving after the route cache's
        # time is up waits for it.
        with self._read_connection() as connection:
            row = connection.execute(_ROUTE, {"runtime_id": runtime_id, "name": name}).first()
        if row is None:
            self.get_endpoint(runtime_id, name)  # raises what is missing
            raise EndpointNotFound(f"agent runtime {runtime_id!r} has no endpoint {name!r}")
        fields = row._mapping
        runtime = RuntimeRecord(**_columns(fields, "r_"), version=VersionRecord(**_columns(fields, "v_")))
        endpoint = EndpointRecord(**_columns(fields, "e_"))
        if endpoint.live_version is not None and fields["l_version"] is None:
            raise VersionNotFound(f"agent runtime {runtime_id!r} has no version {endpoint.live_version}")
        live = None if endpoint.live_version is None else VersionRecord(**_columns(fields, "l_"))
        return runtime, endpoint, live

    def list_endpoints(
        self, runtime_id: str, max_results: int = 100, next_token: str | None = None
    ) -> Page[EndpointRecord]:
        """A runtime's endpoints by name. Raises `RuntimeNotFound`, `InvalidPaginationToken`."""
        listing = f"endpoints/{runtime_id}"
        after = self._tokens.resume(listing, next_token)
        with self._read() as session:
            self._runtime_row(session, runtime_id)
            query = select(Endpoint).where(Endpoint.runtime_id == runtime_id)
            if after is not None:
                query = query.where(Endpoint.name > str(after))
            rows = session.scalars(query.order_by(Endpoint.name).limit(self._limit(max_results) + 1)).all()
            return self._page(listing, rows, max_results, lambda row: row.name, Endpoint.record)

    def update_endpoint(
        self, runtime_id: str, name: str, version: int | None = None, description: str | None = None
    ) -> EndpointRecord:
        """Retarget an endpoint and/or change its description; it serves its live version until the
        new target is READY. Raises `RuntimeNotFound`, `EndpointNotFound`, `VersionNotFound`, and
        `DefaultEndpointProtected` when retargeting `DEFAULT` (it follows the newest version itself).
        """
        now = utcnow()
        with self._write() as session:
            self._runtime_row(session, runtime_id, lock=True)
            row = self._endpoint_row(session, runtime_id, name)
            if version is not None and version != row.target_version:
                if name == DEFAULT_ENDPOINT:
                    raise DefaultEndpointProtected("the DEFAULT endpoint always follows the newest version")
                pinned = self._version_row(session, runtime_id, version)
                row.target_version = version
                if pinned.status is RuntimeStatus.READY:
                    row.live_version, row.status = version, EndpointStatus.READY
                elif pinned.status in (RuntimeStatus.CREATE_FAILED, RuntimeStatus.UPDATE_FAILED):
                    row.status = (
                        EndpointStatus.CREATE_FAILED
                        if row.live_version is None
                        else EndpointStatus.UPDATE_FAILED
                    )
                else:
                    row.status = EndpointStatus.UPDATING
            if description is not None:
                row.description = description
            row.updated_at = now
            return row.record()

    def delete_endpoint(self, runtime_id: str, name: str) -> EndpointRecord:
        """Remove an endpoint; returns it as it was, with status DELETING.

        Raises `RuntimeNotFound`, `EndpointNotFound`, `DefaultEndpointProtected` (for `DEFAULT`).
        """
        if name == DEFAULT_ENDPOINT:
            raise DefaultEndpointProtected("the DEFAULT endpoint goes only with its runtime")
        with self._write() as session:
            row = self._endpoint_row(session, runtime_id, name)
            row.status = EndpointStatus.DELETING
            record = row.record()
            session.delete(row)
            return record

    def _endpoint_row(self, session: Session, runtime_id: str, name: str) -> Endpoint:
        row = session.get(Endpoint, (runtime_id, name))
        if row is None:
            self._runtime_row(session, runtime_id)
            raise EndpointNotFound(f"agent runtime {runtime_id!r} has no endpoint {name!r}")
        return row


__all__ = ["EndpointRepository", "follow_build", "new_endpoint", "retarget_default"]
