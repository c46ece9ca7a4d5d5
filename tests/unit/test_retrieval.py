"""Retrieval core without a server: chunking, extraction, filters, fusion, metrics, the
grounding context (dedupe, budget, stable order), citation checks, request parsing."""

from __future__ import annotations

import numpy as np
import pytest

from sluice.errors import InvalidRequestError
from sluice.retrieval import metrics
from sluice.retrieval.chunking import chunk_text, split_sentences, window
from sluice.retrieval.extract import ExtractError, extract_text, html_to_text
from sluice.retrieval.filters import FilterError, compile_filter, validate_attributes
from sluice.retrieval.grounding import (
    build_context,
    check_citations,
    file_citations,
    parse_request,
)
from sluice.retrieval.index import CollectionIndex, IndexedChunk, fuse
from sluice.retrieval.service import SearchResult
from sluice.retrieval.stage import grounded_label
from sluice.tokens import count_text

DOC = """# Guide

Intro paragraph. It has two sentences.

## Install
Run the installer. Then restart the machine! Does it work? Yes.

## Use
""" + " ".join(f"Sentence number {i} talks about topic {i}." for i in range(60))


def test_chunks_respect_headings_and_the_token_bound() -> None:
    chunks = chunk_text(DOC, max_tokens=40)
    assert all(c.tokens <= 40 for c in chunks)
    assert chunks[0].heading == "Guide" and chunks[0].text.startswith("Intro paragraph.")
    install = [c for c in chunks if c.heading == "Guide > Install"]
    assert len(install) == 1 and install[0].text.startswith("Run the installer.")
    assert not any("installer" in c.text and "Intro" in c.text for c in chunks)  # no crossing
    use = [c for c in chunks if c.heading == "Guide > Use"]
    assert len(use) > 3 and all(c.text.endswith(".") for c in use)  # cut at sentence ends
    assert [c.seq for c in chunks] == list(range(len(chunks)))
    assert "Sentence number 59" in use[-1].text  # nothing lost


def test_a_giant_sentence_is_cut_at_words() -> None:
    chunks = chunk_text("word " * 5000, max_tokens=50)
    assert len(chunks) > 10 and all(c.tokens <= 50 for c in chunks)
    with pytest.raises(ValueError):
        chunk_text("x", max_tokens=3)


def test_code_fences_do_not_make_headings_and_windows_widen() -> None:
    chunks = chunk_text("# A\n```\n# not a heading\n```\ntext", 100)
    assert {c.heading for c in chunks} == {"A"}
    assert split_sentences("One. Two? Three!") == ["One.", "Two?", "Three!"]
    assert window(("a.", "b."), "mid.", ("c.", "d."), 1) == "b. mid. c."
    assert window((), "mid.", (), 2) == "mid."


def test_extraction_of_each_type() -> None:
    html = b"<html><head><title>t</title><script>evil()</script></head><body><h2>Head</h2>" \
        b"<p>One &amp; two</p><style>x{}</style><p>three</p></body></html>"  # fmt: skip
    text = extract_text(html, "page.html")
    assert "## Head" in text and "One & two" in text and "evil" not in text and "x{}" not in text
    assert extract_text(b'{"text": "a"}\n{"content": "b"}\n[1]\n', "x.jsonl") == "a\n\nb\n\n[1]"
    assert extract_text(b"\xef\xbb\xbfplain", "a.txt") == "plain"
    with pytest.raises(ExtractError):
        extract_text(b"\xff\xfe\x00", "a.txt")
    with pytest.raises(ExtractError):
        extract_text(b"{broken\n", "x.jsonl")
    with pytest.raises(ExtractError):
        extract_text(b"%PDF-1.4 garbage", "x.pdf")
    assert html_to_text("<p>a</p><p>b</p>") == "a\n\nb"


def test_a_real_pdf_is_read() -> None:
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(200, 200)
    import io

    buf = io.BytesIO()
    writer.write(buf)
    assert extract_text(buf.getvalue(), "blank.pdf") == ""  # parsed, no text


