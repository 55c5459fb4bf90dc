"""Opaque, signed, keyset `nextToken`s: `store/pagination.py` and the listings that use it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from open_agentcore.store import InvalidPaginationToken, Store
from open_agentcore.store.pagination import PageTokens
from tests.store.test_repository import CONFIG, create


def _all_pages(store: Store, page_size: int) -> list[list[str]]:
    pages: list[list[str]] = []
    token: str | None = None
    while True:
        page = store.list_runtimes(page_size, token)
        pages.append([runtime.id for runtime in page.items])
        if page.next_token is None:
            return pages
        token = page.next_token


def test_25_runtimes_come_back_in_pages_of_10_each_once_in_order(store: Store) -> None:
    created = {create(store, f"r{i:02d}") for i in range(25)}
    pages = _all_pages(store, 10)
    assert [len(page) for page in pages] == [10, 10, 5]
    seen = [runtime_id for page in pages for runtime_id in page]
    assert seen == sorted(created)


def test_a_page_that_ends_exactly_at_the_end_has_no_token(store: Store) -> None:
    for i in range(10):
        create(store, f"r{i}")
    assert store.list_runtimes(10).next_token is None


def test_rows_added_between_pages_are_neither_repeated_nor_skipped(store: Store) -> None:
    for name in ("b", "d", "f"):
        create(store, name)
    first = store.list_runtimes(2)
    create(store, "a")  # sorts before the page already seen
    create(store, "e")  # sorts after it
    rest = store.list_runtimes(10, first.next_token)
    names = [r.name for r in first.items + rest.items]
    assert names == ["b", "d", "e", "f"]


@pytest.mark.parametrize(
    "tamper",
    [
        lambda token: token[:-1] + ("A" if token[-1] != "A" else "B"),  # the signature
        lambda token: ("A" if token[0] != "A" else "B") + token[1:],  # the body
        lambda token: token.split(".")[0],  # the signature removed
        lambda token: "not-a-token",
        lambda token: token + token,
    ],
    ids=["signature", "body", "unsigned", "garbage", "doubled"],
)
def test_a_tampered_token_is_refused(store: Store, tamper: Callable[[str], str]) -> None:
    for i in range(3):
        create(store, f"r{i}")
    token = store.list_runtimes(1).next_token
    assert token is not None
    with pytest.raises(InvalidPaginationToken):
        store.list_runtimes(1, tamper(token))


def test_a_token_of_another_listing_is_refused(store: Store) -> None:
    first, second = create(store, "one"), create(store, "two")
    for _ in range(2):
        store.add_version(first, CONFIG)
        store.add_version(second, CONFIG)
    versions_token = store.list_versions(first, 1).next_token
    assert versions_token is not None
    with pytest.raises(InvalidPaginationToken):
        store.list_runtimes(1, versions_token)
    with pytest.raises(InvalidPaginationToken):
        store.list_versions(second, 1, versions_token)
    assert [v.version for v in store.list_versions(first, 1, versions_token).items] == [2]


def test_a_token_signed_with_another_key_is_refused() -> None:
    token = PageTokens("one secret").issue("runtimes", "agent-0123456789")
    assert PageTokens("one secret").resume("runtimes", token) == "agent-0123456789"
    with pytest.raises(InvalidPaginationToken):
        PageTokens("another secret").resume("runtimes", token)


def test_tokens_survive_reopening_the_store(store: Store, open_stores: Callable[[], Store]) -> None:
    for i in range(3):
        create(store, f"r{i}")
    token = store.list_runtimes(1).next_token
    reopened = open_stores()
    assert [r.name for r in reopened.list_runtimes(5, token).items] == ["r1", "r2"]


def test_versions_page_newest_first(store: Store) -> None:
    runtime_id = create(store)
    for _ in range(4):
        store.add_version(runtime_id, CONFIG)
    first = store.list_versions(runtime_id, 3)
    rest = store.list_versions(runtime_id, 3, first.next_token)
    assert [v.version for v in first.items] == [5, 4, 3]
    assert ([v.version for v in rest.items], rest.next_token) == ([2, 1], None)


def test_page_size_out_of_range_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="max_results"):
        store.list_runtimes(0)
