"""Which tables are captured: include/exclude globs on `schema.table`, never the system
schemas (unless asked for) and never the daemon's own tables."""

from __future__ import annotations

import fnmatch

SYSTEM_SCHEMAS = frozenset({"mysql", "sys", "information_schema", "performance_schema"})


class TableFilter:
    """Decides, once per schema.table, whether its changes are captured."""

    def __init__(
        self,
        own: frozenset[tuple[str, str]],
        include: tuple[str, ...],
        exclude: tuple[str, ...],
    ) -> None:
        self.own = own
        self.include = include
        self.exclude = exclude
        self._cache: dict[tuple[str, str], bool] = {}

    def __call__(self, schema: str, table: str) -> bool:
        key = (schema, table)
        decided = self._cache.get(key)
        if decided is None:
            decided = self._cache[key] = self._decide(schema, table)
        return decided

    def _decide(self, schema: str, table: str) -> bool:
        if (schema, table) in self.own:
            return False  # never capture our own writes, whatever the patterns say
        name = f"{schema}.{table}"
        if self.include:
            if not any(fnmatch.fnmatchcase(name, p) for p in self.include):
                return False
        elif schema in SYSTEM_SCHEMAS:
            return False
        return not any(fnmatch.fnmatchcase(name, p) for p in self.exclude)
