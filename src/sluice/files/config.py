"""`FilesConfig`: where uploaded files live and how large they may be (a leaf: core only)."""

from __future__ import annotations

from pydantic import Field

from sluice.config_base import Frozen


class FilesConfig(Frozen):
    """`/v1/files`. Metadata in `store_url` (SQLite embedded, PostgreSQL shared by replicas).
    On SQLite the bytes are files under `blob_dir` (inside `state_dir` when relative); on
    PostgreSQL they are stored in the database, so every replica can serve them."""

    enabled: bool = True
    store_url: str = "sqlite:///sluice.db"
    blob_dir: str = "files"
    # OpenAI's limit for a batch input file is 200 MB; an upload is held in memory once.
    max_bytes: int = Field(default=100 * 1024 * 1024, gt=0)
    max_filename_chars: int = Field(default=255, ge=1, le=512)
