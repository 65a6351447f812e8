-- The least-privilege `cdc` user's grants (run after mysql-init.sh created the user from
-- its secret). Exactly what `cdc check` requires, and no more:
-- reading the binlog as a replica, the server's binlog position and files, the captured
-- tables' column facts (SELECT on *.*; narrow it to the captured schemas plus
-- `mysql`.* if you prefer, and `cdc check` will say what it misses),
GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO 'cdc'@'%';
-- and the event database: the daemon writes events and its checkpoint, `cdc init` and
-- start-up create and migrate its tables, `cdc prune` and --retention delete old events.
CREATE DATABASE IF NOT EXISTS `cdc`;
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX ON `cdc`.* TO 'cdc'@'%';
