"""What a DDL statement of the binlog does to the column facts the binlog does not carry
(MariaDB's JSON, UUID, INET4, INET6), read from the statement itself: the facts then
belong to the statement's position, not to whenever the daemon reads them. Pure.

Understood: CREATE [OR REPLACE] TABLE (column definitions, LIKE), ALTER TABLE (ADD,
MODIFY, CHANGE, DROP, RENAME [COLUMN], ADD/DROP CONSTRAINT ... CHECK), RENAME TABLE,
DROP TABLE, DROP DATABASE. A CREATE or ALTER TABLE that does not parse gives `Unknown`
for its table (the caller then reads information_schema and checks it against the
table map); other statements change no column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

LOGICAL_TYPES = frozenset({"json", "uuid", "inet4", "inet6"})

_TOKEN = re.compile(
    r"""
    (?P<space>\s+|--[^\n]*|\#[^\n]*)
    | (?P<exec>/\*M?!\d*)                 # an executable comment: its text is SQL
    | (?P<comment>/\*.*?\*/)
    | (?P<end>\*/)                        # the end of an executable comment
    | (?P<quoted>`(?:[^`]|``)*`)
    | (?P<string>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*")
    | (?P<word>[A-Za-z0-9_$\u0080-\uffff]+)
    | (?P<punct>.)
    """,
    re.X | re.S,
)


@dataclass(frozen=True, slots=True)
class Token:
    text: str  # an identifier's name (unquoted), a keyword in upper case, or punctuation
    quoted: bool = False


def tokens(sql: str) -> list[Token]:
    out: list[Token] = []
    for match in _TOKEN.finditer(sql):
        kind = match.lastgroup
        text = match.group()
        if kind in ("space", "comment", "exec", "end"):
            continue
        if kind == "quoted":
            out.append(Token(text[1:-1].replace("``", "`"), quoted=True))
        elif kind == "word":
            out.append(Token(text))
        else:
            out.append(Token(text))
    return out


Name = tuple[str | None, str]  # (schema or None for the statement's default, table)


@dataclass(frozen=True, slots=True)
class ColumnDef:
    name: str
    logical: str | None  # json, uuid, inet4, inet6, or None


@dataclass(frozen=True, slots=True)
class CreateTable:
    table: Name
    columns: tuple[ColumnDef, ...]
    checks: tuple[tuple[str | None, str], ...] = ()  # table-level json_valid checks


@dataclass(frozen=True, slots=True)
class CreateLike:
    table: Name
    source: Name


@dataclass(frozen=True, slots=True)
class AlterTable:
    table: Name
    actions: tuple[Action, ...]


@dataclass(frozen=True, slots=True)
class RenameTable:
    pairs: tuple[tuple[Name, Name], ...]


@dataclass(frozen=True, slots=True)
class DropTables:
    tables: tuple[Name, ...]


@dataclass(frozen=True, slots=True)
class DropDatabase:
    schema: str


@dataclass(frozen=True, slots=True)
class Unknown:
    """A statement about `table` that could not be read: its facts are not known."""

    table: Name | None  # None: which table is not known either


@dataclass(frozen=True, slots=True)
class AddColumn:
    column: ColumnDef


@dataclass(frozen=True, slots=True)
class ChangeColumn:
    old: str
    column: ColumnDef  # MODIFY is a CHANGE to the same name


@dataclass(frozen=True, slots=True)
class DropColumn:
    name: str


@dataclass(frozen=True, slots=True)
class RenameColumn:
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class AddCheck:
    constraint: str | None
    column: str  # a CHECK (json_valid(`column`))


@dataclass(frozen=True, slots=True)
class DropCheck:
    constraint: str


@dataclass(frozen=True, slots=True)
class RenameTo:
    table: Name


Action = AddColumn | ChangeColumn | DropColumn | RenameColumn | AddCheck | DropCheck | RenameTo
Change = CreateTable | CreateLike | AlterTable | RenameTable | DropTables | DropDatabase | Unknown


class _Unreadable(Exception):
    pass


