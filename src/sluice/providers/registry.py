"""Provider kind → adapter class. Adding a provider kind is one module and one line here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sluice.config import ProviderConfig
from sluice.providers.anthropic import AnthropicProvider
from sluice.providers.base import Provider
from sluice.providers.openai import OpenAIProvider

PROVIDER_KINDS: dict[str, Callable[[str, Any], Provider]] = {
    "openai": OpenAIProvider,
    "anthropic": AnthropicProvider,
}


def build_provider(name: str, cfg: ProviderConfig) -> Provider:
    return PROVIDER_KINDS[cfg.kind](name, cfg)
