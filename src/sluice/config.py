"""Typed configuration, loaded from one YAML file in two phases.

Phase 1: YAML → frozen pydantic models with unknown keys forbidden; errors name the key
path and the line it is on. Phase 2 (`sluice.runtime`) resolves names into live objects.

Strings may reference the environment: `${NAME}` or `${NAME:-default}`. API keys are
never in the file: a provider names the environment variable that holds its key.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator
from yarl import URL

from sluice.batch.config import BatchConfig
from sluice.cache.config import ExactRouteConfig, PromptCaching
from sluice.cache.semantic.config import SemanticCacheConfig
from sluice.config_base import Frozen
from sluice.context.config import TokenPolicy
from sluice.edge.config import EdgeConfig
from sluice.embed.config import EmbedConfig
from sluice.files.config import FilesConfig
from sluice.frontends.config import EndpointsConfig
from sluice.governance.config import GovernanceConfig
from sluice.governance.limits_config import LimitsConfig
from sluice.guardrails.config import GuardrailsConfig
from sluice.jobs.config import JobsConfig
from sluice.observe.alert_config import RulesConfig
from sluice.observe.tracing import TracingConfig
from sluice.queue.config import QueueSettings
from sluice.retrieval.config import RetrievalConfig
from sluice.routing.config import RouteConfig
from sluice.state.paths import default_state_dir, resolve_file, resolve_url

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

DEFAULT_SIM_URL = "http://127.0.0.1:8089"


class ConfigError(Exception):
    """A config file that cannot be used; the message names the key and line."""


_Frozen = Frozen


class ServerConfig(_Frozen):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    max_body_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    # Seconds to let in-flight requests finish on shutdown.
    drain_timeout_s: float = Field(default=30.0, ge=0)
    access_log: bool = False
    # Serve the admin API (/admin/keys) on its own port instead of the data-plane one.
    admin_port: int | None = Field(default=None, ge=0, le=65535)
    admin_host: str = "127.0.0.1"
    edge: EdgeConfig = EdgeConfig()  # read timeouts, connection cap, JSON depth (sluice.edge)


_NEVER_FORWARDED = ("authorization", "x-api-key", "cookie", "proxy-authorization")


class _ProviderBase(_Frozen):
    api_key_env: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    max_connections: int = Field(default=256, gt=0)
    # aiohttp: the library client (proxies from HTTP(S)_PROXY/NO_PROXY); lean: Sluice's own
    # HTTP/1.1 pool, less CPU per call, no proxies; pyreqwest: Rust's reqwest (extra
    # `reqwest`), proxies from the environment (sluice.providers.http).
    transport: Literal["aiohttp", "lean", "pyreqwest"] = "aiohttp"
    # Client request headers passed on upstream: exact names or `prefix*` (case-insensitive).
    forward_headers: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _no_credentials_forwarded(self) -> _ProviderBase:
        for pattern in self.forward_headers:
            stem = pattern.lower().rstrip("*")
            if any(name.startswith(stem) for name in _NEVER_FORWARDED):
                raise ValueError(f"forward_headers may not include credentials ({pattern!r})")
        return self


class OpenAIProviderConfig(_ProviderBase):
    kind: Literal["openai"]
    api_base: str = "https://api.openai.com/v1"
    # api.openai.com's reasoning models (o-series, gpt-5) only accept max_completion_tokens;
    # many OpenAI-compatible servers only know max_tokens. `auto`: chosen per model family
    # and by the name the caller used (providers/openai.py `max_tokens_param`).
    max_tokens_param: Literal["auto", "max_tokens", "max_completion_tokens"] = "auto"


class AnthropicProviderConfig(_ProviderBase):
    kind: Literal["anthropic"]
    api_base: str = "https://api.anthropic.com"
    anthropic_version: str = "2023-06-01"
    # JSON-schema answers: "native" sends output_config.format (structured outputs);
    # "prompt" puts the schema in the system prompt (works with every model).
    structured_output: Literal["prompt", "native"] = "prompt"
    # Add cache_control breakpoints to long stable prompt prefixes
    # (see sluice.providers.prompt_cache).
    prompt_caching: PromptCaching = "auto"


ProviderConfig = Annotated[
    OpenAIProviderConfig | AnthropicProviderConfig, Field(discriminator="kind")
]


class PriceConfig(_Frozen):
    """USD per million tokens."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cache_read: float | None = Field(default=None, ge=0)
    cache_write: float | None = Field(default=None, ge=0)


