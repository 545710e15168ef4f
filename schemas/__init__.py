"""Pydantic contracts shared by the orchestrator and the workers (a leaf package)."""
