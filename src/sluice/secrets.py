"""Credential-shaped strings, and `scrub(text)` which hides them.

Applied to everything taken from an upstream before it reaches a caller or a log: an
upstream 401 echoes the key it was sent (`Incorrect API key provided: sk-proj-…`), and that
is our provider key, not the caller's. `sluice.observe.redact` uses the same shapes for the
previews it keeps (plus personal data).
"""

from __future__ import annotations

import re

SECRET = "[secret]"

# Verbose-regex alternatives (no groups), one shape each.
SECRET_SHAPES = r"""
        \bsk-[A-Za-z0-9][A-Za-z0-9_*-]{15,}          # sk-…, sk-proj-…, sk-ant-…, sk-sluice-…
      | \b(?:AKIA|ASIA)[0-9A-Z]{16}\b                 # AWS access key id
      | \bgh[pousr]_[A-Za-z0-9]{30,}                  # GitHub tokens
      | \bxox[abprs]-[A-Za-z0-9-]{10,}                # Slack tokens
      | \beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}(?:\.[A-Za-z0-9_-]*)?   # JWT
"""

_SCRUB = re.compile(
    rf"""
    (?P<shape>{SECRET_SHAPES})
  | (?P<keep>(?i:\bbearer\s{{1,4}}|(?<![A-Za-z0-9])(?:api[_-]?key|x-api-key|token|secret)
        ["']?\s{{0,3}}[:=]\s{{0,3}}["']?))
    (?P<value>[A-Za-z0-9._~+/*-]{{12,}}=*)
    """,
    re.VERBOSE,
)


def _replace(match: re.Match[str]) -> str:
    if match.group("shape") is not None:
        return SECRET
    return match.group("keep") + SECRET


def scrub(text: str) -> str:
    """`text` with API keys, tokens and bearer credentials replaced by `[secret]`."""
    if not text:
        return text
    return _SCRUB.sub(_replace, text)
