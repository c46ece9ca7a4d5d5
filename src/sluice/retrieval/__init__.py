"""Retrieval: knowledge collections behind the OpenAI Vector Stores API."""
