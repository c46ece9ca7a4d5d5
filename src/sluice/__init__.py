"""Sluice: a production control layer for LLM APIs."""

__version__ = "0.1.0"
