"""cdc: capture every committed row change of MySQL/MariaDB from the binlog."""

__version__ = "0.1.0"
