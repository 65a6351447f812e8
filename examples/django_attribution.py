"""Who made the change, for cdc, with Django: a middleware tags every statement of the
request with its user and route (sqlcommenter, read from the binlog) and sets
`@cdc_user_id` for the request (read by the capture triggers), clearing it after, so
either capture mode attributes the change. One file: settings, middleware, a model.

    python examples/django_attribution.py --dsn mysql://user:pass@host:3306/appdb \
        [--events-db cdc]

It creates a `lab_result` table if missing and serves a few requests as different users
(and runs a management-style job with no user, and a request that fails), on one
persistent connection, so that each request reuses the connection of the one before.

Django's MySQL backend needs the `MySQLdb` module: mysqlclient, which builds against the
MariaDB/MySQL client headers (`apt-get install libmariadb-dev pkg-config`). Where it is
not installed, PyMySQL stands in for it (`pymysql.install_as_MySQLdb()`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import django
from django.conf import settings

USER_VARIABLE = "@cdc_user_id"


def configure(dsn: str) -> None:
    """Django's settings, from a mysql://user:pass@host:port/db DSN (before django.setup)."""
    try:
        import MySQLdb  # mysqlclient, the driver Django is made for
    except ImportError:
        import pymysql

        pymysql.install_as_MySQLdb()
        import MySQLdb

    url = urlsplit(dsn)
    name = unquote(url.path.lstrip("/"))
    server = {
        "host": url.hostname or "127.0.0.1",
        "port": url.port or 3306,
        "user": unquote(url.username or "root"),
        "password": unquote(url.password or ""),
    }
    bare = MySQLdb.connect(**server)  # Django connects to an existing database only
    try:
        bare.cursor().execute(f"CREATE DATABASE IF NOT EXISTS `{name}`")
    finally:
        bare.close()
    settings.configure(
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.mysql",
                "NAME": name,
                "USER": server["user"],
                "PASSWORD": server["password"],
                "HOST": server["host"],
                "PORT": str(server["port"]),
                "OPTIONS": {"charset": "utf8mb4"},
                # Keep the connection between requests, as a production site does: the
                # case where a session variable outlives its request.
                "CONN_MAX_AGE": None,
            }
        },
        INSTALLED_APPS=[],
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
    )
    django.setup()


def sql_comment(tags: Mapping[str, Any]) -> str:
    """The sqlcommenter comment: sorted keys, URL-encoded values in quotes ('' for none)."""
    pairs = [
        f"{quote(key, safe='')}='{quote(str(value), safe='')}'"
        for key, value in sorted(tags.items())
        if value is not None
    ]
    return f"/*{','.join(pairs)}*/" if pairs else ""


