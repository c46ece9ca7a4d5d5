"""Key hashing with a pepper, constant-time checks, expiry, and the auth step's rules."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from sluice.errors import (
    AuthenticationError,
    InvalidRequestError,
    PermissionDeniedError,
    ServiceUnavailableError,
)
from sluice.governance.auth import Authenticator, presented_key
from sluice.governance.config import AuthConfig, GovernanceConfig
from sluice.governance.keys import (
    DEV_PEPPER,
    KEY_PREFIX,
    KeyCreate,
    KeyRecord,
    KeyUpdate,
    hash_key,
    new_key,
)
from sluice.governance.runtime import GovernanceError, resolve_pepper
from sluice.governance.spec import Identity
from sluice.governance.store import KeyStore
from sluice.types import CallMeta, ChatRequest


def test_hash_is_hmac_sha256_under_the_pepper() -> None:
    key = new_key()
    assert key.startswith(KEY_PREFIX) and len(key) == len(KEY_PREFIX) + 43
    expected = hmac.new(b"pepper-one", key.encode(), hashlib.sha256).hexdigest()
    assert hash_key(key, b"pepper-one") == expected
    assert hash_key(key, b"pepper-two") != expected  # a stolen table is useless elsewhere
    assert hashlib.sha256(key.encode()).hexdigest() != expected  # not a bare digest
    assert new_key() != new_key()


def test_pepper_is_required_when_auth_is_on() -> None:
    on = GovernanceConfig()
    with pytest.raises(GovernanceError, match="SLUICE_KEY_PEPPER"):
        resolve_pepper(on, {})
    with pytest.raises(GovernanceError, match="16 characters"):
        resolve_pepper(on, {"SLUICE_KEY_PEPPER": "short"})
    assert resolve_pepper(on, {"SLUICE_KEY_PEPPER": "p" * 32}) == b"p" * 32
    dev = GovernanceConfig(auth=AuthConfig(insecure_dev_pepper=True))
    assert resolve_pepper(dev, {}) == DEV_PEPPER
    off = GovernanceConfig(auth=AuthConfig(enabled=False))
    assert resolve_pepper(off, {}) is None


def test_expiry_and_revocation() -> None:
    record = KeyRecord("key_1", "h", "sk-sluice-x", "t", expires_at=100.0)
    assert record.problem(now=99.9) is None and record.status(now=99.9) == "active"
    assert record.problem(now=100.0) == "this API key has expired"
    assert record.status(now=100.0) == "expired"
    revoked = KeyRecord("key_1", "h", "sk-sluice-x", "t", revoked_at=50.0)
    assert revoked.problem(now=1.0) == "this API key has been revoked"


def test_presented_key_from_either_header() -> None:
    assert presented_key({"authorization": "Bearer sk-sluice-a"}) == "sk-sluice-a"
    assert presented_key({"authorization": "bearer  sk-sluice-a "}) == "sk-sluice-a"
    assert presented_key({"x-api-key": "sk-sluice-b"}) == "sk-sluice-b"
    assert presented_key({"authorization": "Basic abc"}) is None
    same = {"authorization": "Bearer sk-sluice-a", "x-api-key": "sk-sluice-a"}
    assert presented_key(same) == "sk-sluice-a"
    with pytest.raises(AuthenticationError):
        presented_key({"authorization": "Bearer sk-sluice-a", "x-api-key": "sk-sluice-b"})


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"tenant": ""},
        {"tenant": "a\x00b"},
        {"tenant": "x" * 256},
        {"tenant": "t", "allowed_models": [""]},
        {"tenant": "t", "limits": {"rpm": 0}},
        {"tenant": "t", "budgets": [{"period": "hourly"}]},
        {"tenant": "t", "expires_at": -1},
        {"tenant": "t", "surprise": 1},
        {"tenant": "t", "team": "\ud800"},
    ],
)
def test_create_bodies_that_are_refused(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        KeyCreate.model_validate(body)


def test_update_cannot_move_a_key_to_another_tenant() -> None:
    with pytest.raises(ValidationError):
        KeyUpdate.model_validate({"tenant": "other"})


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    s = KeyStore(f"sqlite:///{tmp_path / 'k.db'}", b"unit-test-pepper-123")
    s.migrate()
    return s


def _request(model: str = "m", headers: dict[str, str] | None = None, **meta: Any) -> ChatRequest:
    return ChatRequest(model=model, messages=[], meta=CallMeta(headers=headers or {}, **meta))


async def test_identify_compares_hashes_in_constant_time(
    store: KeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    record, key = store.create(KeyCreate(tenant="acme", team="blue"))
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)  # the function keys.same_hash calls
    authn = Authenticator(AuthConfig(key_cache_ttl_s=0), store)
    identity = await authn.authenticate({"authorization": f"Bearer {key}"})
    assert identity is not None and identity.tenant == "acme" and identity.key_id == record.key_id
    assert calls == [(record.key_hash.encode(), record.key_hash.encode())]
    with pytest.raises(AuthenticationError):
        await authn.authenticate({"x-api-key": key[:-1] + ("A" if key[-1] != "A" else "B")})
    with pytest.raises(AuthenticationError):
        await authn.authenticate({"x-api-key": "sk-other-" + key})


async def test_cache_bounds_staleness(store: KeyStore) -> None:
    record, key = store.create(KeyCreate(tenant="acme"))
    authn = Authenticator(AuthConfig(key_cache_ttl_s=30), store)
    headers = {"x-api-key": key}
    assert (await authn.authenticate(headers)).tenant == "acme"
    store.revoke(record.key_id)
    assert (await authn.authenticate(headers)).tenant == "acme"  # cached: another replica's
    authn.forget(record.key_hash)
    with pytest.raises(AuthenticationError, match="revoked"):
        await authn.authenticate(headers)


def test_admit_takes_labels_from_the_call_header_first() -> None:
    authn = Authenticator(AuthConfig(), None)
    identity = Identity(key_id="key_1", tenant="acme", team="blue", tier="gold")
    spoofed = {"x-sluice-tenant": "evil", "x-sluice-user": "u9", "x-sluice-feature": "chat"}
    req = _request(headers=spoofed, user="body-user", metadata={"session_id": "s1"})
    authn.admit(identity, req)
    meta = req.meta
    assert (meta.user, meta.feature, meta.session) == ("u9", "chat", "s1")
    body_user = _request(user="body-user", metadata={"feature": "f"})
    authn.admit(identity, body_user)
    assert body_user.meta.user == "body-user" and body_user.meta.feature == "f"
    with pytest.raises(PermissionDeniedError):
        authn.admit(Identity(allowed_models=("a",)), _request("b"))
    with pytest.raises(InvalidRequestError):
        authn.admit(identity, _request(headers={"x-sluice-user": "u" * 300}))


async def test_auth_off_serves_everyone_as_default() -> None:
    authn = Authenticator(AuthConfig(enabled=False), None)
    assert await authn.authenticate({}) is Identity.anonymous()
    assert await authn.authenticate({"x-api-key": "sk-sluice-whatever"}) is Identity.anonymous()
    assert Identity.anonymous().tenant == "default" and Identity.anonymous().allows("any")


async def test_store_down_is_503_not_500(tmp_path: Path) -> None:
    store = KeyStore("postgresql+psycopg://nobody@127.0.0.1:1/none", b"p" * 20)
    authn = Authenticator(AuthConfig(), store)
    with pytest.raises(ServiceUnavailableError):
        await authn.authenticate({"x-api-key": new_key()})
    store.close()