def test_filters_in_openai_shape() -> None:
    attrs = {"lang": "en", "year": 2024, "draft": False}
    match = compile_filter({"type": "and", "filters": [
        {"type": "eq", "key": "lang", "value": "en"},
        {"type": "or", "filters": [
            {"type": "gte", "key": "year", "value": 2025},
            {"type": "eq", "key": "draft", "value": False},
        ]},
    ]})  # fmt: skip
    assert match is not None and match(attrs)
    assert not compile_filter({"type": "gt", "key": "year", "value": 2024})(attrs)  # type: ignore[misc]
    assert compile_filter({"type": "ne", "key": "missing", "value": 1})(attrs)  # type: ignore[misc]
    assert not compile_filter({"type": "eq", "key": "missing", "value": 1})(attrs)  # type: ignore[misc]
    assert compile_filter({"type": "in", "key": "lang", "value": ["en", "de"]})(attrs)  # type: ignore[misc]
    assert compile_filter({"type": "nin", "key": "lang", "value": ["de"]})(attrs)  # type: ignore[misc]
    # a string never compares with a number (no TypeError)
    assert not compile_filter({"type": "gt", "key": "lang", "value": 3})(attrs)  # type: ignore[misc]
    assert compile_filter(None) is None
    bads: list[object] = [
        [],
        {"type": "like", "key": "a", "value": 1},
        {"type": "eq", "value": 1},
        {"type": "eq", "key": "a", "value": [1]},
        {"type": "in", "key": "a", "value": 1},
        {"type": "and", "filters": []},
        {"type": "eq", "key": "a", "value": float("nan")},
    ]
    for bad in bads:
        with pytest.raises(FilterError):
            compile_filter(bad)
    deep: dict[str, object] = {"type": "eq", "key": "a", "value": 1}
    for _ in range(20):
        deep = {"type": "and", "filters": [deep]}
    with pytest.raises(FilterError):
        compile_filter(deep)
    assert validate_attributes({"a": 1, "b": "x", "c": True}) == {"a": 1, "b": "x", "c": True}
    for bad_attrs in ({"a": [1]}, {"": 1}, {f"k{i}": 1 for i in range(17)}, {"a": "x" * 600}):
        with pytest.raises(FilterError):
            validate_attributes(bad_attrs)


def _chunk(i: int, text: str, file_id: str = "f", **attrs: object) -> IndexedChunk:
    return IndexedChunk(f"c{i}", file_id, f"{file_id}.txt", i, text, "", count_text(text), attrs)


def test_hybrid_search_prefilters_and_fuses() -> None:
    texts = ["the cat sat on the mat", "dogs chase cats", "stock markets fell", "a feline rests"]
    chunks = [_chunk(i, t, lang="en" if i != 1 else "de") for i, t in enumerate(texts)]
    vectors = np.eye(4, 384, dtype=np.float32)
    vectors[0, 3] = 1.0  # chunk 0 is half-way to the query's meaning
    vectors[1, 3] = vectors[2, 3] = -1.0
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = CollectionIndex()
    index.add(chunks, vectors)
    query_vec = np.eye(1, 384, 3, dtype=np.float32)[0]  # "semantically" the feline chunk
    hits = index.search("cat", query_vec, 4)
    ids = [h.chunk.id for h in hits]
    assert ids[0] == "c0" and "c3" in ids[:3]  # found by both lists; dense's best kept
    assert hits[0].score == pytest.approx(max(h.score for h in hits)) and hits[0].score <= 1
    only_de = index.search("cat", query_vec, 4, predicate=compile_filter(
        {"type": "eq", "key": "lang", "value": "de"}))  # fmt: skip
    assert [h.chunk.id for h in only_de] == ["c1"]
    assert index.search("cat", None, 2, mode="bm25")[0].chunk.id == "c0"
    assert index.search("zzz", query_vec, 2, mode="dense")[0].chunk.id == "c3"
    assert index.remove_file("f") == 4 and index.search("cat", query_vec, 3) == []


def test_rrf_is_deterministic_and_bounded() -> None:
    chunks = [_chunk(i, str(i)) for i in range(5)]
    fused = fuse(chunks, {"bm25": [0, 1, 2], "dense": [2, 1, 0]}, 5, k=60)
    # ranks 1+3 edge out 2+2 (1/61 + 1/63 > 2/62); the tie of c0 and c2 goes by id
    assert [h.chunk.id for h in fused] == ["c0", "c2", "c1"]
    assert all(0 < h.score <= 1 for h in fused)
    assert fuse(chunks, {"bm25": [4], "dense": [4]}, 1)[0].score == pytest.approx(1.0)


