"""Typed queries over the read models: every list, get and tree the API serves."""
