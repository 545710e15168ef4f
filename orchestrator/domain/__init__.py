"""The pure core: run state, the lifecycle table, decide and evolve. Standard library and `schemas` only."""
