"""The GTID state to resume from: MariaDB's per-domain list or MySQL's executed set."""

from __future__ import annotations

from pymysqlreplication.gtid import Gtid, GtidSet


class GtidState:
    """Built from a stored GTID text, grown by each transaction's GTID, printed for the
    checkpoint (MariaDB `0-1-6,1-2-9`; MySQL `uuid:1-3:5,...`)."""

    def __init__(self, text: str | None = None) -> None:
        self.mariadb: dict[str, str] = {}
        self.mysql: GtidSet | None = None
        self._text: str | None = None
        if text and ":" in text:
            self.mysql = GtidSet(text)
        elif text:
            for gtid in text.split(","):
                self.mariadb[gtid.split("-")[0]] = gtid.strip()

    def add_mariadb(self, gtid: str) -> None:
        self.mariadb[gtid.split("-", 1)[0]] = gtid
        self._text = None

    def add_mysql(self, gtid: str) -> None:
        if self.mysql is None:
            self.mysql = GtidSet(gtid)
        else:
            self.mysql.merge_gtid(Gtid(gtid))
        self._text = None

    def __str__(self) -> str:
        # Asked for at every commit, changed at every transaction: built once per change.
        if self._text is None:
            if self.mysql is not None:
                self._text = str(self.mysql)
            else:
                self._text = ",".join(self.mariadb[d] for d in sorted(self.mariadb, key=int))
        return self._text

    def __bool__(self) -> bool:
        return bool(self.mariadb) or self.mysql is not None