class TimeoutConfig(_Frozen):
    connect_s: float = Field(default=10.0, gt=0)
    ttft_s: float = Field(default=120.0, gt=0)  # time to the first byte of the answer
    idle_s: float = Field(default=60.0, gt=0)  # longest gap between stream chunks
    total_s: float = Field(default=600.0, gt=0)


class DeploymentConfig(_Frozen):
    id: str = Field(min_length=1)
    provider: str
    model: str = Field(min_length=1, description="model name sent upstream")
    serves: list[str] = Field(default_factory=list, description="public model names")
    price: PriceConfig | None = None
    timeouts: TimeoutConfig = TimeoutConfig()
    context_window: int | None = Field(default=None, gt=0)
    max_output_tokens: int | None = Field(default=None, gt=0)
    weight: float = Field(default=1.0, gt=0)  # share of traffic under weighted balancing
    max_concurrency: int | None = Field(default=None, gt=0)  # in-flight calls at most
    prompt_caching: PromptCaching | None = None  # None: the provider's setting
    # Smallest prompt prefix the provider caches; None: the price table's value for the model.
    min_cache_tokens: int | None = Field(default=None, gt=0)

    @property
    def public_names(self) -> list[str]:
        return self.serves or [self.model]


LoadBalancing = Literal["weighted", "least_inflight", "latency_ewma"]


class RetryConfig(_Frozen):
    max_retries: int = Field(default=2, ge=0, le=10)  # per deployment, after the first try
    base_s: float = Field(default=0.25, gt=0)
    cap_s: float = Field(default=8.0, gt=0)
    # Longest provider retry-after Sluice waits out; longer ones move to the next deployment.
    max_retry_after_s: float = Field(default=20.0, ge=0)
    # Retries ≤ 50% of requests: at a 30% fault rate recovering every call takes ~0.43
    # retries per request (0.3 + 0.09 + ...), which 20% starved; a total outage still costs
    # at most 1.5 calls per request on a deployment.
    budget_ratio: float = Field(default=0.5, ge=0)  # retries ≤ 50% of requests ...
    budget_window_s: float = Field(default=60.0, gt=0)  # ... over this sliding window
    budget_min_retries: int = Field(default=10, ge=0)  # always allowed per window


class BreakerConfig(_Frozen):
    enabled: bool = True
    window_s: float = Field(default=60.0, gt=0)
    min_calls: int = Field(default=10, ge=1)
    error_rate: float = Field(default=0.5, gt=0, le=1)
    consecutive_failures: int = Field(default=5, ge=1)
    open_s: float = Field(default=30.0, gt=0)
    half_open_probes: int = Field(default=1, ge=1)
    # Outlier detection (Envoy): at most this share of a model's deployments ejected at once
    # (one may always be) ...
    max_ejection_share: float = Field(default=0.5, ge=0, le=1)
    # ... and when less than this share of a plan's deployments is healthy, ejected ones are
    # tried anyway (after the healthy ones) instead of failing fast with 503. 0: never.
    panic_threshold: float = Field(default=0.5, ge=0, le=1)


class QueueConfig(_Frozen):
    """Backpressure when every deployment of a plan is at its concurrency cap."""

    max_waiting: int = Field(default=1000, ge=0)
    max_wait_s: float = Field(default=10.0, ge=0)


class AgentGuardConfig(_Frozen):
    """Limits for calls sharing `x-sluice-parent-request-id` (an agent loop)."""

    max_steps: int | None = Field(default=None, ge=1)
    max_cost_usd: float | None = Field(default=None, gt=0)
    ttl_s: float = Field(default=3600.0, gt=0)


class StructuredOutputConfig(_Frozen):
    # Re-asks with the validation errors before giving up with a 422.
    max_repairs: int = Field(default=2, ge=0, le=10)


class ReliabilityConfig(_Frozen):
    retry: RetryConfig = RetryConfig()
    structured_output: StructuredOutputConfig = StructuredOutputConfig()
    breaker: BreakerConfig = BreakerConfig()
    queue: QueueConfig = QueueConfig()
    load_balancing: LoadBalancing = "least_inflight"
    # Proactive throttling: a deployment whose provider reports remaining requests or
    # tokens at or below this share of its limit rests until the reported reset.
    throttle_headroom: float = Field(default=0.02, ge=0, lt=1)
    agent: AgentGuardConfig = AgentGuardConfig()


class DegradeConfig(_Frozen):
    """An answer to give when the whole plan failed, instead of an error."""

    message: str = Field(min_length=1)


