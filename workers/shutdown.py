"""Turns a pool child's SIGTERM into an exception while a run executes.

At the end of a soft shutdown Celery terminates its pool children and re-queues their messages; the
re-queued message is for an attempt that is still marked active, so it would be dropped and the run
would wait a whole lease for the reconciler. Raising here lets the executor record the attempt as lost
and schedule the next one at once, so an interrupted run restarts within seconds.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from types import FrameType

import psutil


class WorkerShuttingDown(BaseException):
    """BaseException so that a job's own `except Exception` cannot swallow it."""


_executing = False
in_pool_child = False


def mark_pool_child() -> None:
    global in_pool_child
    in_pool_child = True


def install() -> None:
    """Called as each task starts: Celery's pool initialiser ignores or resets SIGTERM in children
    (with REMAP_SIGTERM it is ignored), so a handler set at process start would not survive."""
    signal.signal(signal.SIGTERM, _on_sigterm)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    if _executing:
        # The pool sends SIGTERM more than once while it winds down; the attempt must be given
        # back before the process goes, so later ones wait until exit_after_interrupt().
        set_executing(False)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise WorkerShuttingDown()
    exit_after_interrupt()


def interrupt_pool_children_after(seconds: float) -> None:
    """From the worker's main process: SIGTERM every pool child once `seconds` have passed."""

    def _interrupt() -> None:
        for child in psutil.Process().children():
            with contextlib.suppress(psutil.Error):
                child.send_signal(signal.SIGTERM)

    timer = threading.Timer(seconds, _interrupt)
    timer.daemon = True
    timer.start()


def chain_sigterm(grace: float) -> None:
    """In the worker's main process, in front of Celery's own SIGTERM handler.

    Celery's cold shutdown waits the soft-shutdown period inside its signal handler, then re-queues
    unfinished messages without telling our attempts. So when SIGTERM arrives we start a timer that,
    just before that period ends, asks each pool child to give its attempt back.
    """
    celery_handler = signal.getsignal(signal.SIGTERM)

    def _on_sigterm_main(signum: int, frame: FrameType | None) -> None:
        interrupt_pool_children_after(grace)
        if callable(celery_handler):
            celery_handler(signum, frame)

    signal.signal(signal.SIGTERM, _on_sigterm_main)


def exit_after_interrupt() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def set_executing(value: bool) -> None:
    global _executing
    _executing = value
