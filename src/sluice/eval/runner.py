"""Runs a dataset against targets through a running gateway, with the official openai SDK.

Every item is sent to every target (a public model or a route) as an ordinary chat call, so
it passes the whole pipeline — auth, limits, caches (unless `no_cache`: `x-sluice-cache:
no-store`), routing, retries, structured output — and leaves a call record, tagged with the
feature `sluice-eval` and the run's id in `x-sluice-request-id` (`eval-<run>-<target>-<item>`,
so the record can be found again). Concurrency is bounded by a semaphore; a failed call
scores 0 and keeps its error, never stopping the run.

Cost per item, in order of preference (each result says which, in `cost_source`):
`header` — `x-sluice-cost-usd` on the response, when the gateway sends it; `record` — the
call record's `cost_usd`, read from the records store (`store_url`) after the run; `none`.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from sluice.eval.dataset import EvalItem
from sluice.eval.judge import JudgeError, judge, judge_messages
from sluice.eval.scorers import ScorerError, named, score_item

if TYPE_CHECKING:
    import openai

COST_HEADER = "x-sluice-cost-usd"
MAX_OUTPUT_CHARS = 20_000  # of an answer kept in the results file


@dataclass(frozen=True, slots=True)
class RunOptions:
    url: str  # the gateway, e.g. http://127.0.0.1:8080
    api_key: str = "sluice"  # a virtual key when the gateway has auth on
    concurrency: int = 4
    no_cache: bool = False
    timeout_s: float = 120.0
    run_id: str = ""
    judge_model: str | None = None  # for judge scorers that name no model
    rpm: float | None = None  # at most this many item calls started per minute


@dataclass(frozen=True, slots=True)
class ItemResult:
    item_id: str
    target: str
    output: str | None
    scores: dict[str, float]
    score: float
    passed: bool
    request_id: str
    latency_ms: float
    cost_usd: Decimal | None = None
    cost_source: str = "none"  # header | record | none
    error: str | None = None
    model: str | None = None  # the model that answered, as the response names it
    tags: tuple[str, ...] = field(default=())
    judgements: dict[str, dict[str, Any]] = field(default_factory=dict)  # judge name -> verdict

    def to_json(self) -> dict[str, Any]:
        return {
            "item_id": self.item_id,
            "target": self.target,
            "model": self.model,
            "output": self.output,
            "scores": self.scores,
            "score": self.score,
            "passed": self.passed,
            "request_id": self.request_id,
            "latency_ms": round(self.latency_ms, 3),
            "cost_usd": None if self.cost_usd is None else format(self.cost_usd, "f"),
            "cost_source": self.cost_source,
            "error": self.error,
            "tags": list(self.tags),
            "judgements": self.judgements,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ItemResult:
        """A result as `to_json` wrote it (a results file line)."""
        cost = doc.get("cost_usd")
        return cls(
            item_id=str(doc["item_id"]),
            target=str(doc["target"]),
            output=doc.get("output"),
            scores={str(k): float(v) for k, v in (doc.get("scores") or {}).items()},
            score=float(doc["score"]),
            passed=bool(doc["passed"]),
            request_id=str(doc["request_id"]),
            latency_ms=float(doc["latency_ms"]),
            cost_usd=None if cost is None else Decimal(str(cost)),
            cost_source=str(doc.get("cost_source") or "none"),
            error=doc.get("error"),
            model=doc.get("model"),
            tags=tuple(doc.get("tags") or ()),
            judgements=dict(doc.get("judgements") or {}),
        )


def request_id(run_id: str, target: str, item_id: str) -> str:
    """A request id in the gateway's alphabet that names the run, target and item."""
    digest = hashlib.sha256(f"{target}\x00{item_id}".encode()).hexdigest()[:16]
    return f"eval-{run_id}-{digest}"


class Pacer:
    """Spaces call starts evenly: at most `rpm` per minute (None: no limit). The gateway's
    own limits still apply to the key; this keeps a large run from tripping them."""

    def __init__(self, rpm: float | None) -> None:
        self._interval = 60.0 / rpm if rpm else 0.0
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self._interval:
            return
        async with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self._interval
        await asyncio.sleep(start - now)


def make_client(options: RunOptions) -> openai.AsyncOpenAI:
    """The SDK client every eval call goes through."""
    import openai  # the `eval` extra

    return openai.AsyncOpenAI(
        base_url=options.url.rstrip("/") + "/v1",
        api_key=options.api_key,
        max_retries=0,  # the gateway retries; a second layer would hide its behaviour
        timeout=options.timeout_s,
    )


