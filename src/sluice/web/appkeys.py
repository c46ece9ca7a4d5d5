"""The app key that holds the gateway, typed without importing it at run time.

`web/` sits above the gateway in the layers (see pyproject's import-linter contracts), so a
run-time import would be legal; the key is still typed through `TYPE_CHECKING` so that the
web modules depend on the gateway's *shape* only, and importing any of them never builds
or loads the pipeline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from sluice.gateway import Gateway

GATEWAY: web.AppKey[Gateway] = web.AppKey("gateway")
