"""Semantic cache: answer a request whose meaning matches a stored one.

- `config.SemanticCacheConfig`: the `cache.semantic` section.
- `index.VectorIndex`: exact in-memory cosine search per scope, LRU-bounded, with expiry.
- `guard.contrast`: refuses a match when two questions differ in a number, date, entity,
  negation or direction that cosine similarity alone misses.
- `scope`: which requests may share answers (tenant, route, prompt, tools, earlier turns).
- `catalog.SemanticCatalog`: one replica's entries (index + questions + answers).
- `store`: where entries persist (memory, SQLite, PostgreSQL with LISTEN/NOTIFY).
- `stage.SemanticCacheStage`: the pipeline stage, right after the exact cache.
"""
