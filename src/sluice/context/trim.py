"""Cutting a conversation to a token budget without breaking it.

A conversation is cut in *units*: an assistant message that calls tools together with the
tool messages answering it is one unit (a provider rejects a tool call without its result,
and a result without its call); every other message is a unit of its own. A *turn* starts
at a user message that is not only tool results and runs to the next one.
"""

from __future__ import annotations

from collections.abc import Callable

from sluice.types import Message, ToolCallPart, ToolResultPart


def units(messages: list[Message]) -> list[list[Message]]:
    """The messages grouped so that no group splits a tool call from its results."""
    groups: list[list[Message]] = []
    for msg in messages:
        if groups and _continues(groups[-1], msg):
            groups[-1].append(msg)
        else:
            groups.append([msg])
    return groups


def _continues(group: list[Message], msg: Message) -> bool:
    """A tool message (or a user message of tool results, Anthropic's shape) belongs to
    the open tool-calling group before it."""
    if not any(isinstance(p, ToolCallPart) for p in group[0].parts):
        return False
    return msg.role == "tool" or (msg.role == "user" and _only_tool_results(msg))


def _only_tool_results(msg: Message) -> bool:
    return bool(msg.parts) and all(isinstance(p, ToolResultPart) for p in msg.parts)


def turns(messages: list[Message]) -> list[list[Message]]:
    """The messages split at each user message that starts a new turn."""
    out: list[list[Message]] = []
    for msg in messages:
        starts = msg.role == "user" and not _only_tool_results(msg)
        if starts or not out:
            out.append([msg])
        else:
            out[-1].append(msg)
    return out


def truncate_oldest(
    messages: list[Message], fits: Callable[[list[Message]], bool]
) -> tuple[list[Message], list[Message]] | None:
    """Drop the oldest units until `fits(kept)`; returns (kept, dropped), or None when even
    the latest unit alone does not fit. The kept part never starts with an assistant or tool
    unit when an earlier user message could start it (providers want a user message first).
    """
    groups = units(messages)
    for start in range(len(groups)):
        kept_groups = groups[start:]
        if kept_groups[0][0].role != "user" and start < len(groups) - 1:
            continue  # would start mid-exchange: drop this unit too
        kept = [m for g in kept_groups for m in g]
        if fits(kept):
            dropped = [m for g in groups[:start] for m in g]
            return kept, dropped
    return None


def split_for_summary(
    history: list[Message], keep_turns: int
) -> tuple[list[Message], list[Message]]:
    """(older, recent): the last `keep_turns` turns stay verbatim, the rest is summarized."""
    all_turns = turns(history)
    if len(all_turns) <= keep_turns:
        return [], history
    cut = len(all_turns) - keep_turns
    older = [m for t in all_turns[:cut] for m in t]
    recent = [m for t in all_turns[cut:] for m in t]
    return older, recent
