"""Prometheus metrics: what every API replica reads alike from PostgreSQL at scrape time (`snapshot`,
`collector`), and what only one process can know (`process`: append latency, open SSE streams)."""
