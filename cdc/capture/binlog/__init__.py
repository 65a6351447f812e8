"""The binlog source: the replica protocol through mysql-replication (the only code that
imports it), transaction boundaries, GTIDs, table filters and row decoding."""
