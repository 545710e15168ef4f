"""Where a dataset run's files go in its tenant's bucket, and how its parts become the result.

    results/<run id>.jsonl          the result, moved into place only when the run succeeds
    results/<run id>.errors.jsonl   the bad lines with their errors (when there are any)
    work/<run id>/                  one part per finished chunk, named by chunk and by the attempt
                                    that wrote it, and the model a learning task fitted (named by
                                    its attempt too); removed when the run ends

A part's name carries its attempt, so a zombie attempt still writing (its lease lost, not yet stopped)
can never overwrite or truncate a part the live attempt has committed: the checkpoint says which attempt
wrote each chunk, and only those parts are read.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from orchestrator.storage import Storage, bucket_name


@dataclass(frozen=True)
class RunFiles:
    storage: Storage
    tenant_id: str
    run_id: UUID

    @property
    def bucket(self) -> str:
        return bucket_name(self.tenant_id)

    @property
    def result_path(self) -> str:
        return f"results/{self.run_id}.jsonl"

    @property
    def errors_path(self) -> str:
        return f"results/{self.run_id}.errors.jsonl"

    def url(self, path: str) -> str:
        return self.storage.object_url(self.tenant_id, path)

    def _work(self, name: str = "") -> str:
        return self.url(f"work/{self.run_id}/{name}" if name else f"work/{self.run_id}")

    def part(self, kind: str, chunk: int, attempt: int) -> str:
        return self._work(f"{kind}-{chunk:06d}-a{attempt}.jsonl")

    def write_part(self, kind: str, chunk: int, attempt: int, data: bytes) -> None:
        # A rewrite after a crash truncates and writes the whole part again: same name, same content.
        with self.storage.open(self.part(kind, chunk, attempt), "wb") as out:
            out.write(data)

    def _model(self, attempt: int) -> str:
        return self._work(f"model-a{attempt}.npz")

    def write_model(self, attempt: int, data: bytes) -> None:
        with self.storage.open(self._model(attempt), "wb") as out:
            out.write(data)

    def read_model(self, attempt: int) -> bytes:
        with self.storage.open(self._model(attempt)) as source:
            return source.read()

    def parts_present(self, writers: list[int]) -> bool:
        return all(self.storage.exists(self.part("part", i, a)) for i, a in enumerate(writers))

    def assemble(self, kind: str, writers: list[int], path: str, attempt: int) -> None:
        """Concatenate the committed parts to a temporary name, then move the whole into place."""
        temporary = self._work(f"{kind}.a{attempt}.tmp")
        with self.storage.open(temporary, "wb") as out:
            for chunk, writer in enumerate(writers):
                part = self.part(kind, chunk, writer)
                if kind == "bad" and not self.storage.exists(part):
                    continue  # a chunk without bad lines writes no bad part
                for block in self.storage.read_blocks(part):
                    out.write(block)
        self.storage.move(temporary, self.url(path))

    def discard_work(self) -> None:
        self.storage.remove(self._work())

    def result_exists(self) -> bool:
        return self.storage.exists(self.url(self.result_path))
