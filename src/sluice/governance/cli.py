"""`sluice keys …` and `sluice db upgrade`: manage virtual keys straight in the key store.

They read `governance.store_url` and the pepper variable from the config (`--config`, or the
built-in one), or `--store URL`; the pepper must be the gateway's, or the keys will not
work there. Output is JSON; `create` prints the key once, and it cannot be shown again.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

import click
import orjson
from pydantic import ValidationError

from sluice.config import ConfigError, SluiceConfig, default_config, load_config
from sluice.governance.keys import KeyCreate, KeyUpdate
from sluice.governance.runtime import GovernanceError, resolve_pepper
from sluice.governance.store import KeyStore
from sluice.state import migrations

_DURATION = re.compile(r"^(\d+)([smhdw])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def _config(path: str | None) -> SluiceConfig:
    try:
        return load_config(path) if path else default_config()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _open(path: str | None, store_url: str | None) -> KeyStore:
    config = _config(path).governance
    url = store_url or config.store_url
    forced = config.model_copy(update={"auth": config.auth.model_copy(update={"enabled": True})})
    try:
        pepper = resolve_pepper(forced, os.environ)
    except GovernanceError as exc:
        raise click.ClickException(str(exc)) from None
    assert pepper is not None  # resolve_pepper raises instead when auth is on
    store = KeyStore(url, pepper)
    store.migrate()
    return store


def _echo(value: Any) -> None:
    click.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


def _expiry(text: str | None) -> float | None:
    """`30d`, `12h`, … from now, or epoch seconds."""
    if text is None:
        return None
    match = _DURATION.match(text.strip())
    if match:
        return time.time() + int(match.group(1)) * _SECONDS[match.group(2)]
    try:
        return float(text)
    except ValueError:
        raise click.BadParameter("use 30d, 12h, 90m, 2w or epoch seconds") from None


def _fields(opts: dict[str, Any]) -> dict[str, Any]:
    """Request-body fields from the command-line options (those given only)."""
    body: dict[str, Any] = {}
    if opts.get("json_body"):
        try:
            loaded = orjson.loads(opts["json_body"])
        except orjson.JSONDecodeError as exc:
            raise click.BadParameter(f"--json is not valid JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise click.BadParameter("--json must be a JSON object")
        body.update(loaded)
    for name in ("tenant", "name", "team", "user", "tier"):
        if opts.get(name) is not None:
            body[name] = opts[name]
    if opts.get("models"):
        body["allowed_models"] = list(opts["models"])
    limits = {k: opts[k] for k in ("rpm", "tpm") if opts.get(k) is not None}
    if limits:
        body["limits"] = {**body.get("limits", {}), **limits}
    if opts.get("expires") is not None:
        body["expires_at"] = _expiry(opts["expires"])
    return body


def _validated(model: type[KeyCreate] | type[KeyUpdate], body: dict[str, Any]) -> Any:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False)
        )
        raise click.ClickException(f"invalid key fields: {problems}") from None


def _store_options(fn: Any) -> Any:
    fn = click.option("--store", "store_url", metavar="URL", help="Key store URL.")(fn)
    fn = click.option(
        "--config", "config_path", type=click.Path(dir_okay=False), help="Gateway config."
    )(fn)
    return fn


def _key_options(fn: Any) -> Any:
    for decorator in reversed(
        [
            click.option("--name", help="A label for people."),
            click.option("--team"),
            click.option("--user", help="The key's owner."),
            click.option("--tier"),
            click.option("--model", "models", multiple=True, help="Allowed model (repeat)."),
            click.option("--rpm", type=int, help="Requests per minute."),
            click.option("--tpm", type=int, help="Tokens per minute."),
            click.option("--expires", help="30d, 12h, 2w … from now, or epoch seconds."),
            click.option("--json", "json_body", help="More fields as JSON (budgets, metadata, …)."),
        ]
    ):
        fn = decorator(fn)
    return fn


@click.group()
def keys() -> None:
    """Virtual API keys (sk-sluice-…): create, list, show, update, revoke."""


@keys.command()
@click.option("--tenant", help="Tenant the key belongs to (required unless in --json).")
@_key_options
@_store_options
def create(config_path: str | None, store_url: str | None, **opts: Any) -> None:
    """Create a key and print it (shown this once)."""
    spec = _validated(KeyCreate, _fields(opts))
    record, key = _open(config_path, store_url).create(spec)
    _echo({"key": key, **record.public()})
    click.echo("Store the key now: it cannot be shown again.", err=True)


@keys.command("list")
@click.option("--tenant", default=None)
@click.option("--limit", default=100, show_default=True, type=click.IntRange(0, 1000))
@_store_options
def list_(config_path: str | None, store_url: str | None, tenant: str | None, limit: int) -> None:
    """List keys (never the keys themselves)."""
    records = _open(config_path, store_url).list(tenant, limit)
    _echo([r.public() for r in records])


@keys.command()
@click.argument("key_id")
@_store_options
def show(config_path: str | None, store_url: str | None, key_id: str) -> None:
    """Show one key."""
    record = _open(config_path, store_url).get(key_id)
    if record is None:
        raise click.ClickException(f"no key {key_id!r}")
    _echo(record.public())


@keys.command()
@click.argument("key_id")
@_key_options
@_store_options
def update(config_path: str | None, store_url: str | None, key_id: str, **opts: Any) -> None:
    """Change the given fields of a key."""
    patch = _validated(KeyUpdate, _fields(opts))
    record = _open(config_path, store_url).update(key_id, patch)
    if record is None:
        raise click.ClickException(f"no key {key_id!r}")
    _echo(record.public())


@keys.command()
@click.argument("key_id")
@_store_options
def revoke(config_path: str | None, store_url: str | None, key_id: str) -> None:
    """Revoke a key (every replica refuses it within the key cache TTL)."""
    record = _open(config_path, store_url).revoke(key_id)
    if record is None:
        raise click.ClickException(f"no key {key_id!r}")
    _echo(record.public())


@click.group()
def db() -> None:
    """The governance database (keys, spend ledger)."""


@db.command()
@_store_options
def upgrade(config_path: str | None, store_url: str | None) -> None:
    """Run the Alembic migrations up to the newest revision: the governance tables in the key
    store and, without --store, the call-record table in the record store."""
    url = store_url or _config(config_path).governance.store_url
    migrations.upgrade(url, "governance")
    click.echo(f"{url}: governance at revision {migrations.current(url)}", err=True)
    if store_url is None:
        records = _config(config_path).observability.records.store_url
        if records:
            migrations.upgrade(records, "records")
            at = migrations.current(records, "records")
            click.echo(f"{records}: records at revision {at}", err=True)
