"""Dataset work without I/O of its own: the chunk reader, line parsing, and the built-in dataset tasks."""
