-- cdc: the capture lease and the registry of running processes (standby failover).
-- Idempotent: safe to apply again. Applied by `cdc init` and `cdc run` next to the event table.

-- Who captures: one row. `owner` is the token of the active daemon's lease (its name and
-- a token of this acquisition); the connection ids are the ones a new owner ends before
-- its first write (a frozen old owner must neither hold the checkpoint row nor commit
-- after waking). `server` and `server_boot` tell the ids of another server (a replica
-- the row was copied to) or of another server run apart.
CREATE TABLE IF NOT EXISTS `cdc_lease` (
  `id`                TINYINT UNSIGNED NOT NULL COMMENT 'always 1',
  `owner`             VARCHAR(255)     NOT NULL COMMENT 'name/token of the lease holder',
  `name`              VARCHAR(255)     NOT NULL COMMENT 'the holder''s row in cdc_registry',
  `lock_connection`   BIGINT UNSIGNED  NOT NULL COMMENT 'the connection holding GET_LOCK',
  `writer_connection` BIGINT UNSIGNED  NULL     COMMENT 'the connection writing events',
  `server`            VARCHAR(64)      NOT NULL COMMENT 'the server the ids are of (mysql.server_identity)',
  `server_boot`       BIGINT           NOT NULL COMMENT 'UNIX time it started (approximate)',
  `acquired_at`       DATETIME(6)      NOT NULL,
  PRIMARY KEY (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The running `cdc run` and `cdc serve` processes, each heartbeating its row; a row whose
-- heartbeat is older than three intervals is a dead process's (removed by the living).
CREATE TABLE IF NOT EXISTS `cdc_registry` (
  `name`          VARCHAR(255)     NOT NULL COMMENT 'host:pid unless named',
  `host`          VARCHAR(255)     NOT NULL,
  `pid`           INT UNSIGNED     NOT NULL,
  `role`          VARCHAR(16)      NOT NULL COMMENT 'active, standby or serve',
  `interval_s`    DOUBLE           NOT NULL COMMENT 'seconds between heartbeats',
  `started_at`    DATETIME(6)      NOT NULL,
  `heartbeat_at`  DATETIME(6)      NOT NULL,
  PRIMARY KEY (`name`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
