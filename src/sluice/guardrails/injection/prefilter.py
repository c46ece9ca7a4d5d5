"""Literal prefilters for the rule patterns (split out of `rules.py`; verdicts unchanged).

A pattern whose every match contains one of its lowercase stems is skipped on text with none
of them; one Aho-Corasick pass finds which stems occur.
"""

from __future__ import annotations

import re

import ahocorasick

from sluice.guardrails.injection.patterns import (
    _EXFIL,
    _EXTRACT,
    _IGNORE_EN,
    _IGNORE_INTL,
    _NEW_RULES,
    _PERSONA,
    _ROLE_TURN,
    _TEMPLATE_TOKENS,
)

# Literal prefilters: every match of the pattern contains one of these lowercase stems, so a
# text with none of them skips the pattern. CPython `re` spends microseconds per character
# on these alternations; one Aho-Corasick pass (`_present`) finds every stem at C speed.
# Equivalence is tested on every labelled set (tests/unit/test_injection_rules.py).
_ANCHORS: dict[re.Pattern[str], tuple[str, ...]] = {
    _IGNORE_EN: (
        "ignor",
        "disregard",
        "forget",
        "skip",
        "overr",
        "bypass",
        "abandon",
        "discard",
        "drop",
        "throw",
        "aside",
        "attention",
        "follow",
        "obey",
        "cancel",
        "void",
        "nullif",
        "delet",
        "erase",
        "clear",
    ),
    _IGNORE_INTL: (
        "ignor",
        "oubli",
        "tiens",
        "vergiss",
        "vergessen",
        "missacht",
        "olvid",
        "omite",
        "descarta",
        "dimentic",
        "trascur",
        "esque",
        "desconsider",
        "negeer",
        "vergeet",
        "игнор",
        "забуд",
        "обраща",
        "忽略",
        "无视",
        "忽视",
        "不要理会",
        "忘记",
        "忘掉",
        "指示",
        "命令",
        "ルール",
        "restric",
        "einschränk",
        "restriz",
        "restriç",
        "filt",
        "regeln",
        "règles",
        "reglas",
        "regole",
        "desarrollador",
        "entwickler",
        "développeur",
        "sviluppatore",
        "anweisungen",
        "instrucciones",
        "instructions",
        "istruzioni",
    ),
    _NEW_RULES: (
        "consider",
        "treat",
        "matter",
        "apply",
        "count",
        "revok",
        "cancel",
        "lifted",
        "removed",
        "delet",
        "disabled",
        "obsolete",
        "void",
        "irrelevant",
        "invalid",
        "override",
        "update",
        "safety",
        "content",
        "changed",
        "replaced",
        "supersed",
        "allow",
        "permit",
        "accept",
        "instruction",
        "directive",
        "suspended",
        "longer",
        "restriction",
        "rules",
        "filter",
        "limit",
        "censorship",
        "guideline",
        "ethic",
        "task",
        "prompt",
    ),
    # "never" is left out: every branch with it also needs "refus", "rules", "restriction",
    # "guideline" or "character". "dan" (inside "guidance", "abundant") is checked as a word.
    _PERSONA: (
        "anything",
        "mode",
        "filter",
        "rules",
        "restriction",
        "limit",
        "guardrail",
        "guideline",
        "safety",
        "more",
        "unrestrict",
        "uncensor",
        "unfilter",
        "jailbr",
        "amoral",
        "unaligned",
        "unethical",
        "unbound",
        "limitless",
        "ethic",
        "polic",
        "refus",
        "moral",
        "character",
        "twin",
        "escaped",
    ),
    _TEMPLATE_TOKENS: ("<|", "inst]", "sys>>", "_of_turn>"),
    _ROLE_TURN: ("system", "developer", "admin", "</", "end", "instruction", '"role"'),
    _EXFIL: (
        "![",
        "send",
        "email",
        "e-mail",
        "post",
        "upload",
        "forward",
        "exfiltrat",
        "transmit",
        "append",
        "leak",
        "http",
    ),
    _EXTRACT: (
        "system",
        "initial",
        "prompt",
        "developer",
        "hidden",
        "secret",
        "confidential",
        "instruction",
        "rule",
        "directive",
        "tags",
        "given",
        "setup",
        "repeat",
        "starting",
        "before",
        "above",
        "系统提示",
        "系統提示",
        "システムプロンプト",
        "промпт",
        "système",
        "sistema",
    ),
}


def _automaton() -> ahocorasick.Automaton:
    """One Aho-Corasick automaton over every anchor: a single C pass finds which are present
    (measured: checking ~200 anchors with `in` one by one cost ~1-2 ms on a 2 KB prompt)."""
    auto = ahocorasick.Automaton(ahocorasick.STORE_ANY)
    for anchor in {a for group in _ANCHORS.values() for a in group} | set(_INDIRECT_STEMS):
        auto.add_word(anchor, anchor)
    auto.make_automaton()
    return auto


def _present(lower: str) -> set[str]:
    """The anchors that occur in `lower` (already lower-cased)."""
    return {found for _, found in _AUTO.iter(lower)} if lower else set()


# `_INDIRECT` names the assistant in every branch: one of these stems, or "ai"/"ais" as a word
# ("ai" is inside too many words - "said", "again" - to be a substring anchor).
_INDIRECT_STEMS = (
    "a.i.",
    "assistant",
    "bot",
    "llm",
    "language",
    "gpt",
    "claude",
    "agent",
    "summarizer",
    "summariser",
    "note-taker",
)


def _is_word_char(c: str) -> bool:
    return c.isalnum() or c == "_"  # what `re` calls \w


def _has_word(lower: str, word: str, plural: bool = False) -> bool:
    """`re.search(rf"\b{word}s?\b", lower)` without the per-position cost of a leading \b:
    a C substring search, then the boundaries checked by hand."""
    n = len(word)
    i = lower.find(word)
    while i >= 0:
        if i == 0 or not _is_word_char(lower[i - 1]):
            after = lower[i + n : i + n + 1]
            if not after or not _is_word_char(after):
                return True
            if plural and after == "s":
                after = lower[i + n + 1 : i + n + 2]
                if not after or not _is_word_char(after):
                    return True
        i = lower.find(word, i + 1)
    return False


def _indirect_possible(lower: str, present: set[str]) -> bool:
    return not present.isdisjoint(_INDIRECT_STEMS) or _has_word(lower, "ai", plural=True)


_AUTO = _automaton()
