"""Each worker's key cache (SQLite and PostgreSQL): lookups without the database, changes seen
within the 2 s window, and a revoked key never served from a copy older than that."""

from __future__ import annotations

import pytest

from app.accounts.database import Database
from app.accounts.key_cache import KeyCache, KeyStoreUnavailable
from app.accounts.migrate import upgrade
from app.accounts.store import KeyStore
from tests.support.live_gateway import free_port


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingStore(KeyStore):
    """The real store, counting the queries the cache makes."""

    def __init__(self, database: Database):
        super().__init__(database)
        self.version_queries = 0
        self.loads = 0

    def version(self) -> int:
        self.version_queries += 1
        return super().version()

    def active_records(self):
        self.loads += 1
        return super().active_records()


def test_lookups_use_the_copy_and_changes_appear_after_a_refresh(database):
    store, clock = CountingStore(database), Clock()
    cache = KeyCache(store, clock=clock)
    row, secret = store.create({"name": "a", "rpm": 3})
    assert cache.identify(secret).id == row.id  # first use: loads synchronously
    assert (store.version_queries, store.loads) == (1, 1)
    for _ in range(50):
        assert cache.identify(secret).rpm == 3
        assert cache.record(row.id).name == "a"
    assert cache.identify(secret + "x") is None and cache.identify("sk-gw-unknown") is None
    assert (store.version_queries, store.loads) == (1, 1)  # no database work per lookup

    store.update(row.id, {"rpm": 7})
    cache.refresh()  # what the background thread does each second
    assert cache.record(row.id).rpm == 7 and store.loads == 2
    cache.refresh()
    assert store.loads == 2  # version unchanged: nothing reloaded

    store.revoke(row.id)
    cache.refresh()
    assert cache.identify(secret) is None and cache.record(row.id) is None
    cache.stop()


def test_a_copy_older_than_two_seconds_is_refreshed_before_it_answers(database):
    store, clock = CountingStore(database), Clock()
    cache = KeyCache(store, clock=clock, interval=3600)  # the thread never gets to run
    row, secret = store.create({"name": "a"})
    assert cache.identify(secret) is not None
    store.revoke(row.id)
    clock.now += 1.9
    assert cache.identify(secret) is not None  # within the window: the copy may still have it
    clock.now += 0.2
    assert cache.identify(secret) is None  # past 2 s: refreshed synchronously, revoked
    cache.stop()


def test_an_unreachable_database_refuses_virtual_keys_after_the_window(database_url):
    clock = Clock()
    good = Database.from_url(database_url)
    upgrade(good)
    store = KeyStore(good)
    _, secret = store.create({"name": "a"})
    cache = KeyCache(store, clock=clock, interval=3600)
    assert cache.identify(secret) is not None
    # The database goes away: the store now points at a port where nothing listens.
    store.database = Database.from_url(f"postgresql+pg8000://postgres@127.0.0.1:{free_port()}/none")
    clock.now += 1.0
    assert cache.identify(secret) is not None  # young copy: no database needed
    clock.now += 1.5
    with pytest.raises(KeyStoreUnavailable) as refused:
        cache.identify(secret)
    assert refused.value.status == 503 and refused.value.code == "key_store_unavailable"
    failed_queries = clock.now
    with pytest.raises(KeyStoreUnavailable):  # not asked again within a second of the failure
        cache.identify(secret)
    assert cache.failed_at == failed_queries
    store.database = good  # back
    clock.now += 1.1
    assert cache.identify(secret) is not None
    cache.stop()
    good.dispose()


def test_a_key_made_a_moment_ago_is_found_at_once_and_wrong_keys_cost_little(database):
    store, clock = CountingStore(database), Clock()
    cache = KeyCache(store, clock=clock, interval=3600)
    cache.refresh()
    _, secret = store.create({"name": "new"})
    assert cache.identify(secret) is None  # the copy is 0 s old: no second look
    clock.now += 0.15
    assert cache.identify(secret) is not None  # older than 0.1 s: looked again
    queries = store.version_queries
    for _ in range(20):
        assert cache.identify("sk-gw-wrong") is None
    assert store.version_queries == queries  # same instant: no query per wrong key
    cache.stop()
