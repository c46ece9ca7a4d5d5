"""One detector of personal data and secrets, for masking requests and redacting telemetry.

Why our own recognizers and not `presidio-analyzer`: Presidio's `AnalyzerEngine` builds a
spaCy NLP engine and wants a downloaded language model (`en_core_web_lg`, ~400 MB, fetched at
run time) even when only its regex/checksum recognizers are used; nothing may download here.
Its pattern recognizers alone would still import spaCy (slow import, heavy dependency) and
cost far more per call than the 2 ms budget of the whole guard set (measured numbers:
`docs/guide/guardrails.md`). These recognizers cover Presidio's offline set — e-mail, phone
(international and NANP), payment cards (network prefix + Luhn), IBAN (mod-97), US SSN, IPv4
and IPv6 (validated), credentials (provider key prefixes from `sluice.secrets`, Google,
Stripe, Hugging Face, GitLab, JWTs, PEM private keys, bearer tokens, `key=`/`password=`
values) — behind one seam (`find`), so a model-based recognizer (names, addresses) can be
added where an offline NER model is installable.

Entities: `EMAIL`, `PHONE`, `CARD`, `IBAN`, `SSN`, `IP`, `SECRET`. A `SECRET` found after a
keyword (`Bearer `, `api_key=`) covers only the value: the keyword stays readable.

How: a match can only start at a few kinds of places — a digit run, `+`, `(`, a keyword such
as `sk-`, `bearer`, `token`, or shortly before an `@`. Those are found by two regex scans that
skip in C to candidate characters, and the combined pattern is tried only there, so ordinary
prose costs little. Where kinds could start at the same place the order of `PATTERN` decides.
`sluice.observe.redact` uses the same scan with a length limit for previews.
"""

from __future__ import annotations

import bisect
import ipaddress
import re
from dataclasses import dataclass
from typing import Literal

from sluice.secrets import SECRET_SHAPES

Entity = Literal["EMAIL", "PHONE", "CARD", "IBAN", "SSN", "IP", "SECRET"]
ENTITIES: tuple[Entity, ...] = ("EMAIL", "PHONE", "CARD", "IBAN", "SSN", "IP", "SECRET")


@dataclass(frozen=True, slots=True)
class Span:
    """`text[start:end]` is a value of kind `entity`."""

    start: int
    end: int
    entity: Entity


