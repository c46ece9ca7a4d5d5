"""`sluice serve`'s main loop: `aiohttp.web.run_app` with the `EdgeRunner` (which run_app
cannot be given). Same contract: serve until SIGINT/SIGTERM, then drain for
`shutdown_timeout` seconds and clean up."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.web_runner import GracefulExit

from sluice.edge.config import EdgeConfig
from sluice.edge.protocol import EdgeRunner


async def _serve(
    runner: EdgeRunner,
    host: str,
    port: int,
    announce: Callable[[str], None],
    drain: Callable[[], Awaitable[None]] | None,
    reuse_port: bool = False,
) -> None:
    await runner.setup()
    try:
        # reuse_port: `sluice serve --workers N` (several processes on one port).
        site = web.TCPSite(runner, host, port, reuse_port=reuse_port or None)
        await site.start()
        announce(str(site.name))
        await asyncio.Event().wait()  # until a signal cancels the task
    finally:
        if drain is not None:  # with the listener still open: health checks are answered
            await drain()
        await runner.cleanup()


def run(
    app: web.Application,
    *,
    host: str,
    port: int,
    edge: EdgeConfig,
    announce: Callable[[str], None],
    loop: asyncio.AbstractEventLoop,
    access_log: logging.Logger | None,
    shutdown_timeout: float,
    drain: Callable[[], Awaitable[None]] | None = None,
    reuse_port: bool = False,
) -> None:
    """`drain` runs on SIGTERM/SIGINT before the listener closes (it waits for in-flight
    calls); whatever still runs after it gets one more second, then is cancelled."""
    runner = EdgeRunner(
        app,
        edge,
        handle_signals=True,
        handler_cancellation=True,
        access_log=access_log,
        shutdown_timeout=1.0 if drain is not None else shutdown_timeout,
    )
    asyncio.set_event_loop(loop)
    main = loop.create_task(_serve(runner, host, port, announce, drain, reuse_port))
    try:
        loop.run_until_complete(main)
    except (GracefulExit, KeyboardInterrupt):
        pass
    finally:
        if not main.done():
            main.cancel()
            with contextlib.suppress(asyncio.CancelledError, GracefulExit):
                loop.run_until_complete(main)
        rest = asyncio.all_tasks(loop)
        for task in rest:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*rest, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