class ModelPlanConfig(_Frozen):
    """How one public model is served: its deployments, then fallbacks, then degrade."""

    deployments: list[str] | None = None  # default: every deployment serving the name
    fallbacks: list[str] = Field(default_factory=list)  # other public models, in order
    load_balancing: LoadBalancing | None = None
    degrade: DegradeConfig | None = None
    policy: TokenPolicy = TokenPolicy()  # output caps, context strategy, sessions
    # A stream cut after its first byte continues on the next deployment of the plan.
    midstream_failover: bool = True


class RecordsConfig(_Frozen):
    """One record per call (and per extra attempt), written off the request path."""

    enabled: bool = True
    # SQLAlchemy URL: sqlite:///path.db (embedded default) or postgresql+psycopg://...;
    # null keeps records in metrics and logs only.
    store_url: str | None = "sqlite:///sluice.db"
    previews: bool = True  # PII-redacted, truncated input/output previews
    preview_chars: int = Field(default=200, ge=0)
    log_json: bool = False  # also one JSON line per call on the `sluice.calls` logger
    buffer: int = Field(default=10_000, ge=1)  # records waiting to be written; more are dropped
    # Local append-only spool (sluice.observe.spool): every record is in a file before its
    # answer goes out, replayed into the store after a crash. null: no spool.
    spool_dir: str | None = "sluice-spool"


class WebhookConfig(_Frozen):
    url: str
    secret_env: str | None = None  # the HMAC secret is read from this variable, never the file
    timeout_s: float = Field(default=5.0, gt=0)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        url = URL(value)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError("a webhook url must be http:// or https:// with a host")
        return value


class AlertsConfig(_Frozen):
    """Rules evaluated over the call records; notifications go to the log and webhooks."""

    enabled: bool = True
    interval_s: float = Field(default=30.0, gt=0)
    webhooks: list[WebhookConfig] = Field(default_factory=list)
    rules: RulesConfig = RulesConfig()


class ExactCacheConfig(_Frozen):
    """Answers stored by a hash of everything that changes them (see sluice.cache.key)."""

    enabled: bool = True
    ttl_s: float = Field(default=3600, gt=0)
    namespace: str = "v1"  # change it to drop every stored answer at once
    models: list[str] | None = None  # public model names to cache; None: every model
    cache_nondeterministic: bool = False  # also cache requests whose temperature is not 0
    cache_tool_results: bool = False  # also cache conversations that carry tool results
    # Per route (public model name): enabled, ttl_s, namespace overrides.
    routes: dict[str, ExactRouteConfig] = Field(default_factory=dict)
    # Keep entries this long past ttl_s, served (`x-sluice-cache: stale`) only when the
    # upstream plan fails; 0: off.
    stale_if_error_s: float = Field(default=0, ge=0)


class IdempotencyConfig(_Frozen):
    """`Idempotency-Key`: the first answer is stored and replayed to retries."""

    enabled: bool = True
    ttl_s: float = Field(default=86400, gt=0)  # how long a finished answer is replayed
    # A first call's claim is a lease of `lease_s`, renewed every lease_s/3 while the call
    # runs (at most `pending_ttl_s` in all): when its process dies, a retry on another
    # replica takes the key over within `lease_s` instead of waiting and getting a 409.
    lease_s: float = Field(default=6, gt=0)
    pending_ttl_s: float = Field(default=600, gt=0)
    max_wait_s: float = Field(default=60, ge=0)  # a duplicate waits this long for the first
    poll_interval_s: float = Field(default=0.05, gt=0)  # the longest pause between looks


class CacheConfig(_Frozen):
    # memory: this process only; redis: shared by every replica (redis_url).
    backend: Literal["memory", "redis"] = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "sluice:"
    max_entries: int = Field(default=10_000, gt=0)  # memory backend bounds
    max_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
    # Memory backend only: a SQLite file that keeps exact-cache entries across restarts.
    persist_path: str | None = None
    exact: ExactCacheConfig = ExactCacheConfig()
    idempotency: IdempotencyConfig = IdempotencyConfig()
    semantic: SemanticCacheConfig = SemanticCacheConfig()  # off unless enabled

    @model_validator(mode="after")
    def _persist_needs_memory(self) -> CacheConfig:
        if self.persist_path and self.backend != "memory":
            raise ValueError("persist_path works with the memory backend only (Redis persists)")
        return self


