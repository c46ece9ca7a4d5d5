"""Personal data written with other digits and separators: fullwidth, Arabic-Indic,
Devanagari and other decimal digits, no-break and thin spaces, Unicode dashes, fullwidth
`@`, and invisible characters inside a value. Each is found with the span of the original
text, masked whole, and restored exactly."""

# ruff: noqa: RUF001  (the point of these tests is characters that look like ASCII)
from __future__ import annotations

import asyncio

import pytest

from sluice.guardrails.mask import Masker
from sluice.guardrails.pii import find, replace_spans
from sluice.observe.redact import redact

FW = str.maketrans("0123456789", "０１２３４５６７８９")  # fullwidth
AR = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")  # Arabic-Indic
FA = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")  # Extended Arabic-Indic (Persian, Urdu)
DE = str.maketrans("0123456789", "०१२३४५६७८९")  # Devanagari
BN = str.maketrans("0123456789", "০১২৩৪৫৬৭৮৯")  # Bengali
TH = str.maketrans("0123456789", "๐๑๒๓๔๕๖๗๘๙")  # Thai
SCRIPTS = {"fullwidth": FW, "arabic": AR, "persian": FA, "devanagari": DE, "bengali": BN}
SCRIPTS["thai"] = TH

VALUES = [
    ("+44 20 7946 0958", "PHONE"),
    ("(415) 555-0132", "PHONE"),
    ("4111 1111 1111 1111", "CARD"),
    ("5500-0000-0000-0004", "CARD"),
    ("078-05-1120", "SSN"),
    ("GB82 WEST 1234 5698 7654 32", "IBAN"),
    ("192.168.10.42", "IP"),
]


def spans(text: str) -> list[tuple[str, str]]:
    return [(text[s.start : s.end], s.entity) for s in find(text)]


@pytest.mark.parametrize("script", sorted(SCRIPTS))
@pytest.mark.parametrize(("value", "entity"), VALUES)
def test_values_in_other_digits_are_found_with_exact_spans(
    script: str, value: str, entity: str
) -> None:
    written = value.translate(SCRIPTS[script])
    assert written != value
    text = f"mine is {written}, thanks"
    assert spans(text) == [(written, entity)]


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_checksums_still_apply_in_other_digits(script: str) -> None:
    for bad in ("4111 1111 1111 1112", "GB82 WEST 1234 5698 7654 33", "000-12-3456"):
        assert find(f"no {bad.translate(SCRIPTS[script])} here") == [], bad


@pytest.mark.parametrize(
    ("text", "value", "entity"),
    [
        (
            "card 4111\u00a01111\u00a01111\u00a01111 ok",
            "4111\u00a01111\u00a01111\u00a01111",
            "CARD",
        ),
        (
            "card 4111\u20091111\u202f1111\u20071111 ok",
            "4111\u20091111\u202f1111\u20071111",
            "CARD",
        ),
        ("call +44\u00a020\u00a07946\u00a00958 now", "+44\u00a020\u00a07946\u00a00958", "PHONE"),
        ("ssn 078\u201005\u20111120 ok", "078\u201005\u20111120", "SSN"),
        (
            "card 4111\u20131111\u20131111\u20131111 ok",
            "4111\u20131111\u20131111\u20131111",
            "CARD",
        ),
        ("mail ｊａｎｅ＠ｅｘａｍｐｌｅ．ｃｏｍ ok", "ｊａｎｅ＠ｅｘａｍｐｌｅ．ｃｏｍ", "EMAIL"),
        ("mail jane＠example.com ok", "jane＠example.com", "EMAIL"),
        ("mail jane\ufe6bexample\u3002com ok", "jane\ufe6bexample\u3002com", "EMAIL"),
        ("mail jane@example\uff61co\u2024uk ok", "jane@example\uff61co\u2024uk", "EMAIL"),
        ("ip 192\u3002168\u300210\u300242 ok", "192\u3002168\u300210\u300242", "IP"),
        ("iban GB82\u00a0WEST\u00a01234\u00a05698\u00a07654\u00a032 ok", None, "IBAN"),
        (
            "key ｓｋ-proj-AbCdEf0123456789xyzXYZ0123 ok",
            "ｓｋ-proj-AbCdEf0123456789xyzXYZ0123",
            "SECRET",
        ),
    ],
)
def test_unicode_separators_and_fullwidth_forms(text: str, value: str | None, entity: str) -> None:
    if value is None:
        value = text.split(" ", 1)[1].rsplit(" ", 1)[0]
    assert spans(text) == [(value, entity)]


