"""The four public API surfaces, each a mapping of the same read models (never a second store)."""