@dataclass
class _Reader:
    items: list[Token]
    pos: int = 0

    def peek(self, ahead: int = 0) -> Token | None:
        at = self.pos + ahead
        return self.items[at] if at < len(self.items) else None

    def text(self) -> str:
        """The next token's punctuation or keyword text ("" at the end or for a name)."""
        token = self.peek()
        return token.text if token is not None and not token.quoted else ""

    def word(self, ahead: int = 0) -> str:
        token = self.peek(ahead)
        return token.text.upper() if token is not None and not token.quoted else ""

    def take(self) -> Token:
        token = self.peek()
        if token is None:
            raise _Unreadable("the statement ends too early")
        self.pos += 1
        return token

    def accept(self, *words: str) -> bool:
        """Take the next tokens if they are `words` (keywords, case-insensitive)."""
        if all(self.word(i) == w for i, w in enumerate(words)):
            self.pos += len(words)
            return True
        return False

    def expect(self, text: str) -> None:
        if self.take().text != text:
            raise _Unreadable(f"expected {text!r}")

    def identifier(self) -> str:
        token = self.take()
        if not token.quoted and not re.fullmatch(r"[\w$\u0080-\uffff]+", token.text):
            raise _Unreadable(f"expected a name, got {token.text!r}")
        return token.text

    def name(self) -> Name:
        first = self.identifier()
        if self.text() == ".":
            self.pos += 1
            return first, self.identifier()
        return None, first

    def group(self) -> list[Token]:
        """The tokens inside the parentheses that start here (nested ones included)."""
        self.expect("(")
        start, depth = self.pos, 1
        while depth:
            token = self.take()
            if not token.quoted and token.text == "(":
                depth += 1
            elif not token.quoted and token.text == ")":
                depth -= 1
        return self.items[start : self.pos - 1]

    def until_comma(self) -> list[Token]:
        """The tokens up to the next top-level comma (taken) or the end."""
        start, depth = self.pos, 0
        while (token := self.peek()) is not None:
            if not token.quoted and token.text == "(":
                depth += 1
            elif not token.quoted and token.text == ")":
                depth -= 1
            elif not token.quoted and token.text == "," and depth == 0:
                self.pos += 1
                return self.items[start : self.pos - 1]
            self.pos += 1
        return self.items[start:]


def _split(items: list[Token]) -> list[list[Token]]:
    reader, parts = _Reader(items), []
    while reader.peek() is not None:
        parts.append(reader.until_comma())
    return parts


def _json_check(items: list[Token]) -> str | None:
    """The column of a `json_valid(`column`)` check expression, or None."""
    texts = [t.text for t in items]
    if len(items) == 4 and texts[0].lower() == "json_valid" and texts[1] == "(" and texts[3] == ")":
        return items[2].text
    return None


def _column(items: list[Token]) -> ColumnDef:
    reader = _Reader(items)
    name = reader.identifier()
    kind = reader.word()
    logical = kind.lower() if kind.lower() in LOGICAL_TYPES else None
    while reader.peek() is not None:
        if reader.accept("CHECK") and reader.text() == "(":
            if _json_check(reader.group()) is not None:
                logical = "json"
        else:
            reader.pos += 1
    return ColumnDef(name, logical)


_TABLE_ENTRIES = frozenset(
    {"PRIMARY", "KEY", "INDEX", "UNIQUE", "FOREIGN", "FULLTEXT", "SPATIAL", "PERIOD", "CHECK"}
)


def _table_check(items: list[Token]) -> tuple[str | None, str] | None:
    """A table-level `[CONSTRAINT [name]] CHECK (json_valid(`c`))`: (name, column)."""
    reader = _Reader(items)
    constraint = None
    if reader.accept("CONSTRAINT") and reader.word() != "CHECK":
        constraint = reader.identifier()
    if not reader.accept("CHECK"):
        return None
    column = _json_check(reader.group())
    return (constraint, column) if column is not None else None


def _create(reader: _Reader) -> Change:
    reader.accept("OR", "REPLACE")
    if reader.accept("TEMPORARY") or not reader.accept("TABLE"):
        # Temporary tables have no row events; CREATE INDEX, VIEW, TRIGGER...: no columns.
        return DropTables(())
    reader.accept("IF", "NOT", "EXISTS")
    table = reader.name()
    try:
        if reader.accept("LIKE"):
            return CreateLike(table, reader.name())
        if reader.text() == "(" and reader.word(1) == "LIKE":
            inner = _Reader(reader.group())
            inner.accept("LIKE")
            return CreateLike(table, inner.name())
        columns, checks = [], []
        for entry in _split(reader.group()):
            first = _Reader(entry).word()
            if first == "CONSTRAINT" or first in _TABLE_ENTRIES:
                check = _table_check(entry)
                if check is not None:
                    checks.append(check)
            elif entry:
                columns.append(_column(entry))
        return CreateTable(table, tuple(columns), tuple(checks))
    except _Unreadable:
        return Unknown(table)


