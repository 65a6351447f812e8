"""Capture: a source's row changes to the event table, exactly once, in commit order.

The loop (`loop`), its pure batching policy (`batching`), the records it writes
(`records`), and the sources (`binlog/`)."""
