"""PII masking that restores: stable placeholders, restore in JSON and in streams split at
every boundary, and the caller's own placeholder-shaped text left alone."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from sluice.guardrails.mask import MAX_PLACEHOLDER, Masker, StreamRestorer
from sluice.guardrails.pii import find

TEXT = (
    "Mail jane.doe@example.com or call +44 20 7946 0958; card 4111 1111 1111 1111, "
    "IBAN DE89 3704 0044 0532 0130 00, ssn 123-45-6789, host 10.0.0.7, "
    "key sk-proj-AbCdEf0123456789xyzXYZ. Again: jane.doe@example.com."
)


def test_mask_gives_stable_numbered_placeholders_and_restores() -> None:
    masker = Masker()
    masked = masker.mask(TEXT)
    assert "jane.doe" not in masked and "4111" not in masked and "sk-proj" not in masked
    assert masked.count("<EMAIL_1>") == 2  # same value, same placeholder
    for placeholder in ("<PHONE_1>", "<CARD_1>", "<IBAN_1>", "<SSN_1>", "<IP_1>", "<SECRET_1>"):
        assert placeholder in masked
    assert find(masked) == []  # nothing left to find
    assert masker.restore(masked) == TEXT
    assert masker.entities_found == ["CARD", "EMAIL", "IBAN", "IP", "PHONE", "SECRET", "SSN"]


def test_distinct_values_get_distinct_numbers() -> None:
    masker = Masker()
    masked = masker.mask("a@x.io and b@x.io and a@x.io")
    assert masked == "<EMAIL_1> and <EMAIL_2> and <EMAIL_1>"


def test_a_placeholder_the_caller_wrote_is_not_reused_nor_restored() -> None:
    masker = Masker()
    text = "literal <EMAIL_1> in my text, mine is a@x.io"
    masker.reserve(text)
    masked = masker.mask(text)
    assert masked == "literal <EMAIL_1> in my text, mine is <EMAIL_2>"
    assert masker.restore(masked) == text


def test_an_unknown_placeholder_stays() -> None:
    masker = Masker()
    masker.mask("a@x.io")
    assert masker.restore("<EMAIL_7> <EMAIL_1>") == "<EMAIL_7> a@x.io"


def test_entities_filter() -> None:
    masker = Masker(["EMAIL"])
    assert masker.mask("a@x.io 10.0.0.1") == "<EMAIL_1> 10.0.0.1"


def test_restore_inside_json_escapes_the_original() -> None:
    masker = Masker()
    masker.mask('pw "a@x.io"')
    args = json.dumps({"to": "<EMAIL_1>"})
    assert json.loads(masker.restore(args[1:-1].join("{}"), json_string=True)) == {"to": "a@x.io"}


def _restore_in_pieces(masker: Masker, pieces: list[str], *, json_string: bool = False) -> str:
    restorer = StreamRestorer(masker, json_string=json_string)
    out = [restorer.feed(p) for p in pieces]
    out.append(restorer.flush())
    return "".join(out)


def test_stream_restore_at_every_single_split_point() -> None:
    masker = Masker()
    masked = masker.mask(TEXT)
    for i in range(len(masked) + 1):
        assert _restore_in_pieces(masker, [masked[:i], masked[i:]]) == TEXT, i


def test_stream_restore_one_character_at_a_time() -> None:
    masker = Masker()
    masked = masker.mask(TEXT)
    assert _restore_in_pieces(masker, list(masked)) == TEXT


@given(st.lists(st.integers(min_value=0, max_value=400), max_size=40))
def test_stream_restore_at_any_set_of_split_points(cuts: list[int]) -> None:
    masker = Masker()
    masked = masker.mask(TEXT)
    points = sorted({min(c, len(masked)) for c in cuts})
    pieces = [masked[a:b] for a, b in zip([0, *points], [*points, len(masked)], strict=True)]
    assert _restore_in_pieces(masker, pieces) == TEXT


@given(st.text(alphabet="<>EMAIL_12 xyz", max_size=60), st.lists(st.integers(0, 60)))
def test_stream_holds_little_and_loses_nothing(noise: str, cuts: list[int]) -> None:
    """Arbitrary text around placeholder fragments: streamed = restored whole, and no more
    than one placeholder's length is ever held back."""
    masker = Masker()
    masker.mask("a@x.io")
    text = noise + "<EMAIL_1>" + noise
    points = sorted({min(c, len(text)) for c in cuts})
    restorer = StreamRestorer(masker)
    out: list[str] = []
    sent = 0
    for a, b in zip([0, *points], [*points, len(text)], strict=True):
        chunk = restorer.feed(text[a:b])
        out.append(chunk)
        sent = b
        held = len(restorer._pending)
        assert held <= MAX_PLACEHOLDER
        assert held <= sent
    out.append(restorer.flush())
    assert "".join(out) == masker.restore(text)


def test_an_unfinished_placeholder_at_the_end_is_sent_as_is() -> None:
    masker = Masker()
    masker.mask("a@x.io")
    assert _restore_in_pieces(masker, ["hello <EMA"]) == "hello <EMA"
