"""Submit a run, follow its events live, and read how it ended, with the typed client.

ORCH_API_URL=http://127.0.0.1:8000 ORCH_API_KEY=orch_... python -m orchestrator.client.quickstart
"""

import os
from itertools import islice

from orchestrator.client import Client, RunStatus


def main() -> None:
    url, key = os.environ.get("ORCH_API_URL", "http://127.0.0.1:8000"), os.environ["ORCH_API_KEY"]
    with Client(url, key) as client:
        run = client.submit("sleep", {"duration": 1, "steps": 3}, idempotency_key=f"quickstart-{os.getpid()}")
        print(f"submitted {run.id} ({run.status})")
        for event in client.stream(run.id):  # ends after the terminal event
            print(f"  {event.position:>6}  {event.type}")
        done = client.wait(run.id, timeout=60)
        print(f"{done.status}: {done.progress.done}/{done.progress.total} steps")
        # `list` pages through every match as the loop goes; islice stops after the first five.
        for recent in islice(client.list(status=RunStatus.SUCCEEDED), 5):
            print(f"  succeeded earlier: {recent.id} {recent.kind}")


if __name__ == "__main__":
    main()