def test_metrics() -> None:
    rel = {"a": 2, "b": 1}
    assert metrics.recall_at(["x", "a"], rel, 1) == 0 and metrics.recall_at(["a", "b"], rel, 2) == 1
    assert metrics.mrr_at(["x", "b"], rel, 10) == 0.5
    assert metrics.ndcg_at(["a", "b"], rel, 10) == pytest.approx(1.0)
    assert metrics.ndcg_at(["b", "a"], rel, 10) < 1.0
    assert metrics.dedupe(["a", "a", "b"]) == ["a", "b"]


def _result(i: int, text: str, file_id: str, score: float) -> SearchResult:
    return SearchResult("vs", _chunk(i, text, file_id), score, text)


def test_context_dedupes_budgets_and_is_stable() -> None:
    results = [
        _result(5, "Zeta fact about autovacuum. " * 3, "f2", 0.9),
        _result(1, "Alpha fact about freezing rows. " * 3, "f1", 0.8),
        _result(9, "zeta FACT about autovacuum. " * 3, "f3", 0.7),  # duplicate text
        _result(2, "Long low-ranked chunk. " * 200, "f1", 0.1),  # over budget: dropped
    ]
    ctx = build_context(results, max_chunks=8, max_tokens=400)
    assert ctx.duplicates == 1 and ctx.dropped_for_budget == 1
    assert [s.result.chunk.file_id for s in ctx.sources] == ["f1", "f2"]  # sorted, not ranked
    assert ctx.text.index("[1] f1.txt") < ctx.text.index("[2] f2.txt")
    assert ctx.tokens <= 400
    again = build_context(list(reversed(results[:2])), 8, 400)
    assert again.text == ctx.text  # same documents, same bytes: prompt caching applies
    tiny = build_context(results, max_chunks=1, max_tokens=400)
    assert [s.result.chunk.file_id for s in tiny.sources] == ["f2"]  # the best one kept


def test_citations_are_checked_and_annotated() -> None:
    ctx = build_context([_result(1, "a fact.", "f1", 1.0), _result(2, "b fact.", "f2", 0.5)],
                        8, 1000)  # fmt: skip
    check = check_citations("A [1]. B [2][7]. A again [1].", ctx.sources)
    assert check.cited == [1, 2] and check.unknown == [7] and not check.grounded
    assert check_citations("Fine [2].", ctx.sources).grounded
    assert not check_citations("no citation", ctx.sources).grounded
    notes = file_citations("See [2].", ctx.sources)
    assert notes == [{"type": "file_citation", "index": 4, "file_id": "f2", "filename": "f2.txt"}]


def test_grounded_label_is_bounded_and_exhaustive() -> None:
    ctx = build_context([_result(1, "a fact.", "f1", 1.0), _result(2, "b fact.", "f2", 0.5)],
                        8, 1000)  # fmt: skip
    n = len(ctx.sources)
    assert grounded_label(check_citations("A [1].", ctx.sources), n) == "ok"
    assert grounded_label(check_citations("nothing", ctx.sources), n) == "no_citations"
    assert grounded_label(check_citations("nothing", []), 0) == "no_sources"
    assert grounded_label(check_citations("A [1]", ctx.sources), n, completed=False) == "cut"
    hostile = "".join(f"[{i}]" for i in range(3, 5000))  # thousands of made-up citations
    label = grounded_label(check_citations(hostile, ctx.sources), n, completed=False)
    assert label == "unsupported:997" and len(label) <= 32  # [n] has at most 3 digits


def test_parse_request_shapes() -> None:
    assert parse_request({}, {}) is None
    assert parse_request({"x-sluice-retrieval": "vs_a, vs_b,vs_a"}, {}).store_ids == (  # type: ignore[union-attr]
        "vs_a", "vs_b")  # fmt: skip
    spec = parse_request({"x-sluice-retrieval": '{"vector_store_ids": ["vs_a"], '
                          '"max_num_results": 3}'}, {})  # fmt: skip
    assert spec is not None and spec.max_results == 3
    assert parse_request({}, {"vector_store_ids": "vs_c"}).source == "metadata"  # type: ignore[union-attr]
    for bad in ("{nope", '{"vector_store_ids": []}', ",".join(f"vs{i}" for i in range(11)),
                '{"vector_store_ids": ["a"], "max_num_results": 99}', "[1]"):  # fmt: skip
        with pytest.raises(InvalidRequestError):
            parse_request({"x-sluice-retrieval": bad}, {})
