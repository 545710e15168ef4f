"""The taxonomy build as pure computation: embed texts, cluster them into a tree, label its nodes.

No I/O here but the optional remote embedder's HTTP call; the job (workers.jobs.taxonomy_build) reads the
records, calls these, and stores what they return.
"""
