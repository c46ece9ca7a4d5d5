"""`storable`: every text field of a record fits its column before it is queued."""

from __future__ import annotations

from sluice.observe.records import CallRecord
from sluice.observe.rows import LABEL_CHARS, storable


def test_a_record_that_fits_is_passed_on_as_it_is() -> None:
    record = CallRecord(request_id="r1", ts=1.0, tenant="acme", input_preview="hi")
    assert storable(record) is record


def test_each_text_field_is_cut_to_its_own_column() -> None:
    long = "x" * 5000
    record = CallRecord(
        request_id="r1",
        ts=1.0,
        tenant=long,
        grounded=long,
        finish_reason=long,
        error_type=long,
        guards=long,
        input_preview=long,  # unbounded TEXT: kept whole
        route_decision=long,
    )
    out = storable(record)
    assert out is not record and record.tenant == long  # a copy; the original untouched
    assert len(out.tenant or "") == LABEL_CHARS
    assert len(out.grounded or "") == 32
    assert len(out.finish_reason or "") == 32 and len(out.error_type or "") == 64
    assert len(out.guards or "") == 1024
    assert out.input_preview == long and out.route_decision == long


def test_nul_bytes_are_removed_from_bounded_and_unbounded_fields() -> None:
    record = CallRecord(request_id="r\x001", ts=1.0, user_id="u\x00", output_preview="a\x00b" * 100)
    out = storable(record)
    assert out.request_id == "r1" and out.user_id == "u"
    assert out.output_preview == "ab" * 100
