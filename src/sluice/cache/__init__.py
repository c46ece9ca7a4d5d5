"""Response caching and idempotency: stages that can answer without calling upstream.

- `key.cache_key`: a stable digest of the answer-relevant parts of a request.
- `backends`: where entries live (`MemoryBackend`, `RedisBackend`) and the stored blob format.
- `exact.ExactCacheStage`: an identical deterministic request gets the stored answer.
- `idempotency.IdempotencyStage`: a retried call with the same `Idempotency-Key` gets the
  first call's answer, and concurrent duplicates make one upstream call.
"""