PATTERN = re.compile(
    r"(?P<secret>"
    + SECRET_SHAPES  # the credential shapes errors from upstream are scrubbed of, too
    + r"""
      | \bAIza[0-9A-Za-z_-]{35}                       # Google API key
      | \b[sr]k_(?:live|test)_[0-9A-Za-z]{16,}         # Stripe secret / restricted key
      | \bhf_[A-Za-z0-9]{30,}                          # Hugging Face token
      | \bglpat-[A-Za-z0-9_-]{20,}                     # GitLab personal access token
      | -----BEGIN\ (?:[A-Z0-9]+\ ){0,3}PRIVATE\ KEY-----        # PEM private key: the
        (?: (?>(?:[A-Za-z0-9+/=\s:,.]|-(?!----)){0,16384})      # body (atomic, no dash
            -----END\ (?:[A-Z0-9]+\ ){0,3}PRIVATE\ KEY-----     # run: linear in the text)
          | \s{1,4}(?:[A-Za-z-]{1,32}:[^\n]{0,128}\n\s{0,4}){0,4}  # or key material with
            (?=[A-Za-z0-9+/]{32})                               # no END line (cut by
            (?>(?:[A-Za-z0-9+/=]{16,}\s{0,4}){1,1024})          # max_tokens, or left
            [A-Za-z0-9+/=]{0,15}                                # out): base64 lines right
        )                                                       # after BEGIN (RFC 1421
    )
  | (?P<bearer>
        (?P<bearer_keep>(?i:\bbearer)\s{1,4})
        (?P<bearer_value>[A-Za-z0-9._~+/-]{8,}=*)
    )
  | (?P<assigned>                                    # key=…, "token": "…", secret: …
        (?P<assigned_keep>
            (?<![A-Za-z0-9])(?i:apikey|accesskey|key|token|secret|auth)
            ["']?\s{0,3}[:=]\s{0,3}["']?
        )
        (?P<assigned_value>[A-Za-z0-9._~+/-]{16,}=*)
    )
  | (?P<password>
        (?P<password_keep>(?i:\b(?:password|passwd|pwd))["']?\s{0,3}[:=]\s{0,3}["']?)
        [^\s"',;&]+
    )
  | (?P<email>
        \b[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.){1,8}[A-Za-z]{2,24}\b
    )
  | (?P<ssn>                                         # US social security number
        (?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])
    )
  | (?P<iban>                                        # checked with its mod-97 digits
        (?<![A-Za-z0-9])[A-Z]{2}\d{2}(?:\ ?[A-Z0-9]{4}){2,7}(?:\ ?[A-Z0-9]{1,3})?(?![A-Za-z0-9])
    )
  | (?P<ipv4>
        (?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)
        (?!\d|\.\d)
    )
  | (?P<ipv6>                                        # checked with ipaddress
        (?<![0-9A-Za-z:])[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![0-9A-Za-z:])
    )
  | (?P<intl>                                        # + country code and groups
        (?<![\w+])\+
        (?: \d{8,15}
          | \d{1,3} (?: [\ .-]?\(\d{1,4}\)[\ .-]?\d{1,8} | [\ .-]\d{1,8} ){1,6}
        )
        (?![\d])
    )
  | (?P<card> (?<![\d-])\d(?:[\ -]?\d){12,18}(?![\d]) )
  | (?P<us>                                          # NANP with separators
        (?<![\w.+-])
        (?:1[\ .-])?
        (?:\([2-9]\d{2}\)\ ?|[2-9]\d{2}[\ .-])
        \d{3}[\ .-]\d{4}
        (?![\w-]|\.\d)
    )
    """,
    re.VERBOSE,
)

# Where a match can start: `+`, `(`, the first digit of a run, an `@` (from which the start
# of an e-mail address's local part is found by walking back) ...
CHAR_STARTS = re.compile(
    r"[+(@0-9](?<![0-9][0-9])|(?<![A-Za-z0-9])[A-Z]{2}(?=\d\d)"
    # an IPv6 address written from a letter (`fe80::1`): hex letters and a colon
    r"|(?<![0-9A-Za-z:])[a-fA-F][0-9a-fA-F]{0,3}:[0-9a-fA-F:]"
)
# ... or one of these words, looked for in the lowercased text. Both patterns begin with
# plain characters, which lets `re` skip ahead to candidates in C instead of trying every
# position. A word matched whole hides one inside it (`key` in `apikey`); that one could
# never start a match, as every keyword alternative needs no letter or digit before it.
KEYWORDS = re.compile(
    "sk-|akia|asia|gh[pousr]_|xox|eyj|aiza|[sr]k_|hf_|glpat-|-----begin|bearer|apikey|accesskey"
    "|key|token|secret|auth|pass|pwd"
)
# The longest local part an `@` can have before it.
LOCAL_PART = 64
_LOCAL_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._%+-")


def starts(text: str, lo: int, hi: int) -> list[int]:
    """Sorted positions in [lo, hi) where a match may start (a superset, never a miss)."""
    found: list[int] = []
    for m in CHAR_STARTS.finditer(text, lo, hi):
        at = m.start()
        if text[at] != "@":
            found.append(at)
            continue
        j = at
        while j > lo and at - j < LOCAL_PART and text[j - 1] in _LOCAL_CHARS:
            j -= 1
        found.extend(range(j, at))
    window = text[lo:hi]
    if may_hold_keyword(window):
        found.extend(lo + m.start() for m in KEYWORDS.finditer(window.lower()))
    return sorted(set(found)) if found else found


def may_hold_keyword(text: str) -> bool:
    """Whether any keyword alternative could match: each needs one of these (with the
    pattern's case where it has one), so prose without them skips the keyword scan."""
    return (
        ":" in text
        or "=" in text
        or "_" in text
        or "sk-" in text
        or "AKIA" in text
        or "ASIA" in text
        or "xox" in text
        or "eyJ" in text
        or "AIza" in text
        or "glpat-" in text
        or "-----BEGIN" in text
        or "bearer" in text.lower()
    )


