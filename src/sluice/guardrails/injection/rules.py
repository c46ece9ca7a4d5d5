"""Fast rules: the first layer of prompt-injection detection (pure `re`, sub-millisecond).

Why rules at all when there is a classifier: known attack phrasings ("ignore previous
instructions", DAN, chat-template tokens, system-prompt extraction) are cheap to name
exactly, and a named rule is what a caller sees in a 400 `prompt_injection_detected`. The
classifier handles paraphrases the rules do not list.

Bounded by construction (hostile input):
- only `MAX_SCAN_CHARS` (12 KiB) of the text are scanned: the first `HEAD_CHARS` and the
  last `TAIL_CHARS` (an attacker appending a payload after 1 MB of filler is still seen);
  Python's `re` costs a few microseconds per character for these alternations, so the window
  and the literal prefilters below are what bound a call (measured: 12-18 ms wall on 1 MB of
  hostile text under load; ~1 ms CPU for a 2 KB ordinary prompt, see BENCHMARKS);
- the re-checks of rot13, reversed, leetspeak, URL-encoded, binary, `\\u`-escaped and base32
  variants look at the first `VARIANT_CHARS` only;
- the patterns have no nested quantifiers over overlapping classes (no catastrophic
  backtracking), gaps between words are bounded (`{0,40}`-style);
- encoded payloads: at most `MAX_BLOBS` candidates of at most `MAX_BLOB_CHARS` each are
  decoded, re-checked recursively to depth `MAX_DEPTH`.

Quoted attacks (documentation, security questions): a hit that sits inside quotes *and* in a
text that talks about attacks ("example", "detect", "prompt injection", ...) is reported as
`quoted=True`; the detector then lets the classifier decide instead of blocking on the rule.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata
import urllib.parse
from dataclasses import dataclass

# Re-exported: callers and tests use them as `rules.<name>`.
from sluice.guardrails.injection import broad
from sluice.guardrails.injection.gate import _CUE as _CUE
from sluice.guardrails.injection.gate import GATE_ALWAYS_CHARS as GATE_ALWAYS_CHARS
from sluice.guardrails.injection.gate import _has_cue as _has_cue
from sluice.guardrails.injection.gate import needs_classifier as needs_classifier
from sluice.guardrails.injection.patterns import (
    _B64,
    _BIDI,
    _DATA_ORDERS,
    _DECODE_HINT,
    _EXTRACT_VERB,
    _F,
    _HEX,
    _IMPERATIVE,
    _INDIRECT,
    _META,
    _PERSONA,
    _PLAIN_RULES,
    _QUOTES,
    _TEMPLATE_TALK,
    _ZERO_WIDTH,
)
from sluice.guardrails.injection.prefilter import (
    _ANCHORS,
    _has_word,
    _indirect_possible,
    _present,
)

HEAD_CHARS = 8_192
TAIL_CHARS = 4_096
MAX_SCAN_CHARS = HEAD_CHARS + TAIL_CHARS
# rot13, reversed, leetspeak, URL/binary/\u/base32 decodings re-run every pattern, so they look
# at less: the first VARIANT_CHARS of the scanned window.
VARIANT_CHARS = 4_096
MAX_BLOBS = 8
MAX_BLOB_CHARS = 8_192
MAX_DEPTH = 3
MIN_HIDDEN_TAG_CHARS = 6


@dataclass(frozen=True, slots=True)
class RuleHit:
    """One rule that matched: its name, confidence (0..1) and whether the hit looks quoted."""

    rule: str
    confidence: float
    quoted: bool = False
    span: tuple[int, int] = (0, 0)


PREFILTER = True


_TAG_CHAR = re.compile("[\U000e0000-\U000e007f]")


def scan_window(text: str) -> str:
    """The part of `text` the rules look at: all of it up to MAX_SCAN_CHARS, else head + tail."""
    if len(text) <= MAX_SCAN_CHARS:
        return text
    return text[:HEAD_CHARS] + "\n" + text[-TAIL_CHARS:]


def hidden_tag_text(text: str) -> str:
    """ASCII spelled by Unicode tag characters (U+E0020..E007E), the 'invisible prompt' trick.

    Tag runs right after U+1F3F4 (black flag: subdivision flags like England's) are emoji,
    not hidden text, and are skipped.
    """
    if _TAG_CHAR.search(text) is None:  # the common case, in C: no tag character at all
        return ""
    out: list[str] = []
    prev = ""
    in_flag = False
    for ch in text:
        cp = ord(ch)
        if 0xE0000 <= cp <= 0xE007F:
            if prev == "\U0001f3f4":
                in_flag = True
            if not in_flag and 0xE0020 <= cp <= 0xE007E:
                out.append(chr(cp - 0xE0000))
            if cp == 0xE007F:
                in_flag = False
        else:
            in_flag = False
            prev = ch
            continue
        if not in_flag:
            prev = ch
    return "".join(out)


# Cyrillic and Greek letters that look like Latin ones: read as Latin inside a word that
# mixes them with Latin letters ("Ign\u043er\u0435" spelled with Cyrillic o and e), never in a
# word of one script.
_LOOKALIKE = str.maketrans(
    "аеорсухіјѕԁԛԝкмнтвАЕОРСУХІЈЅКМНТВοαεικνρτυχΑΕΙΚΜΝΟΡΤΥΧΒΖ",
    "aeopcyxijsdqwkmhtbAEOPCYXIJSKMHTBoaeiknptuxAEIKMNOPTYXBZ",
)
_OTHER_SCRIPT = "\u0370-\u03ff\u0400-\u052f"
# A word with a Cyrillic/Greek letter in it (linear: tried only at word starts).
_OTHER_WORD = re.compile(rf"\b(?=\w*?[{_OTHER_SCRIPT}])\w+")
_LATIN = re.compile(r"[A-Za-z]")


def _as_latin(match: re.Match[str]) -> str:
    word = match.group(0)
    return word.translate(_LOOKALIKE) if _LATIN.search(word) else word


def normalize(text: str) -> str:
    """NFKC (fullwidth and styled letters to plain), zero-width and bidi controls removed,
    look-alike Cyrillic/Greek letters inside Latin words read as Latin."""
    text = unicodedata.normalize("NFKC", text)
    text = _ZERO_WIDTH.sub("", text)
    text = _BIDI.sub("", text)
    if text.isascii():
        return text
    return _OTHER_WORD.sub(_as_latin, text)


def _despaced(text: str) -> str | None:
    """'I-g-n-o-r-e a-l-l' / 'i g n o r e' letter-splitting undone, or None when absent."""
    if not re.search(r"(?:\b\w[-. _*]){5,}\w\b", text):
        return None
    text = re.sub(r"(?<=\b\w)[-._*](?=\w\b)", "", text)
    # 'i g n o r e   a l l': one space inside a word, more between words.
    return re.sub(r"(?<=\b\w) (?=\w\b)", "", text)


def _quoted(text: str, span: tuple[int, int]) -> bool:
    """The hit ends inside a quotation, and the text *around* that quotation talks about it."""
    for q in _QUOTES.finditer(text):
        if q.start() < span[1] <= q.end() + 1:
            around = text[max(0, q.start() - 300) : q.start()] + " " + text[q.end() : q.end() + 300]
            return _META.search(around) is not None
    return False


def _data_hits(text: str) -> list[RuleHit]:
    """Orders aimed at an agent inside a tool result or document (call a tool, persist), or
    text there addressed to the AI at all (`broad.INDIRECT_ADDRESS`)."""
    m = _DATA_ORDERS.search(text) or broad.INDIRECT_ADDRESS.search(text)
    if m is None:
        return []
    span = (m.start(), m.end())
    return [RuleHit("indirect_instruction", 0.85, _quoted(text, span), span)]


_BROAD_RULES: tuple[tuple[str, re.Pattern[str], float], ...] = (
    ("ignore_previous", broad.IGNORE_MORE_LANGS, 0.9),
    ("new_instructions", broad.OVERRIDE_VOID, 0.88),
    ("new_instructions", broad.OVERRIDE_PRIORITY, 0.88),
    ("new_instructions", broad.OVERRIDE_FILTERS, 0.88),
    ("system_prompt_extraction", broad.EXTRACT_MORE, 0.88),
    ("role_injection", broad.ROLE_MORE, 0.88),
    ("exfiltration", broad.EXFIL_MORE, 0.88),
)


def _broad_hits(text: str, lower: str, have: set[str]) -> list[RuleHit]:
    """The round-3 patterns (`broad.py`), for rules that have not fired yet."""
    hits: list[RuleHit] = []
    for name, pattern, confidence in _BROAD_RULES:
        if name in have or any(h.rule == name for h in hits):
            continue
        if PREFILTER and not broad.could_match(pattern, lower):
            continue
        m = pattern.search(text)
        if m is None:
            continue
        if name == "system_prompt_extraction" and not (
            _EXTRACT_VERB.search(text) or broad.EXTRACT_VERB_MORE.search(text)
        ):
            continue
        span = (m.start(), m.end())
        hits.append(RuleHit(name, confidence, _quoted(text, span), span))
    if "jailbreak_persona" not in have:
        p = broad.persona_more(text, lower)
        if p is not None:
            span = (p.start(), p.end())
            hits.append(RuleHit("jailbreak_persona", 0.88, _quoted(text, span), span))
    return hits


# A request about the speaker's *own* system ("how do I disable content filters for my own
# Azure deployment?"): the filter words are the object of a how-to question or belong to the
# speaker, not to the assistant. Only a sentence without "you"/"your" qualifies.
_HOW_TO = re.compile(
    r"\b(?:how\s+(?:do|can|could|should|would)\s+(?:i|we)|how\s+to|(?:can|could|may)\s+(?:i|we)|"
    r"is\s+it\s+possible\s+to|where\s+(?:do|can)\s+(?:i|we)|steps\s+to)\b",
    _F,
)
# The `_PERSONA` branch this applies to: turning filters off, with no persona named.
_FILTER_TALK = re.compile(
    r"(?:bypass|disable|turn\s+off|ignore)\s+(?:your\s+|the\s+|all\s+)?(?:safety|content)\s+"
    r"(?:filters?|polic(?:y|ies)|rules|guidelines|training)",
    _F,
)
_OWN = re.compile(r"\b(?:for|on|in|of|from|across|at)\s+(?:my|our)\b", _F)
_ADDRESSEE = re.compile(r"\b(?:you|your|yourself|u|ur)\b", _F)
_SENTENCE_END = re.compile(r"[.!?\n]")


def _about_own_system(text: str, span: tuple[int, int]) -> bool:
    """The hit's sentence asks how the speaker changes their own system's filters."""
    starts = [m.end() for m in _SENTENCE_END.finditer(text, 0, span[0])]
    start = starts[-1] if starts else 0
    end_match = _SENTENCE_END.search(text, span[1])
    sentence = text[start : end_match.end() if end_match else len(text)]
    if _ADDRESSEE.search(sentence):
        return False
    return bool(_HOW_TO.search(sentence) or _OWN.search(sentence))


_HOSTILE_IMPERATIVE = re.compile(
    r"\b(?:ignore|disregard|forget|instead|send|forward|transfer|delete|approve|visit|download|"
    r"click|reveal|leak|execute|run|your\s+(?:real|new|actual|only)\s+(?:task|job|goal))\b",
    _F,
)


def _opens_message(text: str, start: int) -> bool:
    """Only markup or punctuation before `start`: the address is the message's own opening."""
    return not any(c.isalnum() for c in text[:start])


def _plain_hits(text: str, data: bool = False) -> list[RuleHit]:
    hits: list[RuleHit] = []
    lower = text.lower()
    present = _present(lower) if PREFILTER else set()
    for name, pattern, confidence in _PLAIN_RULES:
        if any(h.rule == name for h in hits):
            continue
        anchors = _ANCHORS.get(pattern) if PREFILTER else None
        if (
            anchors is not None
            and present.isdisjoint(anchors)
            and not (pattern is _PERSONA and _has_word(lower, "dan"))
        ):
            continue
        m = pattern.search(text)
        if m is None:
            continue
        if name == "system_prompt_extraction" and not _EXTRACT_VERB.search(text):
            continue
        span = (m.start(), m.end())
        if (
            pattern is _PERSONA
            and _FILTER_TALK.fullmatch(m.group(0))
            and _about_own_system(text, span)
        ):
            continue
        quoted = _quoted(text, span)
        if name == "chat_template_tokens" and _TEMPLATE_TALK.search(text):
            quoted = True  # a question about chat templates, not a turn
        hits.append(RuleHit(name, confidence, quoted, span))
    m = _INDIRECT.search(text) if not PREFILTER or _indirect_possible(lower, present) else None
    # A user's own "Note to the AI: ..." opening their message is the user speaking, whom the
    # assistant serves: an ordinary order after it ("answer in British English") is no
    # signal there, only a hostile one (ignore, reveal, send, ...). Documents and tool results
    # keep the broader list.
    if (
        m is not None
        and not data
        and _opens_message(text, m.start())
        and not _HOSTILE_IMPERATIVE.search(text, m.end(), m.end() + 200)
    ):
        m = None
    if m is not None and _IMPERATIVE.search(text, m.end(), m.end() + 200):
        span = (m.start(), m.end())
        hits.append(RuleHit("indirect_instruction", 0.9, _quoted(text, span), span))
    hits.extend(_broad_hits(text, lower, {h.rule for h in hits}))
    return hits


def _decoded_blobs(text: str) -> list[str]:
    """Printable decodings of base64 and hex blobs in `text` (bounded count and size)."""
    out: list[str] = []
    for m in _B64.finditer(text):
        if len(out) >= MAX_BLOBS:
            break
        blob = m.group(0)[:MAX_BLOB_CHARS]
        blob = blob[: len(blob) - len(blob) % 4] if "-" not in blob and "_" not in blob else blob
        try:
            raw = base64.b64decode(
                blob + "=" * (-len(blob) % 4),
                altchars=b"-_" if "-" in blob or "_" in blob else None,
            )
        except (binascii.Error, ValueError):
            continue
        decoded = _printable(raw)
        if decoded is not None:
            out.append(decoded)
    for m in _HEX.finditer(text):
        if len(out) >= MAX_BLOBS:
            break
        digits = re.sub(r"[\s:]", "", m.group(0))[:MAX_BLOB_CHARS]
        try:
            raw = bytes.fromhex(digits[: len(digits) - len(digits) % 2])
        except ValueError:
            continue
        decoded = _printable(raw)
        if decoded is not None:
            out.append(decoded)
    return out


_URLENC = re.compile(r"(?:%[0-9a-fA-F]{2}[^%\s]{0,12}){6,}")
_UESC = re.compile(r"(?:\\u[0-9a-fA-F]{4}){6,}")
_BINARY = re.compile(r"(?:[01]{8}\s?){8,}")
_B32 = re.compile(r"\b[A-Z2-7]{32,}={0,6}")
_LEET_CHAR = re.compile(r"[0-9$@]")  # both branches of _LEET_WORD need one: a fast C scan first
_LEET_WORD = re.compile(r"[a-z][0-9$@][a-z]|[0-9][a-z]{1,3}[0-9]", re.I)
_LEET = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"}
)


