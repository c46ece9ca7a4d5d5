import asyncio, time, json
import aiohttp
from tests.e2e.test_guard_e2e import start, Start  # noqa
__all__ = ["start"]

async def test_measure(start: Start) -> None:
    url = await start({"pii": {"mode": "mask"}, "injection": {"mode": "block"}})
    body_small = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi there"}]}
    hostile = "1 " * 2_000_000  # 4 MB
    async with aiohttp.ClientSession() as http:
        async def call(body):
            t = time.perf_counter()
            async with http.post(url + "/v1/chat/completions", data=json.dumps(body).encode(), headers={"authorization": "Bearer sk-test", "content-type": "application/json"}) as r:
                await r.read()
                return r.status, time.perf_counter() - t
        base = [ (await call(body_small))[1] for _ in range(5)]
        print("baseline", [round(x*1000) for x in base])
        big = asyncio.create_task(call({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": hostile}]}))
        lat = []
        while not big.done():
            lat.append((await call(body_small))[1])
        st, dt = await big; print("hostile", st, round(dt, 1))
        print("during: n", len(lat), "max ms", round(max(lat)*1000), "p50", round(sorted(lat)[len(lat)//2]*1000))
