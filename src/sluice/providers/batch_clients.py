"""Clients of the providers' own batch APIs, for the "forward" execution mode.

Forward mode hands a whole batch to the provider (half price) instead of running each
item through the gateway. Both clients have one shape:

    client = make_batch_client(provider_name, provider_config)
    batch_id = await client.submit([BatchItem(custom_id, body), ...], metadata={...})
    status = await client.poll(batch_id)        # BatchStatus(done, state, counts, ...)
    async for r in client.results(batch_id):    # BatchResult(custom_id, body | error, usage)
        ...
    await client.cancel(batch_id)
    await client.close()

`body` is the provider-native request body (OpenAI chat.completions body; Anthropic
Messages params) for the deployment's upstream model; results carry the provider-native
answer body and its `Usage` (neutral). Credentials and headers come from the provider's
config as for the chat adapters (`api_key_env`, `headers`, `anthropic_version`);
failures are the same typed `UpstreamError`s (`status_error`/`transport_error`), so a 5xx
on a poll is `UpstreamStatusError` with `retryable` semantics the caller already knows.

These calls are few and large (an upload, polls minutes apart, a download), not the chat
hot path: they use one aiohttp session per client (proxies from the environment), not
the pooled `UpstreamTransport`, which only speaks JSON POST and SSE.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import aiohttp
import orjson

from sluice.config import AnthropicProviderConfig, OpenAIProviderConfig, ProviderConfig
from sluice.errors import UpstreamMalformedError
from sluice.providers.http import status_error, transport_error
from sluice.types import Usage

State = Literal["running", "cancelling", "ended"]
OPENAI_ENDED = ("completed", "failed", "expired", "cancelled")


@dataclass(frozen=True, slots=True)
class BatchItem:
    custom_id: str
    body: dict[str, Any]  # provider-native request body (model = the upstream model)


@dataclass(frozen=True, slots=True)
class BatchStatus:
    id: str
    state: State  # running | cancelling | ended
    provider_status: str  # the provider's own word (validating, in_progress, ended, ...)
    total: int
    succeeded: int
    failed: int  # errored + expired (+ canceled, Anthropic)
    errors: list[dict[str, Any]] = field(default_factory=list)  # batch-level (OpenAI failed)

    @property
    def done(self) -> bool:
        return self.state == "ended"


@dataclass(frozen=True, slots=True)
class BatchResult:
    custom_id: str
    status_code: int  # 200 for an answer; the item's HTTP status, or 0 (expired/canceled)
    body: dict[str, Any] | None  # the provider's answer body (None on error)
    error: dict[str, Any] | None  # {"code"/"type", "message"} when the item failed
    usage: Usage | None  # of an answer; None on error

    @property
    def ok(self) -> bool:
        return self.body is not None


class BatchClient(Protocol):
    provider: str  # "openai" | "anthropic"

    async def submit(
        self, items: Sequence[BatchItem], metadata: dict[str, str] | None = None
    ) -> str: ...

    async def poll(self, batch_id: str) -> BatchStatus: ...

    def results(self, batch_id: str) -> AsyncIterator[BatchResult]: ...

    async def cancel(self, batch_id: str) -> BatchStatus: ...

    async def close(self) -> None: ...


class _Http:
    """One aiohttp session, errors mapped to Sluice's typed upstream errors."""

    def __init__(self, name: str, headers: dict[str, str], timeout_s: float = 300.0) -> None:
        self.name = name
        self.headers = headers
        self.timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=10.0)
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout, trust_env=True)
        return self._session

    async def request(self, method: str, url: str, *, json: Any = None, data: Any = None) -> bytes:
        body = orjson.dumps(json) if json is not None else data
        headers = dict(self.headers)
        if json is not None:
            headers["content-type"] = "application/json"
        try:
            async with self.session().request(method, url, data=body, headers=headers) as resp:
                raw = await resp.read()
                if resp.status >= 400:
                    raise status_error(resp.status, resp.headers, raw, self.name)
                return raw
        except aiohttp.ClientError as exc:
            raise transport_error(exc, self.name) from exc
        except TimeoutError as exc:
            raise transport_error(exc, self.name) from exc

    async def json(self, method: str, url: str, **kw: Any) -> dict[str, Any]:
        raw = await self.request(method, url, **kw)
        try:
            out = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise UpstreamMalformedError(
                f"upstream {self.name} sent a body that is not JSON", deployment=self.name
            ) from exc
        if not isinstance(out, dict):
            raise UpstreamMalformedError(
                f"upstream {self.name} sent a non-object body", deployment=self.name
            )
        return out

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _jsonl(raw: bytes) -> list[dict[str, Any]]:
    rows = []
    for line in raw.splitlines():
        if line.strip():
            row = orjson.loads(line)
            if isinstance(row, dict):
                rows.append(row)
    return rows


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) else 0


