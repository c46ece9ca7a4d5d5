"""Batches: OpenAI Batches and Anthropic Message Batches, run through Sluice or forwarded."""
