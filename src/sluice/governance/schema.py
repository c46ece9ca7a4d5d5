"""The governance tables, defined once in `sluice.state.tables` and named here for the code
that queries them. The `governance` branch of `sluice.state.migrations` creates them."""

from __future__ import annotations

from sluice.state.tables import keys, metadata, spend_ledger

__all__ = ["keys", "metadata", "spend_ledger"]
