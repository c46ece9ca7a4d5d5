"""`server.edge`: limits a hostile or broken client meets before the pipeline runs."""

from __future__ import annotations

from pydantic import Field

from sluice.config_base import Frozen


class EdgeConfig(Frozen):
    # A client must finish sending a request's line and headers this long after its first
    # byte (or after connecting): slowloris connections are closed, not held.
    header_timeout_s: float = Field(default=10.0, gt=0)
    # The whole body must arrive within this (a body trickled byte by byte gets 408).
    body_timeout_s: float = Field(default=30.0, gt=0)
    # Idle keep-alive connections are closed after this.
    keepalive_timeout_s: float = Field(default=75.0, gt=0)
    # Open connections per client IP address at most; 0: no cap. Behind a reverse proxy
    # every connection comes from the proxy's address: raise it (or 0) there.
    max_connections_per_address: int = Field(default=256, ge=0)
    # Nesting of JSON objects/arrays in a request body (the wire formats need < 20).
    max_json_depth: int = Field(default=64, ge=4, le=200)
