"""Governance: virtual keys, tenants, rate limits and budgets."""
