"""Every table Sluice keeps, defined once (SQLAlchemy Core, the same on SQLite and PostgreSQL).

| table | written by | migrations branch |
| --- | --- | --- |
| `sluice_keys` | `governance.store.KeyStore` | `governance` (0001_keys) |
| `sluice_spend_ledger` | `governance.ledger.Ledger`, `state.charges` | `governance` (0002, 0003) |
| `call_records` (name configurable) | `observe.store.RecordStore` | `records` |
| `sluice_semantic_cache` (name configurable) | `cache.semantic.store.SqlStore` | `semantic` |
| `entries` (its own SQLite file) | `cache.persist.SqliteMirror` | `cache` |
| `sluice_queue` | `queue.sqlite.SqlQueue` (embedded queue) | `queue` |
| `sluice_jobs`, `sluice_job_deliveries` | `jobs.store.JobStore` | `jobs` |
| `sluice_vector_store*` (4 tables) | `retrieval.store.VectorStoreDB` | `retrieval` |

The running code queries these definitions; the Alembic environment in
`sluice.state.migrations` creates and evolves them (never `create_all`). Times are epoch
seconds (floats).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Double,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

metadata = MetaData()

RECORDS_TABLE = "call_records"
SEMANTIC_TABLE = "sluice_semantic_cache"
CACHE_MIRROR_TABLE = "entries"

# --- governance ---------------------------------------------------------------------------

# One row per virtual key. The key itself is never stored: `key_hash` is
# HMAC-SHA256(pepper, key) in hex, `prefix` its first characters for people to recognize.
keys = Table(
    "sluice_keys",
    metadata,
    Column("key_id", String(40), primary_key=True),
    Column("key_hash", String(64), nullable=False),
    Column("prefix", String(32), nullable=False),
    Column("name", String(255), nullable=True),
    Column("tenant", String(255), nullable=False),
    Column("team", String(255), nullable=True),
    Column("user_id", String(255), nullable=True),
    Column("tier", String(255), nullable=True),
    Column("allowed_models", JSON, nullable=False),  # list of model/route names; [] = all
    Column("limits", JSON, nullable=False),  # RateLimits as a dict
    Column("budgets", JSON, nullable=False),  # list of Budget dicts
    Column("meta", JSON, nullable=False),  # free-form metadata
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    Column("expires_at", Double, nullable=True),
    Column("revoked_at", Double, nullable=True),
    Index("ix_sluice_keys_key_hash", "key_hash", unique=True),
    Index("ix_sluice_keys_tenant", "tenant"),
)

# One row per settled call: who, what model, tokens, USD.
spend_ledger = Table(
    "sluice_spend_ledger",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("ts", Double, nullable=False),  # epoch seconds, UTC
    Column("request_id", String(128), nullable=False),
    Column("tenant", String(255), nullable=False),
    Column("key_id", String(64), nullable=True),
    Column("team", String(255), nullable=True),
    Column("user_id", String(255), nullable=True),
    Column("feature", String(255), nullable=True),
    Column("model", String(255), nullable=False),
    Column("deployment", String(255), nullable=True),
    Column("input_tokens", Integer, nullable=False),
    Column("output_tokens", Integer, nullable=False),
    Column("cost_usd", Numeric(20, 10), nullable=True),  # NULL: unknown price
    # The work a row charges, for work that must be charged exactly once whatever crashes
    # (a batch item `batch:<id>:<idx>`, an async job `job:<id>`; sluice.state.charges);
    # NULL for calls answered on the request path. Unique: a second write is a no-op.
    Column("once_key", String(160), nullable=True),
    Index("ix_sluice_spend_ledger_ts", "ts"),
    Index("ux_sluice_spend_ledger_once", "once_key", unique=True),
    Index("ix_sluice_spend_ledger_tenant_ts", "tenant", "ts"),
)

# --- call records -------------------------------------------------------------------------


class Money(TypeDecorator[Decimal]):
    """NUMERIC(20, 10) where the database has it; exact decimal text on SQLite, which would
    otherwise round money through floats."""

    impl = Numeric(20, 10, asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(40))
        return dialect.type_descriptor(Numeric(20, 10, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        return str(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return value if isinstance(value, Decimal) else Decimal(str(value))


# Every query filters on the time range and groups in Python; each extra index would cost
# every insert (measured: 13 -> 10 µs per row on SQLite with 7 indexes -> 2).
RECORDS_INDEXED = ("ts", "request_id")


def record_columns() -> list[Column[Any]]:
    """A column per `CallRecord` field plus a surrogate `id` (fresh objects per table)."""

    def s(name: str, length: int = 255) -> Column[Any]:
        return Column(name, String(length), nullable=True)

    return [
        Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
        Column("request_id", String(255), nullable=False),
        s("parent_request_id"),
        s("attempt_of"),
        Column("kind", String(16), nullable=False),
        s("trace_id"),
        Column("ts", Double(), nullable=False),
        s("tenant"),
        s("key_id"),
        s("user_id"),
        s("feature"),
        s("session"),
        s("route"),
        Column("model_requested", String(255), nullable=False),
        s("deployment"),
        s("provider"),
        s("upstream_model"),
        Column("attempts", Integer(), nullable=False),
        Column("fallback_triggered", Boolean(), nullable=False),
        s("cache_status", 16),
        Column("cache_similarity", Double(), nullable=True),
        Column("stream", Boolean(), nullable=False),
        Column("input_tokens", BigInteger(), nullable=False),
        Column("output_tokens", BigInteger(), nullable=False),
        Column("cache_read_tokens", BigInteger(), nullable=False),
        Column("cache_write_tokens", BigInteger(), nullable=False),
        Column("cost_usd", Money(), nullable=True),
        Column("cost_saved_usd", Money(), nullable=True),
        Column("latency_ms", Double(), nullable=False),
        Column("ttft_ms", Double(), nullable=True),
        s("finish_reason", 32),
        Column("status", Integer(), nullable=False),
        s("error_type", 64),
        s("system_prompt_hash", 64),
        Column("input_preview", Text(), nullable=True),
        Column("output_preview", Text(), nullable=True),
        Column("route_decision", Text(), nullable=True),
        Column("routing_saved_usd", Money(), nullable=True),
        s("usage_source", 16),  # r0002: "provider" | "estimated" (a stream cut before its usage)
        Column("cache_score", Double(), nullable=True),  # r0003: semantic cache verifier score
        s("cache_decision", 120),  # r0003: the semantic cache's decision in words
        s("guards", 1024),  # r0004: guard verdicts, "name=verdict[:rule], ..." (guardrails)
        # r0005: grounded chat (retrieval): context tokens, their cost, sources, citation check
        Column("retrieval_tokens", BigInteger(), nullable=True),
        Column("retrieval_cost_usd", Money(), nullable=True),
        Column("retrieval_sources", Integer(), nullable=True),
        s("grounded", 32),
    ]


def records_table(name: str = RECORDS_TABLE) -> Table:
    """The call-record table called `name` (in a metadata of its own)."""
    return Table(
        name,
        MetaData(),
        *record_columns(),
        *(Index(f"ix_{name}_{column}", column) for column in RECORDS_INDEXED),
    )


# --- semantic cache -----------------------------------------------------------------------


def semantic_table(name: str = SEMANTIC_TABLE) -> Table:
    """Semantic-cache entries durable beyond one replica (in a metadata of its own)."""
    return Table(
        name,
        MetaData(),
        Column("id", String(64), primary_key=True),
        Column("tenant", String(255), nullable=False),
        Column("route", String(255), nullable=False),
        Column("scope", String(96), nullable=False),
        Column("question", Text(), nullable=False),
        Column("vector", LargeBinary(), nullable=False),  # float32, little-endian
        Column("response", LargeBinary(), nullable=False),  # encode_response_blob
        Column("created_at", Double(), nullable=False),
        Column("expires_at", Double(), nullable=False),
        Index(f"ix_{name}_expires_at", "expires_at"),
    )


# --- exact-cache mirror (a SQLite file of its own) -----------------------------------------

cache_entries = Table(
    CACHE_MIRROR_TABLE,
    MetaData(),
    Column("key", Text(), primary_key=True),
    Column("value", LargeBinary(), nullable=False),
    Column("expires_at", Double(), nullable=False),  # wall-clock epoch seconds
    Column("tags", Text(), nullable=False),  # JSON list
)


# --- evaluation (sluice.eval; Alembic branch `eval`) --------------------------------------
# All in the records store's database. Answer texts are cut before they are stored.

FEEDBACK_TABLE = "sluice_feedback"
EVAL_RESULTS_TABLE = "sluice_eval_results"
SHADOW_PAIRS_TABLE = "sluice_shadow_pairs"
ONLINE_SCORES_TABLE = "sluice_online_scores"
eval_metadata = MetaData()

feedback = Table(  # one row per (tenant, call): sending again replaces it
    FEEDBACK_TABLE,
    eval_metadata,
    Column("tenant", String(255), primary_key=True),
    Column("request_id", String(128), primary_key=True),
    Column("key_id", String(255), nullable=True),
    Column("score", Double(), nullable=False),
    Column("thumbs", String(8), nullable=True),
    Column("comment", Text(), nullable=True),
    Column("tags", Text(), nullable=False),  # a JSON array
    Column("ts", Double(), nullable=False),
    Index(f"ix_{FEEDBACK_TABLE}_ts", "ts"),
)

eval_results = Table(  # one row per (run, target, item) of `sluice eval run --store`
    EVAL_RESULTS_TABLE,
    eval_metadata,
    Column("run_id", String(64), primary_key=True),
    Column("target", String(255), primary_key=True),
    Column("item_id", String(255), primary_key=True),
    Column("dataset", String(512), nullable=False),
    Column("ts", Double(), nullable=False),
    Column("score", Double(), nullable=False),
    Column("passed", Boolean(), nullable=False),
    Column("scores", Text(), nullable=False),  # JSON object
    Column("request_id", String(128), nullable=False),
    Column("latency_ms", Double(), nullable=False),
    Column("cost_usd", String(40), nullable=True),  # exact decimal text
    Column("cost_source", String(16), nullable=False),
    Column("error", Text(), nullable=True),
    Column("output", Text(), nullable=True),
    Index(f"ix_{EVAL_RESULTS_TABLE}_ts", "ts"),
)

shadow_pairs = Table(  # production vs candidate answer of one mirrored call
    SHADOW_PAIRS_TABLE,
    eval_metadata,
    Column("request_id", String(128), primary_key=True),
    Column("candidate", String(255), primary_key=True),
    Column("route", String(255), nullable=False),
    Column("tenant", String(255), nullable=True),  # the caller's
    Column("production_model", String(255), nullable=True),
    Column("candidate_request_id", String(128), nullable=False),
    Column("ts", Double(), nullable=False),
    Column("question", Text(), nullable=False),
    Column("production", Text(), nullable=False),
    Column("candidate_output", Text(), nullable=True),
    Column("production_ms", Double(), nullable=False),
    Column("candidate_ms", Double(), nullable=False),
    Column("error", Text(), nullable=True),
    Index(f"ix_{SHADOW_PAIRS_TABLE}_ts", "ts"),
)

online_scores = Table(  # one online judgement of a live call
    ONLINE_SCORES_TABLE,
    eval_metadata,
    Column("request_id", String(128), primary_key=True),
    Column("route", String(255), nullable=False),
    Column("model", String(255), nullable=False),
    Column("ts", Double(), nullable=False),
    Column("score", Double(), nullable=False),  # 0-1
    Column("verdict", Integer(), nullable=False),  # 1-5
    Column("reason", Text(), nullable=False),
    Column("judge_request_id", String(128), nullable=False),
    Column("tenant", String(255), nullable=True),  # the judged call's (e0002)
    Index(f"ix_{ONLINE_SCORES_TABLE}_ts", "ts"),
)

# --- retrieval: vector stores (OpenAI's Vector Stores API), their files, chunks, batches -----

# `version` moves on every change of a store's chunks or attributes: a replica whose index
# holds another version reloads that store before searching it.
vector_stores = Table(
    "sluice_vector_stores",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("tenant", String(255), nullable=False),
    Column("name", Text(), nullable=True),
    Column("meta", Text(), nullable=False),  # JSON: OpenAI `metadata`
    Column("expires_after", Text(), nullable=True),  # JSON
    Column("created_at", Double(), nullable=False),
    Column("last_active_at", Double(), nullable=False),
    Column("version", BigInteger(), nullable=False),
    Column("expired_at", Double(), nullable=True),  # set once when expires_after ran out (v0002)
    Index("ix_sluice_vector_stores_tenant", "tenant", "created_at"),
)

vector_store_files = Table(
    "sluice_vector_store_files",
    metadata,
    Column("store_id", String(64), primary_key=True),
    Column("file_id", String(128), primary_key=True),
    Column("tenant", String(255), nullable=False),
    Column("filename", Text(), nullable=False),
    Column("status", String(16), nullable=False),  # in_progress | completed | failed | cancelled
    Column("last_error", Text(), nullable=True),  # JSON {code, message}
    Column("attributes", Text(), nullable=False),  # JSON
    Column("chunking", Text(), nullable=False),  # JSON: the chunking_strategy used
    Column("batch_id", String(64), nullable=True),
    Column("usage_bytes", BigInteger(), nullable=False),
    Column("created_at", Double(), nullable=False),
)

vector_store_chunks = Table(
    "sluice_vector_store_chunks",
    metadata,
    Column("id", String(160), primary_key=True),
    Column("store_id", String(64), nullable=False),
    Column("file_id", String(128), nullable=False),
    Column("seq", Integer(), nullable=False),
    Column("text", Text(), nullable=False),
    Column("heading", Text(), nullable=False),
    Column("tokens", Integer(), nullable=False),
    Column("sentences", Text(), nullable=False),  # JSON list
    Column("vector", LargeBinary(), nullable=False),  # float32 little-endian
    Index("ix_sluice_vector_store_chunks_store", "store_id", "file_id"),
)

vector_store_batches = Table(
    "sluice_vector_store_batches",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("store_id", String(64), nullable=False),
    Column("tenant", String(255), nullable=False),
    Column("file_ids", Text(), nullable=False),  # JSON list
    Column("cancelled", Boolean(), nullable=False),
    Column("created_at", Double(), nullable=False),
)

# --- uploaded files (sluice.files) ---------------------------------------------------------

# One row per uploaded file, keyed by (tenant, id): another tenant's id is simply not found.
# `content` holds the bytes on a shared database (PostgreSQL: every replica reads them); on
# SQLite it is NULL and the bytes live in a file under `state_dir` (`files.blob_dir`).
files = Table(
    "sluice_files",
    metadata,
    Column("tenant", String(255), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("filename", String(512), nullable=False),
    Column("purpose", String(32), nullable=False),
    Column("bytes", BigInteger(), nullable=False),
    Column("created_at", Double(), nullable=False),
    Column("status", String(16), nullable=False),
    Column("content", LargeBinary(), nullable=True),
    Index("ix_sluice_files_tenant_created", "tenant", "created_at"),
)

# --- batches (sluice.batch) ----------------------------------------------------------------

# One row per batch (OpenAI Batches and Anthropic Message Batches alike; `wire` says which
# shape the caller sees). `identity` is the creator's resolved identity (JSON) so items run
# as the caller, with its budgets; counts are recomputed from the items, never incremented.
batches = Table(
    "sluice_batches",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("tenant", String(255), nullable=False),
    Column("wire", String(16), nullable=False),  # openai | anthropic
    Column("mode", String(16), nullable=False),  # run | forward
    Column("endpoint", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("input_file_id", String(64), nullable=True),
    Column("output_file_id", String(64), nullable=True),
    Column("error_file_id", String(64), nullable=True),
    Column("completion_window", String(16), nullable=False),
    Column("created_at", Double(), nullable=False),
    Column("expires_at", Double(), nullable=False),
    Column("times", JSON, nullable=False),  # {"in_progress_at": ..., "completed_at": ...}
    Column("total", Integer(), nullable=False),
    Column("meta", JSON, nullable=False),  # the caller's `metadata`
    Column("errors", JSON, nullable=True),  # validation errors (OpenAI `errors.data`)
    Column("identity", JSON, nullable=False),
    Column("provider_batch", JSON, nullable=True),  # forward mode: the provider's batch
    Index("ix_sluice_batches_tenant_created", "tenant", "created_at"),
    Index("ix_sluice_batches_status", "status"),
)

# One row per batch item. (batch_id, idx) is the key and (batch_id, custom_id) unique: a
# result is written once, by the UPDATE that moves the item from `running` to a final
# state (at-least-once execution, exactly-once results). `lease_until` lets a dead
# worker's items be claimed again.
batch_items = Table(
    "sluice_batch_items",
    metadata,
    Column("batch_id", String(64), primary_key=True),
    Column("idx", Integer(), primary_key=True),
    Column("custom_id", String(512), nullable=False),
    Column("body", Text(), nullable=False),  # the request body (JSON)
    Column("state", String(16), nullable=False),  # pending running succeeded errored ...
    Column("lease_until", Double(), nullable=True),
    Column("attempts", Integer(), nullable=False),
    Column("result", Text(), nullable=True),  # the output line's `response` / `result` (JSON)
    Column("finished_at", Double(), nullable=True),
    # The item's spend-ledger row (JSON), written in the transaction that writes its result
    # and cleared once the ledger has it (sluice.state.charges): result and charge together.
    Column("charge", Text(), nullable=True),
    Index("ux_sluice_batch_items_custom", "batch_id", "custom_id", unique=True),
    Index("ix_sluice_batch_items_state", "state", "batch_id"),
    Index(
        "ix_sluice_batch_items_charge",
        "batch_id",
        sqlite_where=text("charge IS NOT NULL"),
        postgresql_where=text("charge IS NOT NULL"),
    ),
)


# --- embedded work queue (sluice.queue.sqlite; the shared queue is pgqueuer's own tables) -

queue_items = Table(
    "sluice_queue",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("kind", String(64), nullable=False),
    Column("payload", Text(), nullable=False),  # JSON object
    Column("priority", Integer(), nullable=False),
    Column("dedupe_key", String(200), nullable=True, unique=True),
    Column("group_id", String(100), nullable=True),
    Column("status", String(8), nullable=False),  # queued | picked
    Column("worker", String(32), nullable=True),
    Column("lease_until", Double(), nullable=False),  # picked: taken back after this
    Column("attempts", Integer(), nullable=False),
    Column("enqueued_at", Double(), nullable=False),
    Index("ix_sluice_queue_pick", "status", "priority", "enqueued_at"),
    Index("ix_sluice_queue_group", "group_id"),
)


# --- async jobs (sluice.jobs) -----------------------------------------------------------

jobs = Table(
    "sluice_jobs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant", String(200), nullable=False),
    Column("key_id", String(64), nullable=True),  # whose key runs it (re-checked at run time)
    Column("status", String(16), nullable=False),  # queued|running|succeeded|failed|cancelled
    Column("format", String(16), nullable=False),  # openai | anthropic
    Column("request", Text(), nullable=False),  # the chat body (JSON)
    Column("metadata", Text(), nullable=True),  # caller's JSON object
    Column("webhook_url", Text(), nullable=True),
    Column("http_status", Integer(), nullable=True),
    Column("result", Text(), nullable=True),  # the answer body (or error body) as JSON
    Column("created_at", Double(), nullable=False),
    Column("started_at", Double(), nullable=True),
    Column("finished_at", Double(), nullable=True),
    Column("attempts", Integer(), nullable=False),
    # The job's spend-ledger row (JSON), written with its result, cleared once the ledger
    # has it (sluice.state.charges).
    Column("charge", Text(), nullable=True),
    Index("ix_sluice_jobs_tenant_created", "tenant", "created_at"),
    Index(
        "ix_sluice_jobs_charge",
        "id",
        sqlite_where=text("charge IS NOT NULL"),
        postgresql_where=text("charge IS NOT NULL"),
    ),
)

job_deliveries = Table(
    "sluice_job_deliveries",
    metadata,
    Column("id", Integer(), primary_key=True, autoincrement=True),
    Column("job_id", String(40), nullable=False),
    Column("attempt", Integer(), nullable=False),
    Column("at", Double(), nullable=False),
    Column("status_code", Integer(), nullable=True),
    Column("error", String(300), nullable=True),
    Column("duration_ms", Double(), nullable=False),
    Index("ix_sluice_job_deliveries_job", "job_id"),
)
