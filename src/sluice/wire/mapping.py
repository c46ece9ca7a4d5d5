"""What crosses between the two wire formats for content with no neutral meaning.

One place decides, for every part or tool of one API sent to an upstream of the other, one
of three things: send it unchanged (same wire), map it to the other API's form, or refuse
it with a 400 that names the part and the model (never a silent drop of what the model
would have read). The README's translation notes and the fidelity matrix test are checked
against these rules.
"""

from __future__ import annotations

from typing import Any

from sluice.errors import InvalidRequestError
from sluice.types import ChatRequest, DocumentPart, WireFormat

# Anthropic blocks that are the model's own earlier work (reasoning, server-tool calls and
# their results). An OpenAI model cannot read them and the answer text that used them stays
# in the history, so they are dropped for OpenAI upstreams, like `thinking`.
DROPPED_FOR_OPENAI = frozenset(
    {
        "redacted_thinking",
        "server_tool_use",
        "web_search_tool_result",
        "web_fetch_tool_result",
        "code_execution_tool_result",
        "bash_code_execution_tool_result",
        "text_editor_code_execution_tool_result",
        "mcp_tool_use",
        "mcp_tool_result",
        "container_upload",
    }
)
# Anthropic request blocks carried verbatim (no neutral meaning); any other unknown type is
# a 400 at the edge, as the API itself would answer.
ANTHROPIC_OPAQUE_BLOCKS = DROPPED_FOR_OPENAI | {"tool_search_tool_result", "tool_reference"}
_API = {"openai": "OpenAI", "anthropic": "Anthropic"}


def refusal(what: str, req: ChatRequest, model: str, target: WireFormat) -> InvalidRequestError:
    """The 400 for content the chosen upstream has no form for."""
    other = _API["anthropic" if target == "openai" else "openai"]
    return InvalidRequestError(
        f"{what} has no {_API[target]} form: model {req.model!r} (upstream {model!r}) cannot "
        f"take it; send it to a model of the {other} API or leave it out",
        param="messages",
    )


def document_text(part: DocumentPart) -> str | None:
    """A text document or a search result as plain text (both APIs read text); None for
    binary documents and references (URL, file id)."""
    if part.data is None or (part.kind != "search_result" and part.media_type != "text/plain"):
        return None
    head = [h for h in (part.title, part.url) if h]
    return "\n".join([*head, part.data]) if head else part.data


def pdf_data_url(part: DocumentPart) -> str | None:
    if part.data is None or part.media_type != "application/pdf":
        return None
    return f"data:application/pdf;base64,{part.data}"


def describe(part: DocumentPart) -> str:
    if part.kind == "search_result":
        return "a 'search_result' block"
    if part.file_id is not None:
        return f"a {part.kind} given by file id ({part.file_id!r})"
    if part.url is not None:
        return f"a {part.kind} given by URL"
    return f"a {part.kind} of type {part.media_type!r}"


# --- web search: the one server tool both APIs have -----------------------------------


def openai_web_search(tool: dict[str, Any]) -> dict[str, Any]:
    """Anthropic `web_search_*` tool → OpenAI `web_search_options`."""
    options: dict[str, Any] = {}
    location = tool.get("user_location")
    if isinstance(location, dict):
        approx = {k: v for k, v in location.items() if k != "type" and v is not None}
        options["user_location"] = {"type": "approximate", "approximate": approx}
    return options


def anthropic_web_search(options: Any) -> dict[str, Any]:
    """OpenAI `web_search_options` → the Anthropic web search server tool."""
    tool: dict[str, Any] = {"type": "web_search_20250305", "name": "web_search"}
    location = options.get("user_location") if isinstance(options, dict) else None
    approx = location.get("approximate") if isinstance(location, dict) else None
    if isinstance(approx, dict):
        tool["user_location"] = {"type": "approximate", **approx}
    return tool


def is_web_search(tool: dict[str, Any]) -> bool:
    return str(tool.get("type", "")).startswith("web_search_")


# --- identity of answers ----------------------------------------------------------------

_ID_PREFIXES = ("chatcmpl-", "msg_")


def answer_id(upstream_id: str, prefix: str) -> str:
    """The answer's id in the caller's API shape (`chatcmpl-…` / `msg_…`), keeping the
    upstream's id inside it so the two can be matched in logs."""
    if upstream_id.startswith(prefix):
        return upstream_id
    core = upstream_id
    for other in _ID_PREFIXES:
        core = core.removeprefix(other)
    return prefix + (core or "sluice")


def url_annotations(text_blocks: list[tuple[str, list[dict[str, Any]] | None]]) -> list[Any]:
    """Anthropic web-search citations as OpenAI `url_citation` annotations over the joined
    text (the only citation kind both APIs have)."""
    out: list[Any] = []
    offset = 0
    for text, citations in text_blocks:
        for cite in citations or ():
            if cite.get("type") == "web_search_result_location" and cite.get("url"):
                out.append(
                    {
                        "type": "url_citation",
                        "url_citation": {
                            "start_index": offset,
                            "end_index": offset + len(text),
                            "url": cite["url"],
                            "title": cite.get("title") or "",
                        },
                    }
                )
        offset += len(text)
    return out
