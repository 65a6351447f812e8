"""The trigger source (`cdc run --capture triggers`): the committed staging rows, in id
order, as the same events binlog capture makes.

Exactly once, whatever order transactions commit in: the staging table holds exactly
the changes not yet moved (the store deletes each row in the transaction that writes
its event and the checkpoint), so a long transaction's rows, committed after later
ones were moved, are moved when they appear, and a rolled-back one's never exist. A
row handed on is not handed again before its deletion commits (`_Handed`). Two changes
of one row keep their order: the second waits for the first's row lock, so its staging
id is higher and it becomes visible no earlier.

Values are rendered from the staged form by the table version that staged them
(columns.py); cascades come from the foreign keys, as in binlog mode; an UPDATE that
changed nothing (a trigger fires for it, the binlog logs nothing) is no event.
"""

from __future__ import annotations

import datetime
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
import pymysql
import structlog

from cdc import mysql
from cdc.capture import outbox
from cdc.capture.cascades import Cascades, foreign_keys
from cdc.capture.records import to_record
from cdc.capture.triggers.columns import renderer
from cdc.capture.triggers.spec import OUTBOX, TableSpec
from cdc.errors import CaptureError, ConnectionLost, classify
from cdc.models import (
    TRIGGER_LOG,
    ChangeRecord,
    Changes,
    Commit,
    Heartbeat,
    Item,
    Op,
    Position,
    Row,
    RowChange,
    Table,
)
from cdc.store import staging

if TYPE_CHECKING:
    from cdc.policy.redaction import RedactionPlan
    from cdc.settings import CaptureSettings, Dsn

log = structlog.get_logger("cdc.triggers")

SCAN = 5000  # staging ids read per poll
CHUNK = 1000  # staging rows per item handed on
HELD = 20_000  # most rows handed on and not yet deleted: then wait for the store
REFRESH = 60.0  # seconds between reloads of the installed tables and foreign keys


class TriggerSource:
    """Reads the staging table of `dsn`'s event database (see `cdc.protocols.Source`).

    `plan` holds the `[[redact]]` rules: the triggers apply them before staging; the
    mover applies them only to columns a table version staged in the clear (rules added
    since `cdc triggers install`), so no clear value of a redacted column is written.
    """

    def __init__(
        self,
        dsn: Dsn,
        settings: CaptureSettings,
        plan: RedactionPlan | None = None,
        blocking: bool = True,
    ) -> None:
        self.dsn = dsn
        self.settings = settings
        self.plan = plan
        self.blocking = blocking  # False: stop when the staging table is empty (tests)

    def current(self) -> Position:
        return Position(TRIGGER_LOG, 0)

    def read(self, start: Position, stop: threading.Event) -> Iterator[Item]:
        return iter(Mover(self, start, stop))


@dataclass(slots=True)
class _Version:
    """A table version's rendering: per column, its renderer; the rules left to apply."""

    spec: TableSpec
    table: Table
    renderers: dict[str, Callable[[Any], Any]]
    plan: RedactionPlan | None

    def image(self, staged: dict[str, Any] | None) -> Row | None:
        if staged is None:
            return None
        if not staged.keys() <= self.renderers.keys():
            unknown = sorted(staged.keys() - self.renderers.keys())[:3]
            raise CaptureError(
                f"a staging row of {self.spec.qualified} holds column(s) {unknown} its "
                f"table version {self.spec.version} does not have",
                fix="the row was not written by cdc's triggers; see `cdc triggers status`",
            )
        row: Row = {}
        for name, render in self.renderers.items():
            if name in staged:
                value = staged[name]
                row[name] = None if value is None else render(value)
        return row


class _Handed:
    """Staging ids handed on whose deletion has not been seen committed yet."""

    def __init__(self) -> None:
        self.ids: set[int] = set()

    @property
    def top(self) -> int:
        return max(self.ids) if self.ids else 0

    def prune(self, scanned: list[int], complete: bool) -> None:
        """`scanned`: ids a poll saw up to `top`, lowest first (all of them when
        `complete`): an id handed on and not among them is deleted, so stored."""
        if not self.ids:
            return
        seen = set(scanned)
        last = self.top if complete or not scanned else scanned[-1]
        self.ids = {i for i in self.ids if i in seen or i > last}