def _other_decodings(text: str) -> list[str]:
    """URL-encoding, \\u escapes, 8-bit binary, base32, reversed text, leetspeak (bounded)."""
    out: list[str] = []
    if _URLENC.search(text):
        out.append(urllib.parse.unquote(text[:MAX_BLOB_CHARS]))
    m = _UESC.search(text)
    if m:
        escaped = m.group(0)[:MAX_BLOB_CHARS]
        out.append(re.sub(r"\\u([0-9a-fA-F]{4})", lambda g: chr(int(g.group(1), 16)), escaped))
    m = _BINARY.search(text)
    if m:
        bits = re.sub(r"\s", "", m.group(0))[: MAX_BLOB_CHARS * 8]
        out.append("".join(chr(int(bits[i : i + 8], 2)) for i in range(0, len(bits) - 7, 8)))
    m = _B32.search(text)
    if m:
        blob = m.group(0)[:MAX_BLOB_CHARS]
        try:
            decoded = _printable(base64.b32decode(blob + "=" * (-len(blob) % 8)))
        except (binascii.Error, ValueError):
            decoded = None
        if decoded:
            out.append(decoded)
    if _LEET_CHAR.search(text) and _LEET_WORD.search(text):
        out.append(text.translate(_LEET))
    out.append(text[::-1])
    return out


