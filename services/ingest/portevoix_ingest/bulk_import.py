"""Bulk import: a JSONL/CSV file of contract-v1 events → JetStream `pv.raw.v1`, resumable.

- Idempotent: every event is published with its event id as `Nats-Msg-Id` (JetStream drops a
  re-send within its duplicate window; ingest's natural keys and scoring's seen-set beyond it).
- Resumable: after each batch is fully acknowledged, the last committed line and the counts are
  written (atomically) to a checkpoint file; a re-run resumes after that line. The checkpoint
  remembers the file's size and first bytes, so a different file is never resumed by mistake.
- Fast: async publishes in batches, one PubAck wait per batch.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nats
import orjson
from pydantic import ValidationError

from portevoix.contracts.ingest import Rejection, describe_validation_error, parse_ingest_event
from portevoix.runtime.publisher import EventPublisher, Outgoing
from portevoix.runtime.streams import RAW_SUBJECT, ensure_streams
from portevoix_ingest.domain.bulk import iter_records

CHECKPOINT_VERSION = 1


@dataclass
class ImportReport:
    file: str
    line: int = 0  # last line committed (published and acknowledged, or rejected)
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    done: bool = False
    resumed_from: int = 0
    size: int = 0
    head: str = ""
    version: int = CHECKPOINT_VERSION

    def counts(self) -> dict[str, int]:
        return {"accepted": self.accepted, "duplicates": self.duplicates, "rejected": self.rejected}


class CheckpointMismatch(RuntimeError):
    """The checkpoint belongs to another version of the file."""


HEAD_BYTES = 1 << 16


def file_identity(path: Path, head_bytes: int = HEAD_BYTES) -> tuple[int, str]:
    """(size, digest of the first `head_bytes`): enough to tell a file from another version."""
    with open(path, "rb") as fh:
        head = hashlib.sha256(fh.read(head_bytes)).hexdigest()[:32]
    return path.stat().st_size, head


def default_checkpoint(path: Path) -> Path:
    """Beside the input when that directory is writable, else under `.run/import/`."""
    if os.access(path.resolve().parent, os.W_OK):
        return path.with_name(path.name + ".pv-checkpoint.json")
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    return Path(".run") / "import" / f"{path.name}.{digest}.pv-checkpoint.json"


def load_checkpoint(checkpoint: Path, path: Path, restart: bool) -> ImportReport:
    size, head = file_identity(path)
    fresh = ImportReport(file=str(path.resolve()), size=size, head=head)
    if restart or not checkpoint.exists():
        return fresh
    data = orjson.loads(checkpoint.read_bytes())
    saved = ImportReport(**{k: v for k, v in data.items() if k in ImportReport.__annotations__})
    # Compare the bytes the checkpoint saw: a file appended to since keeps them and grows, and
    # resuming it is what an operator expects.
    _, old_head = file_identity(path, min(saved.size, HEAD_BYTES))
    if saved.head != old_head or saved.size > size:
        raise CheckpointMismatch(
            f"{checkpoint} was written for another version of {path.name}; "
            "use --restart to import from the first line"
        )
    saved.done = saved.done and saved.size == size
    saved.size, saved.head, saved.resumed_from = size, head, saved.line
    return saved


def save_checkpoint(checkpoint: Path, report: ImportReport) -> None:
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    tmp = checkpoint.with_name(checkpoint.name + ".tmp")
    data = {**asdict(report), "updated_at": datetime.now(UTC).isoformat()}
    tmp.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
    os.replace(tmp, checkpoint)  # atomic: a crash leaves the old or the new checkpoint


Progress = Callable[[int, ImportReport], None]


async def run_import(
    path: Path,
    nats_url: str,
    *,
    checkpoint: Path | None = None,
    batch_size: int = 2000,
    restart: bool = False,
    dry_run: bool = False,
    rejects: Path | None = None,
    on_progress: Progress | None = None,
    stop_after_lines: int | None = None,
) -> ImportReport:
    """Import `path`; `on_progress(line_no, report)` after each committed batch.

    `stop_after_lines` stops after committing the batch that reaches that line (tests and
    operators use it to import a file in slices).
    """
    checkpoint = checkpoint or default_checkpoint(path)
    report = load_checkpoint(checkpoint, path, restart)
    if report.done:
        return report
    rejects = rejects or path.with_name(path.name + ".rejects.jsonl")
    if report.line == 0 and rejects.exists():
        rejects.unlink()  # a fresh import starts a fresh list of rejects
    nc = None
    publisher: EventPublisher | None = None
    if not dry_run:
        nc = await nats.connect(servers=[s.strip() for s in nats_url.split(",")], name="pv-import")
        js = nc.jetstream()
        await ensure_streams(js)
        publisher = EventPublisher(js, timeout_s=30.0, service="import")
    reject_lines: list[bytes] = []
    batch: list[Outgoing] = []
    last_line = report.line

    async def commit() -> None:
        nonlocal batch, reject_lines
        if batch and publisher is not None:
            result = await publisher.publish_many(batch)
            report.accepted += result.published
            report.duplicates += result.duplicates
        elif batch:  # dry run: valid is all we can say
            report.accepted += len(batch)
        if reject_lines:
            _append(rejects, reject_lines)
        report.line = last_line
        if not dry_run:
            save_checkpoint(checkpoint, report)
        batch, reject_lines = [], []
        if on_progress is not None:
            on_progress(last_line, report)

    try:
        for line_no, record in iter_records(path, start_line=report.line):
            last_line = line_no
            problems: list[Rejection] | None = None
            if isinstance(record, Rejection):
                problems = [record]
            else:
                try:
                    event = parse_ingest_event(record)
                except ValidationError as exc:
                    problems = describe_validation_error(exc)
                else:
                    key = event.idempotency_key()
                    batch.append(Outgoing(RAW_SUBJECT, key, orjson.dumps(record)))
            if problems is not None:
                report.rejected += 1
                reject_lines.append(_reject_line(line_no, record, problems))
            if len(batch) >= batch_size or len(reject_lines) >= batch_size:
                await commit()
                if stop_after_lines is not None and last_line >= stop_after_lines:
                    return report
        last_line = max(last_line, report.line)
        await commit()
        report.done = True
        if not dry_run:
            save_checkpoint(checkpoint, report)
        return report
    finally:
        if nc is not None:
            await nc.drain()


def _append(path: Path, lines: list[bytes]) -> None:
    with open(path, "ab") as fh:
        fh.writelines(lines)


def _reject_line(line_no: int, record: Any, problems: list[Rejection]) -> bytes:
    eid = record.get("event_id") if isinstance(record, dict) else None
    entry = {
        "line": line_no,
        "event_id": eid if isinstance(eid, str) else None,
        "errors": [p.model_dump(mode="json") for p in problems],
    }
    return orjson.dumps(entry) + b"\n"
