"""The auth stage alone: credentials → a frozen `ctx.identity`, first in the pipeline."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from sluice.errors import AuthenticationError, PermissionDeniedError
from sluice.governance.auth import Authenticator
from sluice.governance.config import AuthConfig
from sluice.governance.keys import KeyCreate
from sluice.governance.store import KeyStore
from sluice.identity import Credentials, Identity
from sluice.pipeline.context import CallContext, Result
from sluice.stages.auth import AuthStage
from sluice.types import CallMeta, ChatRequest, ChatResponse, TextPart


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    s = KeyStore(f"sqlite:///{tmp_path / 'k.db'}", b"unit-test-pepper-123")
    s.migrate()
    return s


def call(model: str = "m", **meta: object) -> ChatRequest:
    headers = {"x-sluice-tenant": "evil", "x-sluice-user": "u9"}
    return ChatRequest(model=model, messages=[], meta=CallMeta(headers=headers, **meta))  # type: ignore[arg-type]


class Next:
    def __init__(self) -> None:
        self.seen: list[Identity] = []

    async def __call__(self, ctx: CallContext) -> Result:
        self.seen.append(ctx.identity)
        return ChatResponse("r", ctx.request.model, [TextPart("ok")])


async def test_key_becomes_the_identity_and_client_headers_do_not(store: KeyStore) -> None:
    _, key = store.create(KeyCreate(tenant="acme", team="blue", tier="gold", user="owner"))
    stage, nxt = AuthStage(Authenticator(AuthConfig(), store)), Next()
    ctx = CallContext(call(), credentials=Credentials(key=key))
    await stage(ctx, nxt)
    ident = ctx.identity
    assert (ident.tenant, ident.team, ident.tier) == ("acme", "blue", "gold")
    assert nxt.seen == [ident] and ctx.request.meta.user == "u9"
    with pytest.raises(dataclasses.FrozenInstanceError):
        ident.tenant = "evil"  # type: ignore[misc]
    assert key not in repr(ctx.credentials)  # the key is never printed


async def test_end_user_is_the_label_else_the_key_owner(store: KeyStore) -> None:
    _, key = store.create(KeyCreate(tenant="acme", user="owner"))
    stage = AuthStage(Authenticator(AuthConfig(), store))
    ctx = CallContext(ChatRequest("m", [], meta=CallMeta()), credentials=Credentials(key=key))
    await stage(ctx, Next())
    assert ctx.end_user == "owner"
    labelled = CallContext(call(), credentials=Credentials(key=key))
    await stage(labelled, Next())
    assert labelled.end_user == "u9"


async def test_no_credentials_with_auth_on_is_refused_not_anonymous(store: KeyStore) -> None:
    """An entry point that forgets to authenticate gets a 401, never the default tenant."""
    stage, nxt = AuthStage(Authenticator(AuthConfig(), store)), Next()
    for given in (Credentials(), Credentials(resolved=Identity.anonymous())):
        with pytest.raises(AuthenticationError) as err:
            await stage(CallContext(call(), credentials=given), nxt)
        assert err.value.http_status == 401
    assert nxt.seen == []


async def test_an_identity_resolved_by_the_entry_point_is_not_looked_up_again() -> None:
    auth = Authenticator(AuthConfig(), None)  # no store: a lookup would fail
    ident = Identity(key_id="key_1", tenant="acme")
    ctx = CallContext(call(), credentials=Credentials(resolved=ident))
    await AuthStage(auth)(ctx, Next())
    assert ctx.identity is ident


async def test_auth_off_every_call_is_anonymous() -> None:
    stage = AuthStage(Authenticator(AuthConfig(enabled=False), None))
    ctx = CallContext(call(), credentials=Credentials(key="sk-sluice-anything"))
    await stage(ctx, Next())
    assert ctx.identity is Identity.anonymous() and ctx.identity.tenant == "default"


async def test_models_outside_the_allow_list_are_refused_and_attributed() -> None:
    ident = Identity(key_id="key_1", tenant="acme", allowed_models=("a",))
    ctx = CallContext(call("b"), credentials=Credentials(resolved=ident))
    with pytest.raises(PermissionDeniedError):
        await AuthStage(Authenticator(AuthConfig(), None))(ctx, Next())
    assert ctx.identity is ident  # the refused call is recorded under its tenant