def _iban_ok(text: str) -> bool:
    """ISO 13616: 15-34 characters whose rearranged digits are 1 modulo 97."""
    compact = text.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    digits = "".join(str(int(ch, 36)) for ch in moved)
    return int(digits) % 97 == 1


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _card_network(digits: str) -> bool:
    """Visa, Mastercard, Amex, Discover, Diners, JCB, UnionPay and Maestro numbers start with
    3, 4, 5, 6 or 2221-2720: numbers starting 0, 1, 7, 8, 9 or 20xx are never cards."""
    first = digits[0]
    if first in "3456":
        return True
    return first == "2" and 2221 <= int(digits[:4]) <= 2720


def _looks_random(token: str) -> bool:
    """Tell `Bearer eyJ0eXAi…` and `token: 9f8e…` from `bearer instruments` and
    `key: responsibilities`."""
    return len(token) >= 32 or any(ch.isdigit() for ch in token)


def classify(match: re.Match[str]) -> tuple[Entity, int] | None:
    """The entity a candidate match is, and where in the match its value starts (after a
    kept keyword such as `Bearer `); None when the candidate turns out not to be one."""
    kind = match.lastgroup
    if kind == "card":
        digits = match.group(0).replace(" ", "").replace("-", "")
        return ("CARD", 0) if _card_network(digits) and _luhn_ok(digits) else None
    if kind == "intl":
        count = sum(ch.isdigit() for ch in match.group(0))
        return ("PHONE", 0) if 8 <= count <= 15 else None
    if kind in ("bearer", "assigned"):
        if not _looks_random(match.group(f"{kind}_value")):
            return None
        return "SECRET", len(match.group(f"{kind}_keep"))
    if kind == "password":
        return "SECRET", len(match.group("password_keep"))
    if kind == "email":
        return "EMAIL", 0
    if kind == "ssn":
        return "SSN", 0
    if kind == "iban":
        return ("IBAN", 0) if _iban_ok(match.group(0)) else None
    if kind == "ipv4":
        return "IP", 0
    if kind == "ipv6":
        try:
            ipaddress.IPv6Address(match.group(0))
        except ValueError:
            return None
        return "IP", 0
    return ("SECRET", 0) if kind == "secret" else ("PHONE", 0)


def might_contain(text: str) -> bool:
    """False only when no entity can start anywhere in `text` (the cheap common case)."""
    return CHAR_STARTS.search(text) is not None or may_hold_keyword(text)


# --- other scripts' digits, Unicode separators, invisible characters ---------------------
# A value written with other digits (fullwidth, Arabic-Indic, Devanagari ...), no-break or
# thin spaces, Unicode dashes, fullwidth forms (a fullwidth `@` in an e-mail address) or
# invisible characters inside it (`ja\u200bne@…`) is still that value. Such text is folded
# first: the same characters, one for one, in ASCII where they have an ASCII twin, and
# without the invisible ones; spans found there are mapped back to the original text, so a
# masked value is the
# original one (invisible characters inside it included) and is restored exactly.

# The zero of each run of ten Unicode decimal digits (category Nd, Unicode 14, Python 3.11;
# `tests/unit/test_guard_pii_unicode.py` checks this list against `unicodedata`).
DIGIT_ZEROS = (
    0x660, 0x6F0, 0x7C0, 0x966, 0x9E6, 0xA66, 0xAE6, 0xB66, 0xBE6, 0xC66, 0xCE6, 0xD66,
    0xDE6, 0xE50, 0xED0, 0xF20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80,
    0x1A90, 0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50,
    0xABF0, 0xFF10, 0x104A0, 0x10D30, 0x11066, 0x110F0, 0x11136, 0x111D0, 0x112F0, 0x11450,
    0x114D0, 0x11650, 0x116C0, 0x11730, 0x118E0, 0x11950, 0x11C50, 0x11D50, 0x11DA0, 0x16A60,
    0x16AC0, 0x16B50, 0x1D7CE, 0x1D7D8, 0x1D7E2, 0x1D7EC, 0x1D7F6, 0x1E140, 0x1E2F0, 0x1E950,
    0x1FBF0,
)  # fmt: skip
_SPACES = "\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
_SPACES += "\u202f\u205f\u3000"
_DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63"
_DOTS = "\u2024\u3002\ufe52\uff61"  # one-dot leader, ideographic and small full stops
AT_SIGNS = ("@", "\uff20", "\ufe6b")  # what folds to `@`


