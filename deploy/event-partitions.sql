-- Monthly partitions of the event table, for very large installs: old months are dropped
-- whole (`ALTER TABLE event DROP PARTITION p2026_01`: instant, one DDL statement in the
-- binlog) instead of pruned row by row (`cdc prune`, `--retention`).
--
-- Partitioning by RANGE needs the partitioning column in every unique key: the primary
-- key becomes (id, timestamp). Ids stay unique (the daemon gives them out) and every
-- query by id still uses the key's first column. Run it with the daemon stopped, in the
-- DSN's database, once `cdc init` made the table; the ALTERs copy the table (allow time
-- and disk for a large one). Adapt the months: one partition per month up to the current
-- one and the next, and `pmax` for anything later. Tested on MariaDB 10.11
-- (tests/integration/test_ops.py); MySQL 8 takes the same statements.
ALTER TABLE `event` DROP PRIMARY KEY, ADD PRIMARY KEY (`id`, `timestamp`);

ALTER TABLE `event` PARTITION BY RANGE COLUMNS (`timestamp`) (
  PARTITION p2026_10 VALUES LESS THAN ('2026-11-01'),
  PARTITION p2026_11 VALUES LESS THAN ('2026-12-01'),
  PARTITION p2026_12 VALUES LESS THAN ('2027-01-01'),
  PARTITION pmax VALUES LESS THAN (MAXVALUE)
);

-- Each month (before `pmax` starts to fill), split the next month off `pmax`; it holds no
-- rows yet, so this is quick:
--   ALTER TABLE `event` REORGANIZE PARTITION pmax INTO (
--     PARTITION p2027_01 VALUES LESS THAN ('2027-02-01'),
--     PARTITION pmax VALUES LESS THAN (MAXVALUE));
--
-- And drop the months older than the retention, oldest first, never the current month
-- (it holds the newest event, from which ids go on):
--   ALTER TABLE `event` DROP PARTITION p2026_10;
--
-- The partitions and their rows:
--   SELECT PARTITION_NAME, TABLE_ROWS FROM information_schema.PARTITIONS
--   WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'event';
