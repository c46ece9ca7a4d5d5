"""Scale-out: two `sluice serve` processes sharing Redis and PostgreSQL behind nginx.

Concurrent load from many virtual keys through nginx (round robin over both replicas):
per-key RPM limits hold across replicas, a hard USD budget is never exceeded by more than
one in-flight request's reservation, and a key revoked on one replica is refused by the
other within a second.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from sluice.governance.redis_counters import RedisCounters
from tests.governance_rig import ADMIN, ADMIN_KEY, PEPPER, admin, create_key, postgres_schema
from tests.integration.test_limits_redis import REDIS_URL

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]
HELLO = [{"role": "user", "content": "hello"}]
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(tmp: Path, store_url: str, prefix: str) -> Path:
    data: dict[str, Any] = yaml.safe_load((ROOT / "examples" / "sim.yaml").read_text())
    data["observability"]["records"]["enabled"] = False
    data["governance"] = {
        "store_url": store_url,
        "auth": {"enabled": True},
        "backend": "redis",  # key revocations broadcast to every replica
        "redis_url": REDIS_URL,
    }
    data["limits"] = {
        "enabled": True,
        "backend": "redis",
        "redis_url": REDIS_URL,
        "key_prefix": prefix,
        "ledger": {"store_url": store_url},
    }
    path = tmp / "sluice.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


async def wait_ready(url: str, proc: subprocess.Popen[bytes], deadline_s: float = 20) -> None:
    stop = time.monotonic() + deadline_s
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < stop:
            if proc.poll() is not None:
                raise RuntimeError(f"{url} exited with {proc.returncode}")
            try:
                async with http.get(url + "/healthz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError(f"{url} not ready")


NGINX_CONF = """
worker_processes 1;
daemon off;
user root;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  upstream sluice {{ server 127.0.0.1:{a}; server 127.0.0.1:{b}; keepalive 32; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://sluice;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }}
  }}
}}
"""


def spawn(cmd: list[str], env: dict[str, str] | None, out: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)


@asynccontextmanager
async def cluster(sim_url: str, tmp: Path) -> AsyncIterator[tuple[str, str, str]]:
    """(nginx URL, replica A URL, replica B URL)."""
    if NGINX is None:
        pytest.skip("nginx is not installed (make services)")
    prefix = f"sluice-test:limits:{uuid.uuid4().hex}:"
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[Any] = []
    with postgres_schema() as store_url:
        config = write_config(tmp, store_url, prefix)
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT / "src"),
            "SLUICE_SIM_URL": sim_url,
            "SLUICE_KEY_PEPPER": PEPPER,
            "SLUICE_ADMIN_KEY": ADMIN_KEY,
        }
        urls = []
        try:
            for name in ("a", "b"):  # one after the other: the first runs the migrations
                port = free_port()
                log = (tmp / f"gateway-{name}.log").open("wb")
                logs.append(log)
                cmd = [sys.executable, "-m", "sluice.cli", "serve", "--config", str(config)]
                procs.append(spawn([*cmd, "--port", str(port), "--log-level", "warning"], env, log))
                urls.append(f"http://127.0.0.1:{port}")
                await wait_ready(urls[-1], procs[-1])
            port = free_port()
            a_port, b_port = (u.rsplit(":", 1)[1] for u in urls)
            conf = tmp / "nginx.conf"
            conf.write_text(NGINX_CONF.format(tmp=tmp, a=a_port, b=b_port, port=port))
            procs.append(spawn([NGINX, "-c", str(conf), "-p", str(tmp)], None, logs[0]))
            await wait_ready(f"http://127.0.0.1:{port}", procs[-1])
            yield f"http://127.0.0.1:{port}", urls[0], urls[1]
        finally:
            for proc in reversed(procs):
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            for log in logs:
                log.close()
            counters = RedisCounters(REDIS_URL, prefix)
            await counters.clear()
            await counters.close()


async def chat(
    http: aiohttp.ClientSession, url: str, key: str, max_tokens: int = 16
) -> tuple[int, dict[str, Any], str | None]:
    body = {"model": "gpt-4o-mini", "messages": HELLO, "max_tokens": max_tokens}
    headers = {"authorization": f"Bearer {key}"}
    async with http.post(url + "/v1/chat/completions", json=body, headers=headers) as resp:
        payload = await resp.json()
        return resp.status, payload, resp.headers.get("x-sluice-replica-port")


async def test_two_replicas_behind_nginx(sim_url: str, tmp_path: Path) -> None:
    async with cluster(sim_url, tmp_path) as (lb, a, b), aiohttp.ClientSession() as http:
        # --- RPM per key across replicas ------------------------------------------------------
        rpm, per_key, nkeys = 7, 20, 8
        keys = [await create_key(http, a, limits={"rpm": rpm}) for _ in range(nkeys)]
        results = await asyncio.gather(
            *(chat(http, lb, k["key"]) for k in keys for _ in range(per_key))
        )
        statuses = [status for status, _, _ in results]
        assert set(statuses) <= {200, 429}, statuses
        for i in range(nkeys):
            admitted = statuses[i * per_key : (i + 1) * per_key].count(200)
            assert rpm <= admitted <= rpm + 1, (i, admitted)  # within one of the limit
        # Both replicas served (nginx round robin), and they agree on the key's usage.
        used = []
        for replica in (a, b):
            auth = {"authorization": f"Bearer {keys[0]['key']}"}
            async with http.get(replica + "/v1/sluice/usage", headers=auth) as resp:
                used.append((await resp.json())["limits"][0]["used"])
        assert used == [rpm, rpm]
        per_key_admitted = [
            statuses[i * per_key : (i + 1) * per_key].count(200) for i in range(nkeys)
        ]
        print(f"rpm {rpm}: admitted per key {per_key_admitted}")

        # --- a hard USD budget under concurrent load ------------------------------------------
        usd = 0.0005  # gpt-4o-mini at $0.15/$0.60 per million: each call reserves ~$0.00006
        budgeted = await create_key(http, a, budgets=[{"period": "daily", "usd": usd}])
        results = await asyncio.gather(
            *(chat(http, lb, budgeted["key"], max_tokens=100) for _ in range(60))
        )
        codes = [(s, p.get("error", {}).get("code")) for s, p, _ in results]
        assert {c for c in codes if c[0] != 200} <= {(429, "budget_exceeded")}
        auth = {"authorization": f"Bearer {budgeted['key']}"}
        async with http.get(b + "/v1/sluice/usage", headers=auth) as resp:
            budget = (await resp.json())["budgets"][0]
        reservation = (20 + 100) * 0.60 / 1e6  # generous worst case of one call
        assert budget["reserved"] == 0
        assert 0 < budget["spent"] <= usd + reservation
        assert codes.count((200, None)) >= 3
        print(  # the numbers behind the report
            f"budget ${usd}: {codes.count((200, None))}/60 admitted, spent ${budget['spent']}"
        )

        # --- revocation on A reaches B within a second -----------------------------------------
        victim = await create_key(http, a)
        status, _, _ = await chat(http, b, victim["key"])
        assert status == 200
        status, _ = await admin(http, "DELETE", f"{a}/admin/keys/{victim['key_id']}")
        assert status == 200
        revoked = time.monotonic()
        while True:
            status, payload, _ = await chat(http, b, victim["key"])
            if status == 401:
                assert payload["error"]["code"] == "key_revoked"
                print(f"revocation seen on B after {time.monotonic() - revoked:.3f} s")
                break
            assert time.monotonic() - revoked < 1.0, "B still accepts a revoked key"
            await asyncio.sleep(0.02)
        assert ADMIN
