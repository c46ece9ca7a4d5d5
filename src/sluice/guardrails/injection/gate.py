"""The classifier's cue gate (split out of `rules.py`; verdicts unchanged).

Text with no injection cue, no non-Latin script and under `GATE_ALWAYS_CHARS` skips the
embedding classifier: most ordinary prompts never pay for it, nor can it misfire on them.
"""

from __future__ import annotations

import re

import ahocorasick

from sluice.guardrails.injection.patterns import _F

# The classifier's gate: text with none of these cues (and no non-Latin script, and short) is
# not embedded. Ordinary prompts ("translate this", "how do I get a receipt?") rarely carry
# one, so most traffic skips the ~4 ms embedding, and the classifier cannot misfire on them.
_CUE = re.compile(
    r"ignor|disregard|forget|instruct|prompt|system|\brules?\b|guideline|polic|restrict|"
    r"filter|censor|pretend|act\s+as|you\s+are|you'?re|you\s+will|you\s+must|role|persona|"
    r"\bmode\b|jailbr|\bdan\b|assistant|\bai\b|a\.i\.|llm|language\s+model|chatbot|\bbot\b|"
    r"gpt|claude|reveal|secret|password|credential|api\s+key|confidential|hidden|overrid|"
    r"bypass|develop|admin|previous|above|earlier|prior|preceding|obey|comply|decod|encod|"
    r"base64|rot-?13|\bhex\b|send|forward|e-?mail|https?://|!\[|<[a-z|/!]|\{|\[|##|---|===|"
    r"from\s+now|henceforth|new\s+task|unrestrict|uncensor|unfilter|refus|no\s+limit|"
    r"without\s+(?:any\s+)?(?:limit|rule|restriction|filter)|in\s+character|simulat|"
    r"imagine|hypothetical|grand(?:ma|mother)|verbatim|word\s+for\s+word|repeat|initial|"
    r"original|configur|safety|ethic|moral|allowed|permission|authori|privileg|anything|"
    r"everything|scrap|obsolete|revok|void|cancel|context",
    _F,
)
GATE_ALWAYS_CHARS = 1_500
# `_CUE` split for speed on ASCII text (where lower-casing is exactly what IGNORECASE does):
# its literal branches go to one Aho-Corasick pass over the lower-cased text, the rest to a
# small regex. Equivalence with `_CUE` is tested on every labelled set.
_CUE_LITERALS = [
    "ignor",
    "disregard",
    "forget",
    "instruct",
    "prompt",
    "system",
    "guideline",
    "polic",
    "restrict",
    "filter",
    "censor",
    "pretend",
    "role",
    "persona",
    "jailbr",
    "assistant",
    "a.i.",
    "llm",
    "chatbot",
    "gpt",
    "claude",
    "reveal",
    "secret",
    "password",
    "credential",
    "confidential",
    "hidden",
    "overrid",
    "bypass",
    "develop",
    "admin",
    "previous",
    "above",
    "earlier",
    "prior",
    "preceding",
    "obey",
    "comply",
    "decod",
    "encod",
    "base64",
    "send",
    "forward",
    "email",
    "e-mail",
    "http://",
    "https://",
    "![",
    "{",
    "[",
    "##",
    "---",
    "===",
    "henceforth",
    "unrestrict",
    "uncensor",
    "unfilter",
    "refus",
    "simulat",
    "imagine",
    "hypothetical",
    "grandma",
    "grandmother",
    "verbatim",
    "repeat",
    "initial",
    "original",
    "configur",
    "safety",
    "ethic",
    "moral",
    "allowed",
    "permission",
    "authori",
    "privileg",
    "anything",
    "everything",
    "scrap",
    "obsolete",
    "revok",
    "void",
    "cancel",
    "context",
]
_CUE_REST = re.compile(
    r"\brules?\b|act\s+as|you\s+are|you'?re|you\s+will|you\s+must|\bmode\b|\bdan\b|\bai\b|"
    r"language\s+model|\bbot\b|api\s+key|rot-?13|\bhex\b|<[a-z|/!]|from\s+now|new\s+task|"
    r"no\s+limit|without\s+(?:any\s+)?(?:limit|rule|restriction|filter)|in\s+character|"
    r"word\s+for\s+word",
    re.IGNORECASE,
)
_NON_LATIN = re.compile("[\u2001-\U0010ffff]")  # what `ord(c) > 0x2000` asked, in C


def _cue_automaton() -> ahocorasick.Automaton:
    auto = ahocorasick.Automaton(ahocorasick.STORE_ANY)
    for literal in _CUE_LITERALS:
        auto.add_word(literal, literal)
    auto.make_automaton()
    return auto


_CUE_AUTO = _cue_automaton()


def _has_cue(text: str) -> bool:
    if not text.isascii():
        return _CUE.search(text) is not None
    lower = text.lower()
    for _ in _CUE_AUTO.iter(lower):
        return True
    return _CUE_REST.search(lower) is not None


def needs_classifier(text: str) -> bool:
    """Whether the classifier should look at `text` (see `_CUE`)."""
    if len(text) > GATE_ALWAYS_CHARS or _has_cue(text):
        return True
    return _NON_LATIN.search(text) is not None