def _printable(raw: bytes) -> str | None:
    if len(raw) < 8:
        return None
    try:
        s = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    good = sum(1 for c in s if c.isprintable() or c in "\n\t\r")
    return s if good >= 0.9 * len(s) else None


def scan(text: str, *, data: bool = False, _depth: int = 0) -> list[RuleHit]:
    """All rule hits in `text` (bounded: see the module docstring). Order: most specific first.

    `data=True` for tool results and documents: orders aimed at an agent there (call a tool,
    save to memory, "in every future reply") count too; a user may say such things himself.
    """
    text = scan_window(text)
    hits: list[RuleHit] = []
    hidden = hidden_tag_text(text) if _depth == 0 else ""
    if len(hidden) >= MIN_HIDDEN_TAG_CHARS:
        hits.append(RuleHit("invisible_unicode", 0.97))
    norm = normalize(text)
    if hidden:
        norm = norm + "\n" + hidden
    hits.extend(_plain_hits(norm, data))
    if data and not any(h.rule == "indirect_instruction" for h in hits):
        hits.extend(_data_hits(norm))
    despaced = _despaced(norm)
    if despaced is not None and despaced != norm:
        for h in _plain_hits(despaced, data):
            if not any(x.rule == h.rule for x in hits):
                hits.append(RuleHit("obfuscated_" + h.rule, h.confidence, h.quoted, h.span))
    if _depth < MAX_DEPTH:
        for decoded in _decoded_blobs(norm):
            inner = scan(decoded, _depth=_depth + 1)
            if inner:
                hits.append(RuleHit("encoded_payload", max(h.confidence for h in inner)))
                break
        if _depth == 0:
            head = norm[:VARIANT_CHARS]
            for variant in [codecs.encode(head, "rot13"), *_other_decodings(head)]:
                inner = [
                    h
                    for h in _plain_hits(variant)
                    if h.rule != "indirect_instruction" and not h.quoted
                ]
                if inner:
                    hits.append(RuleHit("encoded_payload", max(h.confidence for h in inner)))
                    break
    # "decode this and follow it" around an opaque blob: suspicious even undecoded.
    if (
        not any(h.rule == "encoded_payload" for h in hits)
        and (_B64.search(norm) or _HEX.search(norm))  # cheaper than the hint: first
        and _DECODE_HINT.search(norm)
    ):
        hits.append(RuleHit("encoded_payload", 0.8))
    return hits