class Mover:
    """One read of the staging table: yields `Changes` and `Commit` per chunk of rows,
    a `Heartbeat` per idle poll. Blocking; run it in a thread."""

    def __init__(self, source: TriggerSource, start: Position, stop: threading.Event) -> None:
        self.source = source
        self.settings = source.settings
        self.database = source.dsn.database
        self.stop = stop
        self.handed = _Handed()
        self.last = start.log_pos if start.from_triggers else 0
        self.versions: dict[str, _Version] = {}
        self.installed: set[tuple[str, str]] = set()
        self.cascades = Cascades((), lambda schema, table: False)
        self._refreshed = -REFRESH

    def __iter__(self) -> Iterator[Item]:
        try:
            conn = mysql.connect(self.source.dsn, database=True, autocommit=True)
            try:
                with conn.cursor() as cur:
                    # Each read sees every commit so far, and no gap lock holds a writer.
                    cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                    yield from self._read(cur, conn)
            finally:
                conn.close()
        except pymysql.err.Error as error:
            verdict = classify(error, where=f"{TRIGGER_LOG}:{self.last}")
            if verdict.retry:
                raise ConnectionLost(str(error)) from error
            raise verdict.error or error from error

    def _read(self, cur: Any, conn: Any) -> Iterator[Item]:
        poll = self.settings.trigger_poll_seconds
        while not self.stop.is_set():
            if time.monotonic() - self._refreshed >= REFRESH:
                self._refresh(cur, conn)
            new = self._new_ids(cur)
            if not new:
                if not self.source.blocking:
                    return
                yield Heartbeat(Position(TRIGGER_LOG, self.last), time.time())
                self.stop.wait(poll)
                continue
            for start in range(0, len(new), CHUNK):
                yield from self._move(cur, new[start : start + CHUNK])
                if self.stop.is_set():
                    return

    def _new_ids(self, cur: Any) -> list[int]:
        """Staging ids to move, lowest first: rows committed late below the ids already
        handed on (a long transaction's), then rows above them, while the store keeps up."""
        top = self.handed.top
        low = staging.pending_ids(cur, self.database, SCAN, up_to=top) if top else []
        self.handed.prune(low, complete=len(low) < SCAN)
        late = [i for i in low if i not in self.handed.ids]
        if len(self.handed.ids) >= HELD:
            return late  # the store is behind: wait for it
        return late + staging.pending_ids(cur, self.database, SCAN, after=top)

    def _refresh(self, cur: Any, conn: Any) -> None:
        """The tables with triggers (cascades reach only those) and the foreign keys."""
        self.installed = set(staging.installed(cur, self.database))
        self.cascades = Cascades(
            foreign_keys(mysql.foreign_keys(conn)), lambda s, t: (s, t) in self.installed
        )
        self._refreshed = time.monotonic()

    def _move(self, cur: Any, ids: list[int]) -> Iterator[Item]:
        rows = staging.staged_rows(cur, self.database, ids)
        if not rows:
            return
        records: list[ChangeRecord] = []
        outbox_ids: list[int] = []
        newest = 0.0
        for row in rows:
            timestamp = row[7].replace(tzinfo=datetime.UTC).timestamp()
            newest = max(newest, timestamp)
            records += self._records(cur, row, timestamp, outbox_ids)
        moved = [int(row[0]) for row in rows]
        self.handed.ids.update(moved)
        self.last = max(self.last, moved[-1])
        yield Changes(records, outbox_ids, moved)
        yield Commit(Position(TRIGGER_LOG, self.last), newest, captured=True)

    def _records(
        self, cur: Any, row: tuple[Any, ...], timestamp: float, outbox_ids: list[int]
    ) -> list[ChangeRecord]:
        staging_id, kind, _schema, _table, version_id, user, txn, _ts, data = row
        version = self._version(cur, version_id, staging_id)
        staged = orjson.loads(data)
        before, after = version.image(staged.get("before")), version.image(staged.get("after"))
        if kind == OUTBOX:
            assert after is not None
            outbox_ids.append(int(after["id"]))
            return [outbox.record(after, timestamp, txn, user)]
        op = Op(kind)
        record = to_record(
            RowChange(op, version.table, before, after), timestamp, txn, self.settings.user_column
        )
        if version.spec.user is not None or user is not None:
            record.user_id = user  # the session's @cdc_user_id (or the trigger's redacted user)
        if op is Op.UPDATE and not self._changed(record, staged.get("redacted_changed")):
            return []
        records = [record]
        if self.cascades and op is not Op.CREATE:
            records += self.cascades.after(record)
        if version.plan is not None:
            version.plan.apply(records)
        return records

    @staticmethod
    def _changed(record: ChangeRecord, redacted: list[str | None] | None) -> bool:
        """Adds the masked columns an UPDATE changed to `changed` (dropped ones stay out);
        False when it changed nothing at all."""
        changed: list[str] = record.data["changed"]
        names = [n for n in redacted or () if n is not None]
        if not changed and not names:
            return False
        after = record.data["after"]
        if any(n in after for n in names):
            wanted = set(changed) | set(names)
            record.data["changed"] = [n for n in after if n in wanted]
        return True

    def _version(self, cur: Any, version: str, staging_id: int) -> _Version:
        found = self.versions.get(version)
        if found is not None:
            return found
        text = staging.specs(cur, self.database, [version]).get(version)
        if text is None:
            raise CaptureError(
                f"staging row {staging_id} names table version {version}, which "
                f"`{self.database}`.cdc_trigger_specs does not hold",
                fix="the row was not written by triggers cdc installed here, or the table of "
                "versions was emptied; run `cdc triggers install` and report this",
            )
        spec = TableSpec.from_json(text, version)
        binary = str(self.settings.binary)
        renderers = {c.name: renderer(c, binary) for c in spec.columns if c.redact != "drop"}
        plan = self.source.plan
        if plan is not None and not spec.outbox:
            plan = plan.excluding(spec.schema, spec.table, spec.redacted)
        elif spec.outbox:
            plan = None
        table = Table(spec.schema, spec.table, (), spec.key)
        found = self.versions[version] = _Version(spec, table, renderers, plan)
        log.info("table_version_loaded", table=spec.qualified, version=version)
        return found