def _add(reader: _Reader) -> list[Action]:
    reader.accept("COLUMN")
    reader.accept("IF", "NOT", "EXISTS")
    if reader.text() == "(":
        return [AddColumn(_column(entry)) for entry in _split(reader.group())]
    word = reader.word()
    if word == "CONSTRAINT" or word == "CHECK":
        check = _table_check(reader.items[reader.pos :])
        return [AddCheck(*check)] if check is not None else []
    if word in _TABLE_ENTRIES or word in ("SYSTEM", "PARTITION"):
        return []
    return [AddColumn(_column(reader.items[reader.pos :]))]


def _action(items: list[Token]) -> list[Action]:
    reader = _Reader(items)
    if reader.accept("ADD"):
        return _add(reader)
    if reader.accept("MODIFY"):
        reader.accept("COLUMN")
        reader.accept("IF", "EXISTS")
        column = _column(items[reader.pos :])
        return [ChangeColumn(column.name, column)]
    if reader.accept("CHANGE"):
        reader.accept("COLUMN")
        reader.accept("IF", "EXISTS")
        old = reader.identifier()
        return [ChangeColumn(old, _column(items[reader.pos :]))]
    if reader.accept("DROP"):
        if reader.accept("CONSTRAINT") or reader.accept("CHECK"):
            reader.accept("IF", "EXISTS")
            return [DropCheck(reader.identifier())]
        if reader.word() in ("PRIMARY", "INDEX", "KEY", "FOREIGN", "PARTITION", "SYSTEM", "PERIOD"):
            return []
        reader.accept("COLUMN")
        reader.accept("IF", "EXISTS")
        return [DropColumn(reader.identifier())]
    if reader.accept("RENAME"):
        if reader.accept("COLUMN"):
            old = reader.identifier()
            reader.accept("TO")
            return [RenameColumn(old, reader.identifier())]
        if reader.word() in ("INDEX", "KEY"):
            return []
        if not reader.accept("TO"):
            reader.accept("AS")
        return [RenameTo(reader.name())]
    return []  # ALTER COLUMN ... DEFAULT, table options, ALGORITHM, FORCE, partitions...


def _alter(reader: _Reader) -> Change:
    if not reader.accept("TABLE"):
        return DropTables(())  # ALTER DATABASE, VIEW, USER...
    reader.accept("IF", "EXISTS")
    table = reader.name()
    try:
        actions: list[Action] = []
        while reader.peek() is not None:
            actions += _action(reader.until_comma())
        return AlterTable(table, tuple(actions))
    except _Unreadable:
        return Unknown(table)


def interpret(sql: str) -> Change | None:
    """What `sql` does to tables' columns; None for a statement that changes none."""
    reader = _Reader(tokens(sql))
    try:
        if reader.accept("CREATE"):
            change = _create(reader)
        elif reader.accept("ALTER"):
            reader.accept("ONLINE")
            reader.accept("IGNORE")
            change = _alter(reader)
        elif reader.accept("DROP"):
            if reader.accept("DATABASE") or reader.accept("SCHEMA"):
                reader.accept("IF", "EXISTS")
                return DropDatabase(reader.identifier())
            reader.accept("TEMPORARY")
            if not reader.accept("TABLE"):
                return None
            reader.accept("IF", "EXISTS")
            names = _split(reader.items[reader.pos :])
            change = DropTables(tuple(_Reader(entry).name() for entry in names if entry))
        elif reader.accept("RENAME", "TABLE") or reader.accept("RENAME", "TABLES"):
            pairs = []
            for entry in _split(reader.items[reader.pos :]):
                part = _Reader(entry)
                old = part.name()
                if part.accept("WAIT"):
                    part.take()  # its number of seconds
                part.accept("NOWAIT")
                if not part.accept("TO"):
                    raise _Unreadable("expected TO")
                pairs.append((old, part.name()))
            change = RenameTable(tuple(pairs))
        else:
            return None
    except _Unreadable:
        return Unknown(None)
    if isinstance(change, DropTables) and not change.tables:
        return None
    return change
