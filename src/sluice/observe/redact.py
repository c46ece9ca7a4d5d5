"""Redaction of personal data and secrets from text that telemetry keeps (previews).

`redact(text)` replaces

- secrets: OpenAI/Anthropic/Sluice keys (`sk-…`), AWS access key ids (`AKIA…`/`ASIA…`),
  GitHub and Slack tokens, JWTs, the token after `Bearer`, the value after `api_key=`,
  `token:`, `"client_secret": "…"` and the like (when it looks random: it has a digit or is
  at least 32 characters long), and any value after `password=` / `pwd:` → `[secret]`
- e-mail addresses → `[email]`
- payment card numbers: 13-19 digits, optionally grouped by single spaces or dashes, with a
  card-network prefix and a valid Luhn checksum, so order numbers, timestamps and other long
  numbers stay → `[card]`
- US social security numbers (`123-45-6789`, not the impossible 000/666/9xx areas) → `[ssn]`
- IBANs (checked with their mod-97 digits, grouped by spaces or not) → `[iban]`
- IP addresses: IPv4, and IPv6 written from a digit (validated) → `[ip]`
- phone numbers: `+` international numbers with 8-15 digits, and US/NANP numbers written
  with separators (`(415) 555-0100`, `415.555.0100`, `1-415-555-0100`); dates, times,
  versions and bare digit runs stay → `[phone]`

The detector is `sluice.guardrails.pii` (the one the PII guard masks requests with), so
records and logs get the same set of entities as the guard; this module adds the placeholders
and the length-limited scan.

How: a match can only start at a few kinds of places — a digit run, `+`, `(`, a keyword such
as `sk-`, `bearer`, `token`, or shortly before an `@`. Those are found by two regex scans that
skip in C to candidate characters, and the combined pattern is tried only there, so ordinary
prose costs little. Where kinds could start at the same place the order above decides. The
placeholders contain no digits or keywords, so redacting twice changes nothing.

`preview(text, limit)` redacts *then* truncates — a cut never leaves part of a secret — and
only looks as far into the text as the cut needs, so a 100 kB prompt costs no more than a
short one.
"""

from __future__ import annotations

import re

from sluice.guardrails.pii import (
    CHAR_STARTS,
    FOLD,
    INVISIBLE,
    LOCAL_PART,
    PATTERN,
    classify,
    may_hold_keyword,
    starts,
)

SECRET = "[secret]"
EMAIL = "[email]"
CARD = "[card]"
PHONE = "[phone]"
SSN = "[ssn]"
IBAN = "[iban]"
IP = "[ip]"
ELLIPSIS = "…"
_PLACEHOLDERS = (SECRET, EMAIL, CARD, PHONE, SSN, IBAN, IP)

_PATTERN = PATTERN
_CHAR_STARTS = CHAR_STARTS
_LOCAL_PART = LOCAL_PART
_PLACEHOLDER: dict[str, str] = {
    "SECRET": SECRET,
    "EMAIL": EMAIL,
    "CARD": CARD,
    "PHONE": PHONE,
    "SSN": SSN,
    "IBAN": IBAN,
    "IP": IP,
}
_starts = starts
_may_hold_keyword = may_hold_keyword


def _replacement(match: re.Match[str]) -> str | None:
    """The placeholder for a match (after any kept keyword), or None when a candidate turns
    out not to be one."""
    found = classify(match)
    if found is None:
        return None
    entity, offset = found
    return match.group(0)[:offset] + _PLACEHOLDER[entity]


def _redact(text: str, limit: int | None) -> str:
    """Redact left to right; with a limit, stop once more than `limit` characters are out.

    With a limit, only starts before `stop` matter (anything from there on lies past the
    cut), and they are looked for in a window just past it (room for an e-mail's `@`).
    Matches are always made against the whole text, so they are the same as `redact`'s.
    """
    scan = text
    if not text.isascii():  # other digits, Unicode spaces, fullwidth forms (`pii.fold`)
        text = INVISIBLE.sub("", text)
        scan = text.translate(FOLD)
    out: list[str] = []
    size = pos = 0
    n = len(text)
    while pos < n and (limit is None or size <= limit):
        stop = n if limit is None else min(n, pos + limit - size + 1)
        # Look ahead by another `limit`: replacements are mostly shorter than what they
        # replace, which moves `stop` on, and the same candidates can serve for a while.
        hi = n if limit is None else min(n, stop + _LOCAL_PART + 1 + limit)
        exhausted = True
        for start in _starts(scan, pos, hi):
            if start >= stop:
                break
            if start < pos:
                continue
            match = _PATTERN.match(scan, start)
            replacement = None if match is None else _replacement(match)
            if match is None or replacement is None:
                continue
            out.append(text[pos:start])
            out.append(replacement)
            size += start - pos + len(replacement)
            pos = match.end()
            if limit is not None:
                stop = min(n, pos + limit - size + 1)
                if size > limit or (hi < n and stop + _LOCAL_PART + 1 > hi):
                    exhausted = False  # done, or the candidates no longer reach far enough
                    break
        if exhausted:  # nothing more starts before stop
            out.append(text[pos:stop])
            size += stop - pos
            pos = stop
    return "".join(out)


def redact(text: str) -> str:
    """`text` with secrets, e-mail addresses, card and phone numbers replaced by
    `[secret]`, `[email]`, `[card]` and `[phone]`."""
    return _redact(text, None)


def preview(text: str, limit: int = 200) -> str:
    """The redacted text, cut to at most `limit` characters (ending in `…` when cut)."""
    if limit < 1:
        return ""
    if (
        len(text) <= limit
        and text.isascii()
        and _CHAR_STARTS.search(text) is None
        and not _may_hold_keyword(text)
    ):
        return text  # the common case: short prose where no match can start
    redacted = _redact(text, limit)
    if len(redacted) <= limit:
        return redacted
    cut = limit - len(ELLIPSIS)
    # Never end inside a placeholder: `[sec…` would read like a leak.
    start = redacted.rfind("[", max(cut - len(SECRET) + 1, 0), cut)
    if start != -1:
        for placeholder in _PLACEHOLDERS:
            if redacted.startswith(placeholder, start) and start + len(placeholder) > cut:
                cut = start
                break
    return redacted[:cut] + ELLIPSIS
