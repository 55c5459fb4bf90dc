"""Who may call the server: access keys (SigV4) and each runtime's resource-based policy."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from .errors import AccessKeyConflict, AccessKeyNotFound, ResourcePolicyNotFound
from .records import AccessKeyRecord, ResourcePolicyRecord
from .tables import AccessKey, ResourcePolicy
from .transactions import Repository, utcnow


class AccessRepository(Repository):
    """Access keys and resource policies."""

    # Access keys -------------------------------------------------------------------------------

    def create_access_key(
        self, access_key_id: str, secret: str, principal: str, policy: dict[str, Any] | None = None
    ) -> AccessKeyRecord:
        """Store a new access key; the secret is kept as given, since verifying SigV4 needs it.

        Raises `AccessKeyConflict`.
        """
        try:
            with self._write() as session:
                if session.get(AccessKey, access_key_id) is not None:
                    raise AccessKeyConflict(f"access key {access_key_id!r} already exists")
                row = AccessKey(
                    access_key_id=access_key_id,
                    secret=secret,
                    principal=principal,
                    policy=policy,
                    created_at=utcnow(),
                )
                session.add(row)
                session.flush()
                return row.record()
        except IntegrityError:
            raise AccessKeyConflict(f"access key {access_key_id!r} already exists") from None

    def get_access_key(self, access_key_id: str, include_revoked: bool = False) -> AccessKeyRecord:
        """The key with this id; a revoked one only with `include_revoked`. Raises `AccessKeyNotFound`."""
        with self._read() as session:
            row = session.get(AccessKey, access_key_id)
            if row is None or (row.revoked_at is not None and not include_revoked):
                raise AccessKeyNotFound(f"no active access key {access_key_id!r}")
            return row.record()

    def list_access_keys(self, include_revoked: bool = False) -> list[AccessKeyRecord]:
        """Every access key, by id (revoked ones only with `include_revoked`)."""
        with self._read() as session:
            query = select(AccessKey).order_by(AccessKey.access_key_id)
            if not include_revoked:
                query = query.where(AccessKey.revoked_at.is_(None))
            return [row.record() for row in session.scalars(query)]

    def revoke_access_key(self, access_key_id: str) -> AccessKeyRecord:
        """Revoke a key (the row stays, for the record); revoking twice keeps the first time.

        Raises `AccessKeyNotFound`.
        """
        with self._write() as session:
            row = session.get(AccessKey, access_key_id, with_for_update=True)
            if row is None:
                raise AccessKeyNotFound(f"no access key {access_key_id!r}")
            if row.revoked_at is None:
                row.revoked_at = utcnow()
            session.flush()
            return row.record()

    # Resource policies -------------------------------------------------------------------------

    def put_resource_policy(self, runtime_id: str, policy: dict[str, Any]) -> ResourcePolicyRecord:
        """Attach (or replace) a runtime's resource policy. Raises `RuntimeNotFound`."""
        with self._write() as session:
            self._runtime_row(session, runtime_id, lock=True)
            row = session.get(ResourcePolicy, runtime_id)
            if row is None:
                row = ResourcePolicy(runtime_id=runtime_id, policy=policy, updated_at=utcnow())
                session.add(row)
            else:
                row.policy, row.updated_at = policy, utcnow()
            session.flush()
            return row.record()

    def get_resource_policy(self, runtime_id: str) -> ResourcePolicyRecord:
        """A runtime's resource policy. Raises `RuntimeNotFound`, `ResourcePolicyNotFound`."""
        with self._read() as session:
            self._runtime_row(session, runtime_id)
            row = session.get(ResourcePolicy, runtime_id)
            if row is None:
                raise ResourcePolicyNotFound(f"agent runtime {runtime_id!r} has no resource policy")
            return row.record()

    def delete_resource_policy(self, runtime_id: str) -> None:
        """Detach a runtime's resource policy. Raises `RuntimeNotFound`, `ResourcePolicyNotFound`."""
        with self._write() as session:
            self._runtime_row(session, runtime_id, lock=True)
            row = session.get(ResourcePolicy, runtime_id)
            if row is None:
                raise ResourcePolicyNotFound(f"agent runtime {runtime_id!r} has no resource policy")
            session.delete(row)


__all__ = ["AccessRepository"]
