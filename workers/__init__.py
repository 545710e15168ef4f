"""Celery workers: the task adapter, the job context, and one module per job kind."""
