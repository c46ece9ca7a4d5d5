"""Config phase 2: resolve names into live objects (providers, deployments, model index)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sluice.config import SluiceConfig
from sluice.errors import ModelNotFoundError
from sluice.providers.base import Deployment, Provider
from sluice.providers.registry import build_provider


@dataclass(slots=True)
class Runtime:
    config: SluiceConfig
    providers: dict[str, Provider]
    deployments: dict[str, Deployment]
    by_model: dict[str, list[Deployment]] = field(default_factory=dict)

    @classmethod
    def build(cls, config: SluiceConfig) -> Runtime:
        providers = {name: build_provider(name, cfg) for name, cfg in config.providers.items()}
        deployments = {d.id: Deployment.from_config(d) for d in config.deployments}
        by_model: dict[str, list[Deployment]] = {}
        for dep in deployments.values():
            for name in dep.public_names:
                by_model.setdefault(name, []).append(dep)
        return cls(config, providers, deployments, by_model)

    def deployments_for(self, model: str) -> list[Deployment]:
        found = self.by_model.get(model)
        if not found:
            raise ModelNotFoundError(
                f"The model '{_shown(model)}' does not exist or is not served by this gateway",
                param="model",
            )
        return found

    def provider_kind(self, dep: Deployment) -> str:
        return self.config.providers[dep.provider].kind

    def provider_for(self, dep: Deployment) -> Provider:
        return self.providers[dep.provider]

    async def close(self) -> None:
        for provider in self.providers.values():
            await provider.close()


def _shown(name: str) -> str:
    """A caller's model name as an error message quotes it: at most 100 characters."""
    return name if len(name) <= 100 else name[:100] + "..."
