"""Replay the metric journals of processes that died, and mark their runs KILLED."""

from __future__ import annotations

import logging

from sqlalchemy import and_, or_, select, update

from loopml.core import journal
from loopml.core.store import now_ms
from loopml.core.store import schema as db
from loopml.core.workspace import Workspace
from loopml.tracking.writer import MetricRow, parse_line, store_metrics

log = logging.getLogger("loopml")


def replay_abandoned(ws: Workspace) -> int:
    """Store every journaled point the store lacks; return how many journals were replayed."""
    replayed = 0
    for found in journal.abandoned(ws.journal_dir):
        run_id = found.name.partition(".")[0]
        try:
            count = _replay(ws, found, run_id)
        except Exception as exc:  # noqa: BLE001 - one bad journal must not stop the workspace opening
            found.release()
            log.warning(
                "LoopML: could not replay journal %s of run %s (%s: %s); it is kept and "
                "retried the next time the workspace opens",
                found.path,
                run_id,
                type(exc).__name__,
                exc,
            )
            continue
        if count is None:
            continue
        found.discard()
        replayed += 1
        log.info("LoopML: replayed %d metric points of killed run %s", count, run_id)
    return replayed


def _replay(ws: Workspace, found: journal.Abandoned, run_id: str) -> int | None:
    """Store one journal's points and mark its run KILLED; None when the run is not here."""
    rows = [row for row in (_parse(run_id, line) for line in found.lines()) if row is not None]
    with ws.store.write() as conn:
        exists = conn.execute(select(db.runs.c.id).where(db.runs.c.id == run_id)).first()
        if exists is None:
            log.warning(
                "LoopML: journal %s belongs to run %s, which this store does not have; "
                "kept it (open the workspace with the store it was logged to)",
                found.path,
                run_id,
            )
            found.release()
            return None
        store_metrics(conn, rows)
        if not _has_live_writer(ws, run_id):
            last = max((row[5] for row in rows), default=now_ms())
            r = db.runs.c
            # KILLED at its last journaled point; a later journal of the same run moves it on.
            still_open = r.status == "RUNNING"
            ended_earlier = and_(r.status == "KILLED", r.end_time < last)
            conn.execute(
                update(db.runs)
                .where(r.id == run_id, or_(still_open, ended_earlier))
                .values(status="KILLED", end_time=last)
            )
    return len(rows)


def _parse(run_id: str, line: str) -> MetricRow | None:
    try:
        return parse_line(run_id, line)
    except ValueError:
        log.warning("LoopML: skipped an unreadable journal line of run %s: %r", run_id, line)
        return None


def _has_live_writer(ws: Workspace, run_id: str) -> bool:
    """Return True if another process still writes to this run (it was resumed elsewhere).

    Journals being replayed are renamed away from *.journal, so they never count as live.
    """
    return any(journal.is_live(path) for path in ws.journal_dir.glob(f"{run_id}.*{journal.SUFFIX}"))
