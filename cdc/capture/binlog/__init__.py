"""The binlog source: the replica protocol through mysql-replication (the only code that
imports it), transaction boundaries, GTIDs and row decoding."""