def _fold_table() -> dict[int, int]:
    table = {zero + d: 48 + d for zero in DIGIT_ZEROS for d in range(10)}
    table.update((c, c - 0xFEE0) for c in range(0xFF01, 0xFF5F))  # fullwidth ASCII
    table.update((ord(c), 0x20) for c in _SPACES)
    table.update((ord(c), 0x2D) for c in _DASHES)
    table.update((ord(c), 0x2E) for c in _DOTS)
    table.update((ord(c), ord(a)) for c, a in (("\ufe6b", "@"), ("\ufe62", "+")))
    return table


FOLD = _fold_table()
# Format characters that render as nothing (zero-width space/joiners, word joiner, soft
# hyphen, BOM, bidi marks and isolates, variation selectors): dropped before the scan.
INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f"
    "\u202a-\u202e\u2060-\u206f\ufe00-\ufe0f\ufeff]"
)


def fold(text: str) -> tuple[str, list[int] | None]:
    """`text` as the detector reads it, and where invisible characters were dropped from it
    (for `unfold`; None: nothing dropped, positions are the same). ASCII text is returned as
    it is."""
    if text.isascii():
        return text, None
    folded = text.translate(FOLD)  # ~0.2 s per MB; a regex pre-check was slower
    removed = [m.start() for m in INVISIBLE.finditer(folded)]
    if not removed:
        return folded, None
    # For each dropped character, the position in the folded text it was dropped before.
    return INVISIBLE.sub("", folded), [at - j for j, at in enumerate(removed)]


def unfold(at: int, dropped: list[int]) -> int:
    """The position in the original text of the folded text's character `at`."""
    return at + bisect.bisect_right(dropped, at)


def find(text: str, entities: frozenset[str] | None = None) -> list[Span]:
    """Every entity in `text`, left to right, not overlapping (None: every kind). Other
    scripts' digits, Unicode spaces and dashes, fullwidth forms and invisible characters
    count as what they stand for (`fold`); the spans are positions in `text`."""
    if not text:
        return []
    folded, dropped = fold(text)
    spans = _find(folded, entities)
    if dropped is None or not spans:
        return spans
    return [Span(unfold(s.start, dropped), unfold(s.end - 1, dropped) + 1, s.entity) for s in spans]


def _find(text: str, entities: frozenset[str] | None) -> list[Span]:
    if not might_contain(text):
        return []
    spans: list[Span] = []
    pos = 0
    for start in starts(text, 0, len(text)):
        if start < pos:
            continue
        match = PATTERN.match(text, start)
        found = None if match is None else classify(match)
        if match is None or found is None:
            continue
        entity, offset = found
        pos = match.end()
        if entities is None or entity in entities:
            spans.append(Span(start + offset, pos, entity))
    return spans


OUTPUT_PLACEHOLDER: dict[str, str] = {
    "EMAIL": "[email]",
    "PHONE": "[phone]",
    "CARD": "[card]",
    "IBAN": "[iban]",
    "SSN": "[ssn]",
    "IP": "[ip]",
    "SECRET": "[secret]",
}


def replace_spans(text: str, spans: list[Span], offset: int = 0) -> str:
    """`text` with each span (positions relative to `offset`) replaced by `[email]` etc."""
    if not spans:
        return text
    out: list[str] = []
    pos = 0
    for span in spans:
        start, end = span.start - offset, span.end - offset
        out.append(text[pos:start])
        out.append(OUTPUT_PLACEHOLDER[span.entity])
        pos = end
    out.append(text[pos:])
    return "".join(out)