@pytest.mark.parametrize(
    ("text", "value", "entity"),
    [
        ("mail ja\u200bne@exa\u200cmple.com ok", "ja\u200bne@exa\u200cmple.com", "EMAIL"),
        ("mail jane\u2060@example\u200d.com ok", "jane\u2060@example\u200d.com", "EMAIL"),
        ("card 4111\u200b1111 1111\u00ad1111 ok", "4111\u200b1111 1111\u00ad1111", "CARD"),
        (
            "card 4\u200b1\u200b1\u200b1 1111 1111 1111 ok",
            "4\u200b1\u200b1\u200b1 1111 1111 1111",
            "CARD",
        ),
        ("ssn \ufeff078-05-1120\u200b ok", "078-05-1120", "SSN"),
        (
            "key sk-proj-AbCdEf\u200b0123456789xyzXYZ0123 ok",
            "sk-proj-AbCdEf\u200b0123456789xyzXYZ0123",
            "SECRET",
        ),
        ("phone +٤٤\u200b ٢٠ ٧٩٤٦ ٠٩٥٨ ok", "+٤٤\u200b ٢٠ ٧٩٤٦ ٠٩٥٨", "PHONE"),
    ],
)
def test_invisible_characters_inside_a_value(text: str, value: str, entity: str) -> None:
    assert spans(text) == [(value, entity)]


def test_mask_and_restore_are_exact_for_every_form() -> None:
    parts = [v.translate(SCRIPTS[s]) for s in sorted(SCRIPTS) for v, _ in VALUES]
    parts += [
        "ja\u200bne@exa\u200cmple.com",
        "ｊａｎｅ＠ｅｘａｍｐｌｅ．ｃｏｍ",
        "4111\u00a01111\u00a01111\u00a01111",
    ]
    text = " and ".join(parts) + "."
    masker = Masker()
    masked = masker.mask(text)
    assert find(masked) == []
    assert not any(ch.isdigit() and not ch.isascii() for ch in masked)
    assert "ｊａｎｅ" not in masked and "exa\u200cmple" not in masked
    assert masker.restore(masked) == text
    assert len(masker) == len(parts)


def test_output_masking_and_redaction_cover_other_digits() -> None:
    card = "٤١١١ ١١١١ ١١١١ ١١١١"
    phone = "+４４ ２０ ７９４６ ０９５８"
    text = f"card {card}, phone {phone}, mail ja\u200bne@example.com."
    assert replace_spans(text, find(text)) == "card [card], phone [phone], mail [email]."
    out = redact(text)
    assert "١١١١" not in out and "７９４６" not in out and "example.com" not in out


def test_a_streamed_answer_in_other_digits_is_masked_at_any_split() -> None:
    from sluice.pipeline.context import CallContext
    from tests.unit.test_guard_stream import request, stage, stream

    value = "٤١١١ ١١١١ ١١١١ ١١١١"
    text = f"your card {value} is blocked; call +٤٤\u00a0٢٠\u00a0٧٩٤٦\u00a0٠٩٥٨ today"
    want = replace_spans(text, find(text))
    assert value not in want and "[phone]" in want
    for i in range(1, len(text)):
        guard = stage({"pii": {"mode": "flag", "output": "mask"}})
        sent = asyncio.run(stream(guard, [text[:i], text[i:]], CallContext(request())))
        assert "".join(sent) == want, i


def test_the_digit_table_is_every_unicode_decimal_digit() -> None:
    import re
    import unicodedata

    from sluice.guardrails.pii import DIGIT_ZEROS, FOLD

    every = "".join(map(chr, range(0x80, 0x110000)))
    digits = {ord(m.group()) for m in re.finditer(r"\d", every)}
    table = {c for c in FOLD if FOLD[c] in range(48, 58) and not 0xFF10 <= c <= 0xFF19}
    assert digits == table | set(range(0xFF10, 0xFF1A))
    for zero in DIGIT_ZEROS:
        assert [unicodedata.decimal(chr(zero + d)) for d in range(10)] == list(range(10))
