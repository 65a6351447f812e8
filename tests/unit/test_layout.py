"""The package's shape: the serve side runs without the binlog library, the event table's
names live in one place, and nothing patches a library on import."""

from __future__ import annotations

import re
import subprocess
import sys

from cdc.store import schema
from cdc.store.staging import STAGED_COLUMNS


def test_the_serve_side_imports_without_the_binlog_library() -> None:
    code = (
        "import sys\n"
        "import cdc.serve.app, cdc.serve.hub, cdc.serve.query, cdc.serve.feeds.local\n"
        "import cdc.store.reader, cdc.store.writer, cdc.admin.status, cdc.client.tail\n"
        "print(sorted(m for m in sys.modules if m.startswith('pymysqlreplication')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "[]", result.stdout


def test_importing_the_binlog_source_patches_nothing() -> None:
    code = (
        "from pymysqlreplication.row_event import TableMapEvent\n"
        "original = TableMapEvent.__init__\n"
        "import cdc.daemon, cdc.capture.binlog.source\n"
        "print(TableMapEvent.__init__ is original)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "True"


def test_the_ddl_creates_the_tables_and_columns_the_code_names() -> None:
    statements = (
        schema.ddl_statements()
        + schema.ddl_statements("trigger_tables.sql")
        + schema.ddl_statements(schema.FAILOVER_SQL)
    )
    created = {}
    for statement in statements:
        match = re.match(r"CREATE TABLE IF NOT EXISTS `(\w+)` \((.*)\)", statement, re.S)
        assert match, statement[:60]
        created[match[1]] = re.findall(r"^\s*`(\w+)`\s", match[2], re.M)
    assert set(created) == set(schema.OWN_TABLES)
    assert tuple(created[schema.EVENT]) == schema.EVENT_COLUMNS
    assert STAGED_COLUMNS.split(", ") == created[schema.STAGING]