class ObservabilityConfig(_Frozen):
    records: RecordsConfig = RecordsConfig()
    tracing: TracingConfig = TracingConfig()  # OpenTelemetry, off by default
    alerts: AlertsConfig = AlertsConfig()
    metrics: bool = True  # GET /metrics in Prometheus format
    # /metrics and /v1/sluice/alerts need the admin key (Bearer), like /ui; without
    # SLUICE_ADMIN_KEY they answer loopback clients only. On by default: metrics name
    # routes, deployments and spend, which are not for anyone who can reach the port.
    # Prometheus sends the key with `authorization: {credentials: ...}` in its scrape config.
    metrics_auth: bool = True


class SluiceConfig(_Frozen):
    server: ServerConfig = ServerConfig()
    observability: ObservabilityConfig = ObservabilityConfig()
    cache: CacheConfig = CacheConfig()
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    deployments: list[DeploymentConfig] = Field(default_factory=list)
    models: dict[str, ModelPlanConfig] = Field(default_factory=dict)
    reliability: ReliabilityConfig = ReliabilityConfig()
    governance: GovernanceConfig = GovernanceConfig()  # virtual keys, auth, limits, budgets
    limits: LimitsConfig = LimitsConfig()  # rate limits and budgets (sluice.governance)
    # Sentence embedder shared by the semantic cache and semantic routing (sluice.embed).
    embedding: EmbedConfig = EmbedConfig()
    routes: dict[str, RouteConfig] = Field(default_factory=dict)  # see sluice.routing
    # /v1/responses (stored answers), /v1/embeddings (see sluice.frontends.config).
    endpoints: EndpointsConfig = EndpointsConfig()
    files: FilesConfig = FilesConfig()  # /v1/files (sluice.files)
    batch: BatchConfig = BatchConfig()  # /v1/batches, /v1/messages/batches (sluice.batch)
    # Vector stores and grounded chat (sluice.retrieval).
    retrieval: RetrievalConfig = RetrievalConfig()
    # Where relative SQLite paths (store URLs, persist_path) live; None: $SLUICE_STATE_DIR,
    # else $XDG_DATA_HOME/sluice, else ~/.local/share/sluice (see sluice.state.paths).
    state_dir: str | None = None
    # The durable work queue of batches and async jobs (see sluice.queue).
    queue: QueueSettings = QueueSettings()
    # Async jobs (`/v1/sluice/jobs`) and their signed webhooks (see sluice.jobs).
    jobs: JobsConfig = JobsConfig()
    # Input limits, PII masking, prompt-injection detection, output checks (sluice.guardrails).
    guardrails: GuardrailsConfig = GuardrailsConfig()

    @model_validator(mode="after")
    def _check_routes(self) -> SluiceConfig:
        served = {name for d in self.deployments for name in d.public_names} | set(self.models)
        for name, route in self.routes.items():
            if name in served:
                raise ValueError(f"routes.{name}: the name is already a served model")
            for target in route.targets:
                if target not in served:
                    raise ValueError(f"routes.{name}: target {target!r} is not a served model")
            if route.classifier is not None and route.classifier.model not in served:
                raise ValueError(
                    f"routes.{name}: classifier model {route.classifier.model!r} is not served"
                )
            # Live evaluation (sluice.eval.live): a candidate may be a model or another route.
            if route.shadow is not None and route.shadow.candidate not in served | set(self.routes):
                raise ValueError(
                    f"routes.{name}.shadow: candidate {route.shadow.candidate!r} is not a "
                    "served model or route"
                )
            judge = route.online_eval.judge_model if route.online_eval is not None else None
            if judge is not None and judge not in served | set(self.routes):
                raise ValueError(
                    f"routes.{name}.online_eval: judge_model {judge!r} is not a served model "
                    "or route"
                )
        return self

    @model_validator(mode="after")
    def _check_guard_sets(self) -> SluiceConfig:
        """A guard set for a name nothing serves would never run: a typo must not switch
        the guards of a model off without a word."""
        served = {n for d in self.deployments for n in d.public_names} | set(self.models)
        for name in self.guardrails.models:
            if name not in served and name not in self.routes:
                raise ValueError(f"guardrails.models.{name}: no model or route has this name")
        for guards in (self.guardrails, *self.guardrails.models.values()):
            model = guards.injection.model
            if model is not None and model not in served:
                raise ValueError(f"guardrails injection.model {model!r} is not a served model")
        return self

    @model_validator(mode="after")
    def _check_plans(self) -> SluiceConfig:
        served = {name for d in self.deployments for name in d.public_names}
        ids = {d.id for d in self.deployments}
        for name, plan in self.models.items():
            for dep_id in plan.deployments or []:
                if dep_id not in ids:
                    raise ValueError(f"models.{name} names deployment {dep_id!r}, not defined")
            for fallback in plan.fallbacks:
                if fallback == name or fallback not in served:
                    raise ValueError(
                        f"models.{name}: fallback {fallback!r} must be another served model"
                    )
            if plan.deployments is None and name not in served:
                raise ValueError(f"models.{name}: no deployment serves this model")
        return self

    @model_validator(mode="after")
    def _check_references(self) -> SluiceConfig:
        seen: set[str] = set()
        for dep in self.deployments:
            if dep.provider not in self.providers:
                known = ", ".join(sorted(self.providers)) or "none"
                raise ValueError(
                    f"deployment {dep.id!r} names provider {dep.provider!r}, "
                    f"which is not defined (known: {known})"
                )
            if dep.id in seen:
                raise ValueError(f"deployment id {dep.id!r} is used twice")
            seen.add(dep.id)
        return self