class SqlCommenter:
    """A `connection.execute_wrapper` that appends the tags to every statement."""

    def __init__(self, **tags: Any) -> None:
        self.comment = sql_comment(tags)

    def __call__(
        self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        if not self.comment:
            return execute(sql, params, many, context)
        # Given parameters, the driver expands `%s` with Python's % operator: the
        # URL-encoding's `%` is doubled to come through it. Without, the SQL goes as is.
        comment = self.comment if params is None else self.comment.replace("%", "%%")
        return execute(f"{sql} {comment}", params, many, context)


@contextmanager
def acting_as(user_id: Any, **tags: Any) -> Iterator[None]:
    """Every statement inside is the user's: tagged, and `@cdc_user_id` set; cleared after,
    however the block ends."""
    from django.db import connection

    user = None if user_id is None else str(user_id)
    with connection.cursor() as cursor:
        cursor.execute(f"SET {USER_VARIABLE} = %s", [user])
    try:
        with connection.execute_wrapper(SqlCommenter(user_id=user, **tags)):
            yield
    finally:
        # The connection outlives the request (CONN_MAX_AGE): without this, the next
        # request on it — a job with no user, an anonymous page — would be this user's.
        if connection.connection is not None and connection.is_usable():
            with connection.cursor() as cursor:
                cursor.execute(f"SET {USER_VARIABLE} = NULL")


class AttributionMiddleware:
    """MIDDLEWARE = [..., "yourapp.attribution.AttributionMiddleware"], after
    AuthenticationMiddleware (it reads request.user)."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        user = getattr(request, "user", None)
        user_id = user.pk if user is not None and user.is_authenticated else None
        with acting_as(user_id, route=request.path):
            return self.get_response(request)


def emit_event(
    kind: str,
    user_id: Any,
    data: Any,
    record: tuple[str, str, Any] | None = None,
    outbox: str = "cdc.cdc_outbox",
) -> None:
    """An application event (LOGIN...) through the outbox, in the current transaction
    (inside `transaction.atomic()` it is stored only if that commits)."""
    from django.db import connection

    schema, table, row_id = record or (None, None, None)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {outbox} (type, user_id, data, schema_name, table_name, row_id)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            [
                kind,
                None if user_id is None else str(user_id),
                json.dumps(data),
                schema,
                table,
                None if row_id is None else str(row_id),
            ],
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", required=True, help="mysql://user:pass@host:port/appdb")
    parser.add_argument("--events-db", default="cdc", help="cdc's event database (the outbox)")
    args = parser.parse_args(argv)
    configure(args.dsn)

    # After django.setup(): models and the request machinery.
    from types import SimpleNamespace

    from django.db import connection, models, transaction
    from django.http import HttpResponse
    from django.test import RequestFactory

    class LabResult(models.Model):
        patient_name = models.CharField(max_length=100)
        test = models.CharField(max_length=50)
        value = models.CharField(max_length=50, null=True)
        updated_by = models.CharField(max_length=64, null=True)

        class Meta:
            app_label = "clinic"
            db_table = "lab_result"

    if "lab_result" not in connection.introspection.table_names():
        with connection.schema_editor() as editor:
            editor.create_model(LabResult)
    outbox = f"`{args.events_db}`.cdc_outbox"
    created: list[int] = []

    def order_test(request: Any) -> HttpResponse:
        with transaction.atomic():
            result = LabResult.objects.create(
                patient_name="Baraka", test="malaria RDT", updated_by=str(request.user.pk)
            )
        created.append(result.pk)
        return HttpResponse(status=201)

    def record_result(request: Any) -> HttpResponse:
        with transaction.atomic():
            with connection.cursor() as cursor:  # what a capture trigger would read
                cursor.execute(f"SELECT {USER_VARIABLE}")
                assert cursor.fetchone()[0] == str(request.user.pk)
            emit_event("LOGIN", request.user.pk, {"ip": "10.0.0.9"}, outbox=outbox)
            result = LabResult.objects.select_for_update().get(pk=created[0])
            result.value, result.updated_by = "negative", str(request.user.pk)
            result.save(update_fields=["value", "updated_by"])
        return HttpResponse()

    def fail_half_way(request: Any) -> HttpResponse:
        with transaction.atomic():
            LabResult.objects.create(patient_name="draft", test="rolled-back", updated_by="99")
            raise RuntimeError("the analyser went offline")  # atomic() rolls back

    def delete_result(request: Any) -> HttpResponse:
        LabResult.objects.filter(pk=created[0]).delete()  # autocommit: one statement
        return HttpResponse()

    factory = RequestFactory()

    def serve(view: Callable[[Any], Any], user_id: Any, path: str) -> Any:
        request = factory.post(path)
        request.user = SimpleNamespace(pk=user_id, is_authenticated=True)
        try:
            return AttributionMiddleware(view)(request)
        except RuntimeError:
            return None

    def session_user() -> Any:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {USER_VARIABLE}")
            return cursor.fetchone()[0]

    after: list[Any] = []
    serve(order_test, 7, "/lab/orders/")
    after.append(session_user())
    serve(record_result, "o'neil", "/lab/results/1/")
    after.append(session_user())
    serve(fail_half_way, 99, "/lab/orders/")
    after.append(session_user())
    # A job (a management command, a cron script): no request, no user.
    LabResult.objects.filter(pk=created[0]).update(value="negative (checked)", updated_by="job:qc")
    serve(delete_result, 12, "/lab/results/1/delete/")
    after.append(session_user())
    connection.close()
    print(json.dumps({"lab_result_id": created[0], "user_after_each": after}))
    return 0 if after == [None] * len(after) else 1


if __name__ == "__main__":
    sys.exit(main())
