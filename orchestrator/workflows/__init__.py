"""Workflow runs, the pure parts: resolving step inputs against the run's context and earlier outputs."""
