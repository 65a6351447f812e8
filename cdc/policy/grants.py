"""Grants: what one credential may read (tables by glob on `schema.table`, event types,
scopes), and the check of a request's filters against it."""

from __future__ import annotations

from dataclasses import dataclass, field

from cdc.globs import Glob
from cdc.sections import SCOPES


class Forbidden(Exception):
    """A request asks for what its grant does not allow; `parameter` names what."""

    def __init__(self, parameter: str) -> None:
        super().__init__(parameter)
        self.parameter = parameter


@dataclass(frozen=True, slots=True)
class Grant:
    """What a credential may read. `tables` are globs on `schema.table` (none: nothing);
    `types` None is every type; `everything` is the grant of a server without auth."""

    tables: tuple[str, ...] = ()
    types: tuple[str, ...] | None = None
    scopes: frozenset[str] = frozenset()
    everything: bool = False
    _globs: tuple[Glob, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_globs", tuple(Glob(t) for t in self.tables))

    def allows_table(self, schema: str, table: str) -> bool:
        if self.everything:
            return True
        name = f"{schema}.{table}"
        return any(g.matches(name) for g in self._globs)

    def allows_type(self, kind: str) -> bool:
        return self.everything or self.types is None or kind in self.types

    def has_scope(self, scope: str) -> bool:
        return self.everything or scope in self.scopes

    def check(self, tables: tuple[tuple[str | None, str], ...], types: tuple[str, ...]) -> None:
        """Refuses (`Forbidden`) a request naming a table or type outside the grant,
        whether or not that table exists. A table without a schema is a pattern (that
        name in any schema): it is intersected with the grant, not refused."""
        for kind in types:
            if not self.allows_type(kind):
                raise Forbidden("type")
        for schema, table in tables:
            if schema is not None and not self.allows_table(schema, table):
                raise Forbidden("table")


EVERYTHING = Grant(tables=("*",), scopes=SCOPES, everything=True)
"""Every table, every type, every scope: the grant of every client when auth is off."""