# --- OpenAI ------------------------------------------------------------------------------


def openai_usage(body: dict[str, Any]) -> Usage:
    u = body.get("usage") or {}
    details = u.get("prompt_tokens_details") or {}
    cached = _int(details.get("cached_tokens"))
    return Usage(
        input_tokens=_int(u.get("prompt_tokens")) - cached,
        output_tokens=_int(u.get("completion_tokens")),
        cache_read_tokens=cached,
    )


class OpenAIBatchClient:
    """OpenAI Files + Batches (`/v1/files`, `/v1/batches`)."""

    provider = "openai"

    def __init__(self, name: str, cfg: OpenAIProviderConfig) -> None:
        self.base = cfg.api_base.rstrip("/")
        headers = dict(cfg.headers)
        key = os.environ.get(cfg.api_key_env) if cfg.api_key_env else None
        if key:
            headers["authorization"] = f"Bearer {key}"
        self.http = _Http(name, headers)
        self.endpoint = "/v1/chat/completions"

    async def submit(
        self, items: Sequence[BatchItem], metadata: dict[str, str] | None = None
    ) -> str:
        lines = b"".join(
            orjson.dumps(
                {"custom_id": i.custom_id, "method": "POST", "url": self.endpoint, "body": i.body}
            )
            + b"\n"
            for i in items
        )
        form = aiohttp.FormData()
        form.add_field("purpose", "batch")
        form.add_field("file", lines, filename="batch.jsonl", content_type="application/jsonl")
        file = await self.http.json("POST", f"{self.base}/files", data=form)
        body: dict[str, Any] = {
            "input_file_id": file["id"],
            "endpoint": self.endpoint,
            "completion_window": "24h",
        }
        if metadata:
            body["metadata"] = metadata
        batch = await self.http.json("POST", f"{self.base}/batches", json=body)
        return str(batch["id"])

    def _status(self, batch: dict[str, Any]) -> BatchStatus:
        provider_status = str(batch.get("status"))
        counts = batch.get("request_counts") or {}
        if provider_status in OPENAI_ENDED:
            state: State = "ended"
        elif provider_status == "cancelling":
            state = "cancelling"
        else:
            state = "running"
        errors = (batch.get("errors") or {}).get("data") or []
        return BatchStatus(
            id=str(batch["id"]),
            state=state,
            provider_status=provider_status,
            total=_int(counts.get("total")),
            succeeded=_int(counts.get("completed")),
            failed=_int(counts.get("failed")),
            errors=[e for e in errors if isinstance(e, dict)],
        )

    async def poll(self, batch_id: str) -> BatchStatus:
        return self._status(await self.http.json("GET", f"{self.base}/batches/{batch_id}"))

    async def cancel(self, batch_id: str) -> BatchStatus:
        return self._status(await self.http.json("POST", f"{self.base}/batches/{batch_id}/cancel"))

    async def results(self, batch_id: str) -> AsyncIterator[BatchResult]:
        """Every item in the output and error files. Items never run (a cancelled batch)
        appear in neither: the caller knows its custom_ids and marks those itself."""
        batch = await self.http.json("GET", f"{self.base}/batches/{batch_id}")
        for key in ("output_file_id", "error_file_id"):
            file_id = batch.get(key)
            if not file_id:
                continue
            raw = await self.http.request("GET", f"{self.base}/files/{file_id}/content")
            for row in _jsonl(raw):
                yield self._result(row)

    @staticmethod
    def _result(row: dict[str, Any]) -> BatchResult:
        custom_id = str(row.get("custom_id"))
        response = row.get("response")
        if isinstance(response, dict):
            status = _int(response.get("status_code"))
            body = _obj(response.get("body"))
            if status == 200:
                return BatchResult(custom_id, 200, body, None, openai_usage(body))
            err = _obj(body.get("error"))
            return BatchResult(custom_id, status, None, err or {"message": "failed"}, None)
        err = _obj(row.get("error"))
        return BatchResult(custom_id, 0, None, err or {"message": "failed"}, None)

    async def close(self) -> None:
        await self.http.close()


