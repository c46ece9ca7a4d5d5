"""The durable work queue behind batches and async jobs (embedded SQLite; PostgreSQL library)."""
