"""The HTTP side: the aiohttp app (`/events`, `/stream`, `/health`, `/metrics`, the page),
query parsing, the stream hub, and the feeds that tell it of committed events.

Importable without the binlog library: `cdc serve` runs it alone."""