async def run_targets(
    items: Sequence[EvalItem],
    targets: Sequence[str],
    options: RunOptions,
    *,
    progress: Callable[[int], None] | None = None,
    done: Mapping[tuple[str, str], ItemResult] | None = None,
    on_result: Callable[[ItemResult], None] | None = None,
) -> list[ItemResult]:
    """Every (target, item) result, in target then dataset order. Pairs in `done` (a resumed
    run's earlier results) are not called again; `on_result` sees each new result as it
    completes (to append it to the results file, so an interrupted run can resume)."""
    done = done or {}
    client = make_client(options)
    gate = asyncio.Semaphore(options.concurrency)
    pace = Pacer(options.rpm)

    async def one(target: str, item: EvalItem) -> ItemResult:
        earlier = done.get((target, item.id))
        if earlier is not None:
            result = earlier
        else:
            async with gate:
                await pace.wait()
                result = await _call(client, target, item, options)
            if on_result is not None:
                on_result(result)
        if progress is not None:
            progress(1)
        return result

    try:
        jobs = [one(t, item) for t in targets for item in items]
        return list(await asyncio.gather(*jobs))
    finally:
        await client.close()


async def _call(
    client: openai.AsyncOpenAI, target: str, item: EvalItem, options: RunOptions
) -> ItemResult:
    import openai

    rid = request_id(options.run_id, target, item.id)
    headers = {"x-sluice-request-id": rid, "x-sluice-feature": "sluice-eval"}
    if options.no_cache:
        headers["x-sluice-cache"] = "no-store"
    extra: dict[str, Any] = {}
    if item.response_format is not None:
        extra["response_format"] = item.response_format
    if item.tools is not None:
        extra["tools"] = item.tools
    started = time.perf_counter()
    base = ItemResult(item.id, target, None, {}, 0.0, False, rid, 0.0, tags=item.tags)
    try:
        raw = await client.chat.completions.with_raw_response.create(
            model=target,
            messages=item.chat_messages(),  # type: ignore[arg-type]
            extra_headers=headers,
            **extra,
        )
        completion = raw.parse()
    except openai.APIStatusError as exc:
        ms = (time.perf_counter() - started) * 1000
        return replace(base, latency_ms=ms, error=f"{exc.status_code}: {exc.message}"[:500])
    except openai.APIError as exc:
        ms = (time.perf_counter() - started) * 1000
        return replace(base, latency_ms=ms, error=f"{type(exc).__name__}: {exc}"[:500])
    ms = (time.perf_counter() - started) * 1000
    answer = _answer_text(completion)
    try:
        # In a thread: similarity scorers run a model, custom ones run anything.
        scores = await asyncio.to_thread(score_item, answer, item.expected_text(), item.scorers)
    except ScorerError as exc:
        return replace(base, output=answer[:MAX_OUTPUT_CHARS], latency_ms=ms, error=str(exc))
    thresholds = {name: spec.threshold for name, spec in named(item.scorers)}
    passes = {name: value >= thresholds[name] for name, value in scores.items()}
    rid = raw.headers.get("x-sluice-request-id", rid)
    judgements = await _judge_all(client, item, answer, rid, options, scores, passes)
    cost = _header_cost(raw.headers.get(COST_HEADER))
    return replace(
        base,
        output=answer[:MAX_OUTPUT_CHARS],
        scores=scores,
        score=sum(scores.values()) / len(scores),
        passed=all(passes.values()),
        judgements=judgements,
        request_id=rid,
        latency_ms=ms,
        cost_usd=cost,
        cost_source="header" if cost is not None else "none",
        model=completion.model,
    )


async def _judge_all(
    client: openai.AsyncOpenAI,
    item: EvalItem,
    answer: str,
    parent_id: str,
    options: RunOptions,
    scores: dict[str, float],
    passes: dict[str, bool],
) -> dict[str, dict[str, Any]]:
    """Run the item's judge scorers (in order); fill `scores` and `passes` in place. A judge
    that fails scores 0 and keeps its error."""
    out: dict[str, dict[str, Any]] = {}
    question = item.question_text()
    headers = {"x-sluice-feature": "sluice-eval-judge", "x-sluice-parent-request-id": parent_id}
    for name, spec in named(item.scorers):
        if spec.type != "judge":
            continue
        model = spec.model or options.judge_model
        messages = judge_messages(spec.rubric or "", question, answer, item.expected_text())
        try:
            if model is None:
                raise JudgeError("a judge scorer needs 'model' or --judge-model")
            verdict = await judge(client, model, messages, headers)
        except JudgeError as exc:
            scores[name], passes[name] = 0.0, False
            out[name] = {"error": str(exc)}
            continue
        scores[name], passes[name] = verdict.normalized, verdict.score >= spec.pass_at
        out[name] = verdict.to_json()
    return out


def _answer_text(completion: Any) -> str:
    """The answer's text; a tool-calling answer is its calls as JSON, so JSON scorers apply."""
    if not completion.choices:
        return ""
    message = completion.choices[0].message
    if message.content:
        return str(message.content)
    calls = message.tool_calls or []
    if calls:
        import orjson

        return orjson.dumps(
            [{"name": c.function.name, "arguments": c.function.arguments} for c in calls]
        ).decode()
    return ""


def _header_cost(value: str | None) -> Decimal | None:
    if not value:
        return None
    try:
        cost = Decimal(value)
    except InvalidOperation:
        return None
    return cost if cost.is_finite() and cost >= 0 else None
