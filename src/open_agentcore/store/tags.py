"""Tags of runtimes: set at creation, changed by TagResource and UntagResource."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from .errors import TooManyTags
from .tables import ResourceTag
from .transactions import Repository

MAX_TAGS = 50


def put_tags(session: Session, runtime_id: str, tags: Mapping[str, str]) -> None:
    """Add or overwrite `tags` on a runtime inside `session`; others stay. Raises `TooManyTags`."""
    for key, value in tags.items():
        row = session.get(ResourceTag, (runtime_id, key))
        if row is None:
            session.add(ResourceTag(runtime_id=runtime_id, key=key, value=value))
        else:
            row.value = value
    session.flush()
    count = session.scalar(select(func.count()).where(ResourceTag.runtime_id == runtime_id)) or 0
    if count > MAX_TAGS:
        raise TooManyTags(f"a resource has at most {MAX_TAGS} tags; these would make {count}")


class TagRepository(Repository):
    """Each runtime's tags (a map of key to value)."""

    def tag_runtime(self, runtime_id: str, tags: Mapping[str, str]) -> None:
        """Add or overwrite tags. Raises `RuntimeNotFound`, `TooManyTags` (nothing changes then)."""
        with self._write() as session:
            self._runtime_row(session, runtime_id, lock=True)
            put_tags(session, runtime_id, tags)

    def untag_runtime(self, runtime_id: str, keys: Iterable[str]) -> None:
        """Remove the tags with these keys; keys it does not have are ignored. Raises `RuntimeNotFound`."""
        with self._write() as session:
            self._runtime_row(session, runtime_id, lock=True)
            session.execute(
                delete(ResourceTag).where(
                    ResourceTag.runtime_id == runtime_id, ResourceTag.key.in_(list(keys))
                )
            )

    def runtime_tags(self, runtime_id: str) -> dict[str, str]:
        """The runtime's tags. Raises `RuntimeNotFound`."""
        with self._read() as session:
            self._runtime_row(session, runtime_id)
            rows = session.scalars(select(ResourceTag).where(ResourceTag.runtime_id == runtime_id))
            return {row.key: row.value for row in rows}


__all__ = ["MAX_TAGS", "TagRepository", "put_tags"]
