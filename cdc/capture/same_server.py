"""Same server, or say so: a checkpoint written capturing one server is resumed on another
only by GTID (a replica that has the transactions); by binlog file and offset it is
refused, since a same-named binlog file there holds unrelated events at that offset."""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from cdc.errors import StartupError

if TYPE_CHECKING:
    from cdc.store.checkpoint import Checkpoint

log = structlog.get_logger("cdc.daemon")


def check_resume(stored: Checkpoint, identity: str | None, gtid_resume: bool) -> None:
    """Refuses to resume `stored` by file and offset on a server other than the one it
    was written capturing (`identity`: see `mysql.server_identity`)."""
    position = stored.position
    if position.from_triggers or stored.server is None or identity is None:
        return  # trigger mode's staging ids, or a checkpoint of a version that kept none
    if stored.server == identity:
        return
    if gtid_resume and position.gtid:
        log.warning(
            "captured_server_changed",
            checkpoint_server=stored.server,
            server=identity,
            resume_gtid=position.gtid,
        )
        return
    why = "GTID resume is off" if position.gtid else "the checkpoint holds no GTID"
    raise StartupError(
        f"the checkpoint was written capturing server {stored.server}, but this is "
        f"{identity}; resuming at {position.log_file}:{position.log_pos} here would read a "
        f"same-named binlog file of another server at an unrelated offset ({why})",
        fix="point --dsn at the server the checkpoint comes from; or resume by GTID on a "
        "replica that has its transactions (GTIDs on, gtid_resume on); or start over at "
        "this server's current position with `cdc run --from-now` once (changes in "
        "between are not captured)",
    )
