"""Exact-cache operations: per-route policy, purge, stats, stale-if-error, entry ids, and
the memory backend's tags and SQLite mirror."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from sluice.cache.backends import MemoryBackend, TaggedBackend
from sluice.cache.exact import ExactCacheStage
from sluice.cache.persist import SqliteMirror
from sluice.config import ExactCacheConfig
from sluice.cost.prices import Price
from sluice.errors import InvalidRequestError, ServiceUnavailableError
from sluice.pipeline.context import CallContext, Result, compose
from sluice.web.cache_admin import parse_purge
from tests.unit.test_cache_exact import Clock, Harness, Upstream, drain, request


def routes(**per_route: dict[str, Any]) -> dict[str, Any]:
    return {"routes": per_route}


async def test_route_can_turn_the_cache_off() -> None:
    h = Harness(**routes(a={"enabled": False}))
    await h.call(request(model="a"))
    _, ctx = await h.call(request(model="a"))
    assert h.upstream.calls == 2 and ctx.response_headers["x-sluice-cache"] == "bypass"
    await h.call(request(model="b"))
    await h.call(request(model="b"))
    assert h.upstream.calls == 3  # other routes still cached


async def test_route_ttl_overrides_the_global_one() -> None:
    h = Harness(ttl_s=3600, **routes(short={"ttl_s": 10}))
    for model in ("short", "long"):
        await h.call(request(model=model))
    h.clock.now += 11
    h.wall.now += 11
    _, short = await h.call(request(model="short"))
    _, long = await h.call(request(model="long"))
    assert short.response_headers["x-sluice-cache"] == "miss"
    assert long.response_headers["x-sluice-cache"] == "exact"


async def test_route_namespace_version_drops_only_that_route() -> None:
    h = Harness()
    await h.call(request(model="a"))
    await h.call(request(model="b"))
    bumped = ExactCacheStage(
        ExactCacheConfig(**routes(a={"namespace": "2"})), h.backend, clock=h.wall
    )
    handler = compose([bumped], h.upstream)
    statuses = []
    for model in ("a", "b"):
        ctx = CallContext(request(model=model))
        await drain(await handler(ctx))
        statuses.append(ctx.response_headers["x-sluice-cache"])
    assert statuses == ["miss", "exact"]


async def test_entry_id_header_names_the_stored_entry() -> None:
    h = Harness()
    _, miss = await h.call(request())
    _, hit = await h.call(request())
    entry = hit.response_headers["x-sluice-cache-key"]
    assert entry == miss.response_headers["x-sluice-cache-key"]
    assert len(entry) == 64 and "exact:" + entry in h.backend._entries


async def test_purge_by_entry_route_tenant_and_all() -> None:
    h = Harness()
    for model, tenant in [("a", "t1"), ("a", "t2"), ("b", "t1"), ("b", "t2")]:
        await h.call(request(model=model), tenant=tenant)
    _, ctx = await h.call(request(model="a"), tenant="t1")
    entry = ctx.response_headers["x-sluice-cache-key"]
    assert await h.stage.purge(entry_id=entry) == 1
    assert await h.stage.purge(entry_id=entry) == 0
    assert await h.stage.purge(route="b") == 2
    assert await h.stage.purge(tenant="t2") == 1  # (a, t2); (b, t2) already gone
    assert len(h.backend) == 0
    await h.call(request(model="c"))
    assert await h.stage.purge() == 1
    assert h.stage.stats.purged == 5
    with pytest.raises(ValueError, match="one of"):
        await h.stage.purge(route="a", tenant="t1")


async def test_purge_leaves_idempotency_records_alone() -> None:
    h = Harness()
    await h.backend.set("idem:x", b"record", 60)
    await h.call(request())
    assert await h.stage.purge() == 1
    assert await h.backend.get("idem:x") == b"record"


async def test_stats_report_entries_bytes_rates_and_savings() -> None:
    h = Harness()
    dollar = Decimal(1_000_000)  # per million tokens: $1 a token
    price = Price(input=dollar, output=dollar, cache_read=Decimal(0), cache_write=Decimal(0))
    h.stage.price_of_model = lambda model: price
    await h.call(request("a"))
    await h.call(request("a"))
    await h.call(request("a"))
    await h.call(request("b"))
    stats = await h.stage.stats_json()
    assert stats["entries"] == 2 and stats["bytes"] == h.backend.total_bytes
    assert (stats["hits"], stats["misses"]) == (2, 2)
    assert stats["hit_rate"] == 0.5 and stats["miss_rate"] == 0.5
    # Each hit served usage (10 in, 1 out) at $1 a token (uncached 10-2-1=7, read 2 at 0,
    # write 1 at 0, output 1): $8 per hit.
    assert (stats["saved_input_tokens"], stats["saved_output_tokens"]) == (20, 2)
    assert stats["saved_usd"] == "16.0000000000"


class Flaky(Upstream):
    async def __call__(self, ctx: CallContext) -> Result:
        if self.fail:
            self.calls += 1
            raise ServiceUnavailableError("every deployment is down")
        return await super().__call__(ctx)


async def test_stale_if_error_serves_an_expired_entry_when_upstream_fails() -> None:
    upstream = Flaky()
    h = Harness(upstream, ttl_s=60, stale_if_error_s=300)
    first, _ = await h.call(request())
    h.wall.now += 120
    h.clock.now += 120
    upstream.fail = True
    resp, ctx = await h.call(request())
    assert resp == first
    assert ctx.response_headers["x-sluice-cache"] == "stale"
    assert ctx.response_headers["x-sluice-cache-age"] == "120"
    assert ctx.cache_status == "stale" and h.stage.stats.stale == 1
    # Streams too.
    _, events = await drain(await h.handler(CallContext(request(stream=True))))
    assert events


async def test_stale_entry_is_refreshed_when_upstream_works() -> None:
    h = Harness(ttl_s=60, stale_if_error_s=300)
    await h.call(request())
    h.wall.now += 120
    h.clock.now += 120
    resp, ctx = await h.call(request())
    assert resp.id == "resp-2" and ctx.response_headers["x-sluice-cache"] == "miss"
    _, again = await h.call(request())
    assert again.response_headers["x-sluice-cache"] == "exact"


async def test_stale_is_not_served_past_its_window_or_when_off() -> None:
    upstream = Flaky()
    h = Harness(upstream, ttl_s=60, stale_if_error_s=30)
    await h.call(request())
    h.wall.now += 100
    h.clock.now += 100
    upstream.fail = True
    with pytest.raises(ServiceUnavailableError):
        await h.call(request())
    off = Harness(Flaky(), ttl_s=60)
    await off.call(request())
    off.wall.now += 61
    off.clock.now += 61
    off.upstream.fail = True
    with pytest.raises(ServiceUnavailableError):
        await off.call(request())


async def test_stale_replaces_a_degraded_answer_but_not_client_errors() -> None:
    upstream = Upstream()
    h = Harness(upstream, ttl_s=60, stale_if_error_s=300)
    first, _ = await h.call(request())
    h.wall.now += 61
    h.clock.now += 61
    upstream.degrade = True
    resp, ctx = await h.call(request())
    assert resp == first and ctx.response_headers["x-sluice-cache"] == "stale"
    assert not ctx.degraded

    async def bad_request(ctx: CallContext) -> Result:
        raise InvalidRequestError("bad")

    handler = compose([h.stage], bad_request)
    with pytest.raises(InvalidRequestError):
        await handler(CallContext(request()))


def test_purge_body_validation() -> None:
    assert parse_purge({"route": "r"}) == ({"entry_id": None, "route": "r", "tenant": None}, None)
    assert parse_purge({"all": True, "cache": "exact"})[1] == "exact"
    bad: Any
    for bad in ({}, {"all": False}, {"route": "a", "tenant": "b"}, {"route": ""}, [], {"x": 1}):
        with pytest.raises(ValueError):
            parse_purge(bad)


# --- memory backend tags and the SQLite mirror ------------------------------------------


async def test_memory_tags_follow_eviction_and_expiry() -> None:
    clock = Clock(0)
    backend = MemoryBackend(max_entries=2, clock=clock)
    assert isinstance(backend, TaggedBackend)
    await backend.set_tagged("k1", b"v", 10, ("t",))
    await backend.set_tagged("k2", b"v", 100, ("t",))
    await backend.set_tagged("k3", b"v", 100, ("t", "u"))  # evicts k1
    assert await backend.tag_usage("t") == (2, 6)
    clock.now = 200
    assert await backend.tag_usage("t") == (0, 0)
    assert backend._keys_by_tag == {} and backend._tags_of == {}


async def test_mirror_keeps_entries_across_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    h = Harness()
    mirror = SqliteMirror(path, h.backend, backend_clock=h.clock)
    assert await mirror.start() == 0
    await h.call(request("a", model="r1"), tenant="t1")
    await h.call(request("b", model="r2"))
    await h.backend.set("idem:x", b"not persisted", 60)
    await mirror.close()
    rows = sqlite3.connect(path).execute("SELECT key, tags FROM entries ORDER BY key").fetchall()
    assert len(rows) == 2 and all(k.startswith("exact:") for k, _ in rows)

    again = Harness()
    mirror2 = SqliteMirror(path, again.backend, backend_clock=again.clock)
    assert await mirror2.start() == 2
    _, ctx = await again.call(request("a", model="r1"), tenant="t1")
    assert ctx.response_headers["x-sluice-cache"] == "exact" and again.upstream.calls == 0
    assert await again.stage.purge(tenant="t1") == 1  # tags came back too
    await mirror2.flush()
    count = sqlite3.connect(path).execute("SELECT count(*) FROM entries").fetchone()[0]
    assert count == 1  # the purge reached the file
    await mirror2.close()


async def test_mirror_skips_expired_rows(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    wall = Clock(1000)
    backend = MemoryBackend(clock=Clock(0))
    mirror = SqliteMirror(path, backend, wall_clock=wall, backend_clock=Clock(0))
    await mirror.start()
    await backend.set_tagged("exact:a", b"v", 10, ("exact",))
    await backend.set_tagged("exact:b", b"v", 1000, ("exact",))
    await mirror.close()
    wall.now = 1100
    fresh = MemoryBackend(clock=Clock(0))
    reloaded = SqliteMirror(path, fresh, wall_clock=wall, backend_clock=Clock(0))
    assert await reloaded.start() == 1 and await fresh.get("exact:b") == b"v"
    await reloaded.close()


def test_persist_path_needs_the_memory_backend() -> None:
    from sluice.config import CacheConfig

    assert CacheConfig(persist_path="c.db").persist_path == "c.db"
    with pytest.raises(ValueError, match="memory backend only"):
        CacheConfig(backend="redis", persist_path="c.db")
