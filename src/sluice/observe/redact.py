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

import ipaddress
import re

from sluice.secrets import SECRET_SHAPES

SECRET = "[secret]"
EMAIL = "[email]"
CARD = "[card]"
PHONE = "[phone]"
SSN = "[ssn]"
IBAN = "[iban]"
IP = "[ip]"
ELLIPSIS = "…"
_PLACEHOLDERS = (SECRET, EMAIL, CARD, PHONE, SSN, IBAN, IP)

_PATTERN = re.compile(
    r"(?P<secret>"
    + SECRET_SHAPES  # the credential shapes errors from upstream are scrubbed of, too
    + r"""
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
  | (?P<ipv6>                                        # starting with a digit; checked
        (?<![0-9A-Fa-f:])[0-9][0-9A-Fa-f]{0,3}(?::[0-9A-Fa-f]{0,4}){2,7}(?![0-9A-Fa-f:])
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
_CHAR_STARTS = re.compile(r"[+(@0-9](?<![0-9][0-9])|(?<![A-Za-z0-9])[A-Z]{2}(?=\d\d)")
# ... or one of these words, looked for in the lowercased text. Both patterns begin with
# plain characters, which lets `re` skip ahead to candidates in C instead of trying every
# position. A word matched whole hides one inside it (`key` in `apikey`); that one could
# never start a match, as every keyword alternative needs no letter or digit before it.
_KEYWORDS = re.compile(
    "sk-|akia|asia|gh[pousr]_|xox|eyj|bearer|apikey|accesskey|key|token|secret|auth|pass|pwd"
)
# The longest local part an `@` can have before it.
_LOCAL_PART = 64
_LOCAL_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._%+-")


def _starts(text: str, lo: int, hi: int) -> list[int]:
    """Sorted positions in [lo, hi) where a match may start (a superset, never a miss)."""
    found: list[int] = []
    for m in _CHAR_STARTS.finditer(text, lo, hi):
        at = m.start()
        if text[at] != "@":
            found.append(at)
            continue
        j = at
        while j > lo and at - j < _LOCAL_PART and text[j - 1] in _LOCAL_CHARS:
            j -= 1
        found.extend(range(j, at))
    window = text[lo:hi]
    if _may_hold_keyword(window):
        found.extend(lo + m.start() for m in _KEYWORDS.finditer(window.lower()))
    return sorted(set(found)) if found else found


def _may_hold_keyword(text: str) -> bool:
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


def _replacement(match: re.Match[str]) -> str | None:
    """The placeholder for a match, or None when a candidate turns out not to be one."""
    kind = match.lastgroup
    if kind == "card":
        digits = match.group(0).replace(" ", "").replace("-", "")
        return CARD if _card_network(digits) and _luhn_ok(digits) else None
    if kind == "intl":
        count = sum(ch.isdigit() for ch in match.group(0))
        return PHONE if 8 <= count <= 15 else None
    if kind in ("bearer", "assigned"):
        if not _looks_random(match.group(f"{kind}_value")):
            return None
        return match.group(f"{kind}_keep") + SECRET
    if kind == "password":
        return match.group("password_keep") + SECRET
    if kind == "email":
        return EMAIL
    if kind == "ssn":
        return SSN
    if kind == "iban":
        return IBAN if _iban_ok(match.group(0)) else None
    if kind == "ipv4":
        return IP
    if kind == "ipv6":
        try:
            ipaddress.IPv6Address(match.group(0))
        except ValueError:
            return None
        return IP
    return SECRET if kind == "secret" else PHONE


def _redact(text: str, limit: int | None) -> str:
    """Redact left to right; with a limit, stop once more than `limit` characters are out.

    With a limit, only starts before `stop` matter (anything from there on lies past the
    cut), and they are looked for in a window just past it (room for an e-mail's `@`).
    Matches are always made against the whole text, so they are the same as `redact`'s.
    """
    out: list[str] = []
    size = pos = 0
    n = len(text)
    while pos < n and (limit is None or size <= limit):
        stop = n if limit is None else min(n, pos + limit - size + 1)
        # Look ahead by another `limit`: replacements are mostly shorter than what they
        # replace, which moves `stop` on, and the same candidates can serve for a while.
        hi = n if limit is None else min(n, stop + _LOCAL_PART + 1 + limit)
        exhausted = True
        for start in _starts(text, pos, hi):
            if start >= stop:
                break
            if start < pos:
                continue
            match = _PATTERN.match(text, start)
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
    if len(text) <= limit and _CHAR_STARTS.search(text) is None and not _may_hold_keyword(text):
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