# --- loading ---------------------------------------------------------------------------


def expand_env(value: Any, env: Mapping[str, str]) -> Any:
    """Replace `${NAME}` / `${NAME:-default}` in every string of a parsed YAML tree."""
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            found = env.get(name)
            if found is None or (found == "" and default is not None):
                if default is None:
                    raise ConfigError(f"environment variable {name} is not set")
                return default
            return found

        return _ENV_REF.sub(sub, value)
    if isinstance(value, dict):
        return {k: expand_env(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, env) for v in value]
    return value


def _line_of(root: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """1-based line of the YAML node at a pydantic error location (or its nearest parent)."""
    node, line = root, None
    for key in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == key), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int):
            node = node.value[key] if key < len(node.value) else None
        else:
            node = None
    return node.start_mark.line + 1 if node is not None else line


def _describe(err: ValidationError, root: yaml.Node | None, source: str) -> str:
    lines = [f"invalid config {source}:"]
    for item in err.errors():
        loc = tuple(p for p in item["loc"] if not _is_union_tag(p))
        path = ".".join(str(p) for p in loc) or "(top level)"
        line = _line_of(root, loc) if loc else None
        where = f" (line {line})" if line else ""
        msg = item["msg"].removeprefix("Value error, ")
        lines.append(f"  {path}{where}: {msg}")
    return "\n".join(lines)


def _is_union_tag(part: int | str) -> bool:
    return part in ("openai", "anthropic")


def parse_config(
    text: str, source: str = "<string>", env: Mapping[str, str] | None = None
) -> SluiceConfig:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML in {source}: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"invalid config {source}: the top level must be a mapping")
    data = expand_env(data, os.environ if env is None else env)
    try:
        config = SluiceConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, root, source)) from None
    return with_state_dir(config)


# Settings holding a SQLite URL or file path that is taken relative to `state_dir`.
_STATE_URLS = (
    ("observability", "records", "store_url"),
    ("governance", "store_url"),
    ("limits", "ledger", "store_url"),
    ("queue", "url"),
    ("jobs", "store_url"),
    ("retrieval", "store_url"),
    ("files", "store_url"),
    ("batch", "store_url"),
)
_STATE_FILES = (
    ("cache", "persist_path"),
    ("cache", "semantic", "persist_path"),
    ("files", "blob_dir"),
)


def with_state_dir(config: SluiceConfig) -> SluiceConfig:
    """The config with every relative SQLite path made absolute inside `state_dir`, so the
    server writes to the same place whatever directory it starts in."""
    base = Path(config.state_dir).expanduser() if config.state_dir else default_state_dir()
    out: Any = config
    for path in _STATE_URLS:
        out = _replace(out, path, lambda url: resolve_url(url, base) if url else url)
    for path in _STATE_FILES:
        out = _replace(out, path, lambda file: resolve_file(file, base) if file else file)
    return out  # type: ignore[no-any-return]


def _replace(model: Any, path: tuple[str, ...], fn: Any) -> Any:
    head, rest = path[0], path[1:]
    value = getattr(model, head)
    new = _replace(value, rest, fn) if rest else fn(value)
    return model if new == value else model.model_copy(update={head: new})


def load_config(path: str | Path) -> SluiceConfig:
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config {file}: {exc.strerror}") from exc
    return parse_config(text, str(file))


def default_config_text() -> str:
    """The built-in config: the simulator-only example shipped with the package."""
    return (Path(__file__).parent / "default_config.yaml").read_text(encoding="utf-8")


def default_config(env: Mapping[str, str] | None = None) -> SluiceConfig:
    return parse_config(default_config_text(), "<built-in default: examples/sim.yaml>", env)
