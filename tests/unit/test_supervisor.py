"""The supervisor: ordered start, rollback when a part fails, health, orderly stop."""

from __future__ import annotations

import asyncio

import pytest

from sluice import server
from sluice.supervisor import Supervisor
from tests.conftest import gateway_config


class Part:
    def __init__(self, name: str, log: list[str], *, fail: bool = False, hang: bool = False):
        self.name, self.log, self.fail, self.hang = name, log, fail, hang

    async def start(self) -> None:
        self.log.append(f"start {self.name}")
        if self.fail:
            raise RuntimeError(f"{self.name} broke")

    async def stop(self) -> None:
        self.log.append(f"stop {self.name}")
        if self.hang:
            await asyncio.sleep(3600)


def supervise(*parts: Part, timeout_s: float = 5.0) -> Supervisor:
    sup = Supervisor(stop_timeout_s=timeout_s)
    for part in parts:
        sup.add(part.name, part.start, part.stop)
    return sup


async def test_parts_start_in_order_and_stop_in_reverse() -> None:
    log: list[str] = []
    sup = supervise(Part("a", log), Part("b", log), Part("c", log))
    await sup.start()
    assert sup.health() == {"a": "running", "b": "running", "c": "running"}
    await sup.stop()
    assert log == ["start a", "start b", "start c", "stop c", "stop b", "stop a"]
    assert set(sup.health().values()) == {"stopped"}
    await sup.stop()  # a second stop does nothing
    assert len(log) == 6


async def test_a_part_that_fails_to_start_stops_those_already_started() -> None:
    log: list[str] = []
    sup = supervise(Part("a", log), Part("b", log, fail=True), Part("c", log))
    with pytest.raises(RuntimeError, match="b broke"):
        await sup.start()
    assert log == ["start a", "start b", "stop a"]
    health = sup.health()
    assert health["a"] == "stopped" and health["b"].startswith("failed: RuntimeError")
    assert health["c"] == "registered"


async def test_a_hanging_or_failing_stop_never_keeps_the_others_running() -> None:
    log: list[str] = []

    async def broken() -> None:
        raise OSError("disk gone")

    sup = supervise(Part("a", log), Part("b", log, hang=True), timeout_s=0.2)
    sup.add("c", stop=broken)
    await sup.start()
    await asyncio.wait_for(sup.stop(), 10)
    assert log[-2:] == ["stop b", "stop a"]
    health = sup.health()
    assert health["a"] == "stopped"
    assert health["b"].startswith("stop failed: TimeoutError")
    assert health["c"] == "stop failed: OSError: disk gone"


async def test_spawned_tasks_are_owned_reported_and_cancelled_first() -> None:
    log: list[str] = []
    sup = supervise(Part("a", log))
    await sup.start()

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            log.append("task cancelled")

    async def dies() -> None:
        raise ValueError("bad row")

    sup.spawn("loop", forever())
    sup.spawn("writer", dies())
    await asyncio.sleep(0.01)
    health = sup.health()
    assert health["task:loop"] == "running"
    assert health["task:writer"] == "failed: ValueError: bad row"
    with pytest.raises(ValueError, match="running already"):
        sup.spawn("loop", forever())
    await sup.stop()
    assert log == ["start a", "task cancelled", "stop a"]  # tasks before parts
    assert sup.health()["task:loop"] == "cancelled"


async def test_parts_are_registered_before_the_start() -> None:
    sup = Supervisor()
    sup.add("a")
    with pytest.raises(ValueError, match="registered already"):
        sup.add("a")
    await sup.start()
    with pytest.raises(RuntimeError, match="before the supervisor starts"):
        sup.add("late")


async def test_the_gateway_supervises_its_parts_and_the_alert_loop() -> None:
    app = server.create_app(gateway_config("http://127.0.0.1:9"))
    sup = app[server.GATEWAY].supervisor
    assert set(sup.health().values()) == {"registered"}
    runner, _ = await server.start_app(app)
    health = sup.health()
    assert health["governance"] == health["recorder"] == health["alerts"] == "running"
    assert health["task:alerts"] == "running"  # the alert loop is the supervisor's task
    await runner.cleanup()
    health = sup.health()
    assert health.pop("task:alerts") == "cancelled"
    assert set(health.values()) == {"stopped"}
