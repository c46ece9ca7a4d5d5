"""Neutral stream events → the Responses API's semantic SSE events.

Every event is `event: <type>` + `data: <json>` with a `sequence_number` counting from 0:
`response.created`, `response.in_progress`, then per output item `output_item.added`,
(text) `content_part.added`, `output_text.delta`… (with `output_text.annotation.added` for
each `file_citation` of a grounded answer, sluice.retrieval), `output_text.done`,
`content_part.done`,
(tool call) `function_call_arguments.delta`…, `.done`, and `output_item.done`; last
`response.completed` (or `response.incomplete` when the answer was cut). A failure after
the start is an `error` event followed by `response.failed`. There is no `[DONE]`.

The encoder builds the final `response` object as it goes; `on_done` receives it (the front
end stores it for `previous_response_id` and `GET /v1/responses/{id}`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson

from sluice.errors import SluiceError
from sluice.types import (
    CitationDelta,
    Finish,
    FinishReason,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    Usage,
    UsageUpdate,
)
from sluice.wire.responses.request import ResponsesParams
from sluice.wire.responses.response import (
    call_item,
    message_item,
    new_id,
    response_object,
    status_of,
    text_part,
)

# OpenAI's `ResponseError.code` values for the failures a gateway can have.
_FAILED_CODES = {429: "rate_limit_exceeded", 400: "invalid_prompt"}


class _Item:
    __slots__ = ("annotations", "base", "call_id", "done", "id", "index", "name", "text")

    def __init__(
        self, index: int, item_id: str, call_id: str = "", name: str = "", base: int = 0
    ) -> None:
        self.index, self.id, self.call_id, self.name = index, item_id, call_id, name
        self.text = ""  # the message text, or the call's argument JSON
        self.done = False
        self.base = base  # answer text streamed before this message item (citation offsets)
        self.annotations: list[dict[str, Any]] = []

    def part(self) -> dict[str, Any]:
        return {**text_part(self.text), "annotations": list(self.annotations)}

    def finished(self) -> dict[str, Any]:
        if self.call_id:
            return call_item(self.id, self.call_id, self.name, self.text)
        item = message_item(self.id, self.text)
        item["content"][0]["annotations"] = list(self.annotations)
        return item


class ResponsesEventEncoder:
    """Satisfies `sluice.frontends.base.StreamEncoder`."""

    def __init__(
        self,
        response_id: str,
        model: str,
        params: ResponsesParams,
        on_done: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self._id, self._model, self._params, self._on_done = response_id, model, params, on_done
        self._created = time.time()
        self._seq = 0
        self._items: list[_Item] = []
        self._text: _Item | None = None  # the message item text is being added to
        self._calls: dict[int, _Item] = {}  # neutral tool-call index → its item
        self._usage: Usage | None = None
        self._finish: FinishReason | None = None
        self._started = False
        self._streamed = 0  # characters of answer text so far, over all message items

    def _event(self, kind: str, **body: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self._seq, **body}
        self._seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"

    def _response(self, status: str, **extra: Any) -> dict[str, Any]:
        output = [item.finished() for item in self._items if item.done]
        return response_object(
            self._id,
            self._model,
            self._params,
            created_at=self._created,
            status=status,
            output=output,
            usage=self._usage if status != "in_progress" else None,
            **extra,
        )

    def _start(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        snapshot = self._response("in_progress")
        return self._event("response.created", response=snapshot) + self._event(
            "response.in_progress", response=snapshot
        )

    def encode(self, event: StreamEvent) -> bytes:
        out = self._start()
        if isinstance(event, TextDelta):
            return out + self._text_delta(event.text)
        if isinstance(event, ToolCallDelta):
            item = self._calls.get(event.index)
            if item is None or item.done:
                return out
            item.text += event.arguments
            return out + self._event(
                "response.function_call_arguments.delta",
                item_id=item.id,
                output_index=item.index,
                delta=event.arguments,
            )
        if isinstance(event, ToolCallStart):
            return out + self._close_text() + self._open_call(event)
        if isinstance(event, CitationDelta):
            return out + self._annotation(event.citation)
        if isinstance(event, Finish):
            self._finish = event.reason
        elif isinstance(event, UsageUpdate):
            self._usage = event.usage
        return out

    def _text_delta(self, text: str) -> bytes:
        out = b""
        item = self._text
        if item is None:
            item = self._text = _Item(len(self._items), new_id("msg"), base=self._streamed)
            self._items.append(item)
            out += self._event(
                "response.output_item.added",
                output_index=item.index,
                item=message_item(item.id, None, "in_progress"),
            )
            out += self._event(
                "response.content_part.added",
                item_id=item.id,
                output_index=item.index,
                content_index=0,
                part=text_part(""),
            )
        item.text += text
        self._streamed += len(text)
        return out + self._event(
            "response.output_text.delta",
            item_id=item.id,
            output_index=item.index,
            content_index=0,
            delta=text,
            logprobs=[],
        )

    def _annotation(self, cite: dict[str, Any]) -> bytes:
        """A `file_citation` of the text streamed so far (`index`: its position in the whole
        answer, made relative to this message item). Other citations (Anthropic's) have no
        Responses form here and are dropped, as in the non-streamed answer."""
        item = self._text
        if item is None or cite.get("type") != "file_citation":
            return b""
        note = {**cite, "index": max(0, int(cite.get("index", 0)) - item.base)}
        item.annotations.append(note)
        return self._event(
            "response.output_text.annotation.added",
            item_id=item.id,
            output_index=item.index,
            content_index=0,
            annotation_index=len(item.annotations) - 1,
            annotation=note,
        )

    def _close_text(self) -> bytes:
        item, self._text = self._text, None
        if item is None:
            return b""
        item.done = True
        where = {"item_id": item.id, "output_index": item.index, "content_index": 0}
        return (
            self._event("response.output_text.done", **where, text=item.text, logprobs=[])
            + self._event("response.content_part.done", **where, part=item.part())
            + self._event(
                "response.output_item.done", output_index=item.index, item=item.finished()
            )
        )

    def _open_call(self, event: ToolCallStart) -> bytes:
        item = _Item(len(self._items), new_id("fc"), event.id, event.name)
        self._items.append(item)
        self._calls[event.index] = item
        added = call_item(item.id, item.call_id, item.name, "", "in_progress")
        return self._event("response.output_item.added", output_index=item.index, item=added)

    def _close_calls(self) -> bytes:
        out = b""
        for item in self._items:
            if item.call_id and not item.done:
                item.done = True
                out += self._event(
                    "response.function_call_arguments.done",
                    item_id=item.id,
                    output_index=item.index,
                    arguments=item.text,
                )
                out += self._event(
                    "response.output_item.done", output_index=item.index, item=item.finished()
                )
        return out

    def close(self) -> bytes:
        """The open items' `done` events and `response.completed` / `response.incomplete`."""
        out = self._start() + self._close_text() + self._close_calls()
        status, incomplete = status_of(self._finish)
        final = self._response(status, incomplete=incomplete)
        if self._on_done is not None:
            self._on_done(final)
        kind = "response.completed" if status == "completed" else "response.incomplete"
        return out + self._event(kind, response=final)

    def error(self, err: SluiceError) -> bytes:
        """An `error` event, then `response.failed` with the partial output."""
        code = _FAILED_CODES.get(err.http_status, "server_error")
        failed = self._response("failed", error={"code": code, "message": err.message})
        return (
            self._start()
            + self._event("error", code=err.code, message=err.message, param=err.param)
            + self._event("response.failed", response=failed)
        )
