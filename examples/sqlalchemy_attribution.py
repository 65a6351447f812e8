"""Who made the change, for cdc, with SQLAlchemy 2.x: every statement carries the current
user's sqlcommenter tag (read from the binlog) and every transaction sets `@cdc_user_id`
(read by the capture triggers), so either capture mode attributes the change.

    python examples/sqlalchemy_attribution.py --dsn mysql://user:pass@host:3306/appdb \
        [--events-db cdc]

It creates an `appointment` table if missing and makes a few changes as different users
(and one as a background job with no user, and one rolled back), on a pool of one
connection, so that each transaction reuses the connection of the one before.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, String, create_engine, event, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

USER_VARIABLE = "@cdc_user_id"

# The request being served: its user and route (set by the web framework's middleware).
current_tags: ContextVar[Mapping[str, str] | None] = ContextVar("current_tags", default=None)


@contextlib.contextmanager
def acting_as(user_id: str, **tags: str) -> Iterator[None]:
    """Statements inside are the user's: `with acting_as("7", route="/appointments"):`."""
    token = current_tags.set({"user_id": user_id, **tags})
    try:
        yield
    finally:
        current_tags.reset(token)


def sql_comment(tags: Mapping[str, str]) -> str:
    """The sqlcommenter comment: sorted keys, URL-encoded values in quotes ('' for none)."""
    pairs = [
        f"{quote(key, safe='')}='{quote(str(value), safe='')}'"
        for key, value in sorted(tags.items())
        if value is not None
    ]
    return f"/*{','.join(pairs)}*/" if pairs else ""


def install(engine: Engine, session_factory: sessionmaker[Session]) -> None:
    """Tags every statement of `engine` with the current user, sets `@cdc_user_id` at the
    start of every session transaction and clears it when the connection goes back."""
    paramstyle = engine.dialect.paramstyle

    @event.listens_for(engine, "before_cursor_execute", retval=True)
    def tag_statement(
        conn: Any,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> tuple[str, Any]:
        tags = current_tags.get()
        if not tags:
            return statement, parameters
        comment = sql_comment(tags)
        # pymysql (and mysqlclient) expand `%s` with Python's % operator whenever they are
        # given parameters: the URL-encoding's `%` must then be doubled to survive it.
        formatted = not (not parameters and context is not None and context.no_parameters)
        if formatted and paramstyle in ("format", "pyformat"):
            comment = comment.replace("%", "%%")
        return f"{statement} {comment}", parameters

    @event.listens_for(session_factory, "after_begin")
    def set_user(session: Session, transaction: Any, connection: Any) -> None:
        tags = current_tags.get()
        user = tags.get("user_id") if tags else None
        # Set (or cleared) at the start of every transaction: the connection may come
        # from a request of another user.
        connection.exec_driver_sql(f"SET {USER_VARIABLE} = %s", (user,))

    @event.listens_for(engine, "reset")
    def clear_user(dbapi_connection: Any, record: Any, state: Any) -> None:
        # The pool keeps the connection, and its session variables, for the next request:
        # without this, that request's changes (a job with no user, say) would be the
        # previous user's. SQLAlchemy's session hands its connection back right after
        # COMMIT or ROLLBACK (its own after_commit hook can run no SQL), and the pool's
        # reset runs on every return, whatever ended the transaction. (Clearing it in
        # before_commit would be too early: the session's last flush comes after that.)
        if state.terminate_only:
            return  # the connection is being closed, not reused
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f"SET {USER_VARIABLE} = NULL")


class Base(DeclarativeBase):
    pass


class Appointment(Base):
    __tablename__ = "appointment"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_name: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20))
    updated_by: Mapped[str | None] = mapped_column(String(64))


def emit_event(
    session: Session,
    kind: str,
    user_id: str | None,
    data: Any,
    record: tuple[str, str, str] | None = None,
    outbox: str = "cdc.cdc_outbox",
) -> None:
    """An application event (LOGIN...) in the session's transaction, through the outbox:
    stored only if the transaction commits."""
    schema, table, row_id = record or (None, None, None)
    session.execute(
        text(
            f"INSERT INTO {outbox} (type, user_id, data, schema_name, table_name, row_id)"
            " VALUES (:type, :user_id, :data, :schema, :table, :row_id)"
        ),
        {
            "type": kind,
            "user_id": user_id,
            "data": json.dumps(data),
            "schema": schema,
            "table": table,
            "row_id": row_id,
        },
    )


def session_user(engine: Engine) -> Any:
    """`@cdc_user_id` as the next checkout of the pool finds it."""
    with engine.connect() as conn:
        return conn.execute(text(f"SELECT {USER_VARIABLE}")).scalar()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", required=True, help="mysql://user:pass@host:port/appdb")
    parser.add_argument("--events-db", default="cdc", help="cdc's event database (the outbox)")
    args = parser.parse_args(argv)
    url = make_url(args.dsn).set(drivername="mysql+pymysql", query={"charset": "utf8mb4"})
    database = url.database
    with create_engine(url._replace(database=None)).begin() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE IF NOT EXISTS `{database}`")
    # One connection: every transaction reuses the previous one's (the case to get right).
    engine = create_engine(url, pool_size=1, max_overflow=0)
    Base.metadata.create_all(engine)
    Sessions = sessionmaker(engine)
    install(engine, Sessions)
    outbox = f"`{args.events_db}`.cdc_outbox"
    leaked: list[Any] = []

    with acting_as("7", route="/appointments/new"), Sessions.begin() as session:
        booked = Appointment(patient_name="Amani", status="booked", updated_by="7")
        session.add(booked)
        session.flush()
        booked_id = booked.id
    leaked.append(session_user(engine))

    with acting_as("o'neil", route="/appointments/1/confirm"), Sessions.begin() as session:
        inside = session.execute(text(f"SELECT {USER_VARIABLE}")).scalar()
        assert inside == "o'neil", inside
        emit_event(session, "LOGIN", "o'neil", {"ip": "10.0.0.8"}, outbox=outbox)
        appointment = session.get_one(Appointment, booked_id)
        appointment.status, appointment.updated_by = "confirmed", "o'neil"
    leaked.append(session_user(engine))

    # A background job: no request, no user. Nothing of o'neil's may stick to it.
    with Sessions.begin() as session:
        inside = session.execute(text(f"SELECT {USER_VARIABLE}")).scalar()
        assert inside is None, inside
        for appointment in session.scalars(select(Appointment).where(Appointment.id == booked_id)):
            appointment.status, appointment.updated_by = "reminded", "job:reminders"

    with (
        contextlib.suppress(RuntimeError),
        acting_as("99", route="/appointments/new"),
        Sessions.begin() as session,
    ):
        session.add(Appointment(patient_name="draft", status="rolled-back", updated_by="99"))
        session.flush()
        raise RuntimeError("the user closed the form")  # the session rolls back
    leaked.append(session_user(engine))

    with acting_as("12", route="/appointments/1/cancel"), Sessions.begin() as session:
        session.delete(session.get_one(Appointment, booked_id))
    leaked.append(session_user(engine))

    engine.dispose()
    print(json.dumps({"appointment_id": booked_id, "user_after_each": leaked}))
    return 0 if leaked == [None] * len(leaked) else 1


if __name__ == "__main__":
    sys.exit(main())
