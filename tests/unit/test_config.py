"""Config: typed, env-expanded, errors that name the key and the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from sluice.config import ConfigError, default_config_text, load_config, parse_config

ROOT = Path(__file__).parent.parent.parent


def test_builtin_default_is_examples_sim_yaml() -> None:
    assert default_config_text() == (ROOT / "examples" / "sim.yaml").read_text()


def test_shipped_local_llm_config_is_examples_local_llm_yaml() -> None:
    shipped = ROOT / "src" / "sluice" / "localmodel" / "local-llm.yaml"
    assert shipped.read_text() == (ROOT / "examples" / "local-llm.yaml").read_text()


@pytest.mark.parametrize(
    "name", ["sim.yaml", "providers.yaml", "local-openai-compatible.yaml", "local-llm.yaml"]
)
def test_examples_load(name: str) -> None:
    config = load_config(ROOT / "examples" / name)
    assert config.deployments
    for dep in config.deployments:
        assert dep.provider in config.providers


def test_env_references_and_defaults() -> None:
    text = "providers:\n  p: {kind: openai, api_base: '${BASE:-http://x}/v1'}\n"
    assert parse_config(text, env={}).providers["p"].api_base == "http://x/v1"
    assert parse_config(text, env={"BASE": "http://y"}).providers["p"].api_base == "http://y/v1"
    with pytest.raises(ConfigError, match="MISSING is not set"):
        parse_config("server: {host: '${MISSING}'}", env={})


def test_errors_name_key_and_line() -> None:
    text = """providers:
  p:
    kind: openai
deployments:
  - id: a
    provider: p
    model: m
    price:
      input: -1
      output: 1
  - id: b
    provider: p
    model: m
    bogus: true
"""
    with pytest.raises(ConfigError) as info:
        parse_config(text, "sluice.yaml")
    message = str(info.value)
    assert "deployments.0.price.input (line 9)" in message
    assert "deployments.1.bogus (line 14)" in message
    assert "sluice.yaml" in message


def test_unknown_provider_and_duplicate_ids_are_refused() -> None:
    with pytest.raises(ConfigError, match="names provider 'nope'"):
        parse_config("deployments:\n  - {id: a, provider: nope, model: m}\n")
    text = (
        "providers: {p: {kind: anthropic}}\n"
        "deployments:\n  - {id: a, provider: p, model: m}\n  - {id: a, provider: p, model: n}\n"
    )
    with pytest.raises(ConfigError, match="used twice"):
        parse_config(text)


def test_unknown_provider_kind_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"providers\.p"):
        parse_config("providers: {p: {kind: cohere}}\n")


def test_credentials_can_never_be_forwarded() -> None:
    for pattern in ("authorization", "x-api-*", "*"):
        with pytest.raises(ConfigError, match="credentials"):
            parse_config(f"providers: {{p: {{kind: openai, forward_headers: ['{pattern}']}}}}\n")


def test_invalid_yaml_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="invalid YAML"):
        parse_config("server: [unclosed")
    with pytest.raises(ConfigError, match="mapping"):
        parse_config("- a\n- b\n")


def test_a_summary_larger_than_the_input_budget_is_a_config_error() -> None:
    text = (
        "models:\n  gpt-4o-mini:\n    policy:\n      context:\n        strategy: summarize\n"
        "        max_input_tokens: 400\n        summary_max_tokens: 512\n"
    )
    with pytest.raises(ConfigError, match="summary_max_tokens"):
        parse_config(text, "inline")
