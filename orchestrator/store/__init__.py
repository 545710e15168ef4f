"""PostgreSQL storage: tables, engine, event store, outbox, keys."""