# --- Anthropic ---------------------------------------------------------------------------


def anthropic_usage(message: dict[str, Any]) -> Usage:
    u = message.get("usage") or {}
    return Usage(
        input_tokens=_int(u.get("input_tokens")),
        output_tokens=_int(u.get("output_tokens")),
        cache_read_tokens=_int(u.get("cache_read_input_tokens")),
        cache_write_tokens=_int(u.get("cache_creation_input_tokens")),
    )


class AnthropicBatchClient:
    """Anthropic Message Batches (`/v1/messages/batches`)."""

    provider = "anthropic"

    def __init__(self, name: str, cfg: AnthropicProviderConfig) -> None:
        base = cfg.api_base.rstrip("/")
        self.base = base if base.endswith("/v1") else base + "/v1"
        headers = {"anthropic-version": cfg.anthropic_version, **cfg.headers}
        key = os.environ.get(cfg.api_key_env) if cfg.api_key_env else None
        if key:
            headers["x-api-key"] = key
        self.http = _Http(name, headers)

    async def submit(
        self, items: Sequence[BatchItem], metadata: dict[str, str] | None = None
    ) -> str:
        requests = [{"custom_id": i.custom_id, "params": i.body} for i in items]
        batch = await self.http.json(
            "POST", f"{self.base}/messages/batches", json={"requests": requests}
        )
        return str(batch["id"])

    @staticmethod
    def _status(batch: dict[str, Any]) -> BatchStatus:
        provider_status = str(batch.get("processing_status"))
        counts = batch.get("request_counts") or {}
        state: State = (
            "ended"
            if provider_status == "ended"
            else "cancelling"
            if provider_status == "canceling"
            else "running"
        )
        failed = sum(_int(counts.get(k)) for k in ("errored", "expired", "canceled"))
        succeeded = _int(counts.get("succeeded"))
        return BatchStatus(
            id=str(batch["id"]),
            state=state,
            provider_status=provider_status,
            total=succeeded + failed + _int(counts.get("processing")),
            succeeded=succeeded,
            failed=failed,
        )

    async def poll(self, batch_id: str) -> BatchStatus:
        return self._status(await self.http.json("GET", f"{self.base}/messages/batches/{batch_id}"))

    async def cancel(self, batch_id: str) -> BatchStatus:
        return self._status(
            await self.http.json("POST", f"{self.base}/messages/batches/{batch_id}/cancel")
        )

    async def results(self, batch_id: str) -> AsyncIterator[BatchResult]:
        batch = await self.http.json("GET", f"{self.base}/messages/batches/{batch_id}")
        url = batch.get("results_url") or f"{self.base}/messages/batches/{batch_id}/results"
        raw = await self.http.request("GET", str(url))
        for row in _jsonl(raw):
            yield self._result(row)

    @staticmethod
    def _result(row: dict[str, Any]) -> BatchResult:
        custom_id = str(row.get("custom_id"))
        result = _obj(row.get("result"))
        kind = result.get("type")
        if kind == "succeeded" and isinstance(result.get("message"), dict):
            message = result["message"]
            return BatchResult(custom_id, 200, message, None, anthropic_usage(message))
        if kind == "errored":
            outer = _obj(result.get("error"))
            inner = _obj(outer.get("error")) or outer
            status = 400 if inner.get("type") == "invalid_request_error" else 500
            return BatchResult(custom_id, status, None, inner or {"type": "api_error"}, None)
        return BatchResult(
            custom_id, 0, None, {"type": str(kind), "message": f"request {kind}"}, None
        )

    async def close(self) -> None:
        await self.http.close()


def make_batch_client(name: str, cfg: ProviderConfig) -> BatchClient:
    """The batch client for a configured provider (by its `kind`)."""
    if isinstance(cfg, OpenAIProviderConfig):
        return OpenAIBatchClient(name, cfg)
    if isinstance(cfg, AnthropicProviderConfig):
        return AnthropicBatchClient(name, cfg)
    raise ValueError(f"provider {name!r} has no batch API")  # pragma: no cover
