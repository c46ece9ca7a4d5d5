"""Semantic cache: answer a request whose meaning matches a stored one.

- `index.VectorIndex`: exact in-memory cosine search per scope, LRU-bounded, with expiry.
- `guard.contrast`: refuses a match when two questions differ in a number, date, entity,
  negation or direction that cosine similarity alone misses.
"""
