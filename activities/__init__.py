"""All I/O of the engine: the PostgreSQL event store, read models and the outbox."""
