-- cdc trigger mode: the tables `cdc triggers install` creates in the event database,
-- next to `event`. Idempotent: safe to apply again. The capture triggers run with
-- their definer's rights: application accounts need no privilege on these tables, and
-- should have none.

-- What the capture triggers stage, one row per row change (and per outbox row). The
-- daemon reads the committed rows in id order, writes them to `event` with its own
-- gapless ids and deletes them, in one transaction.
CREATE TABLE IF NOT EXISTS `cdc_staging` (
  `id`          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  `type`        VARCHAR(32)     NOT NULL COMMENT 'CREATE, UPDATE, DELETE, or OUTBOX (a row of cdc_outbox)',
  `schema_name` VARCHAR(64)     NOT NULL,
  `table_name`  VARCHAR(64)     NOT NULL,
  `version`     CHAR(16)        NOT NULL COMMENT 'the cdc_trigger_specs version of the trigger that wrote it',
  `user_id`     VARCHAR(255)    NULL     COMMENT '@cdc_user_id of the session, as text',
  `txn`         VARCHAR(64)     NOT NULL COMMENT 'connection <id>: the best transaction identity a trigger sees',
  `ts`          DATETIME(6)     NOT NULL COMMENT 'time of the statement, UTC',
  `data`        LONGTEXT        NOT NULL COMMENT '{"before": {...}, "after": {...}} in the staged form (cdc_trigger_specs)',
  PRIMARY KEY (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Every table version the triggers have staged: its columns and how each is staged
-- (JSON), by the version the staging rows carry. Kept while staging rows may refer to it.
CREATE TABLE IF NOT EXISTS `cdc_trigger_specs` (
  `version`     CHAR(16)        NOT NULL,
  `schema_name` VARCHAR(64)     NOT NULL,
  `table_name`  VARCHAR(64)     NOT NULL,
  `spec`        LONGTEXT        NOT NULL,
  `created_at`  DATETIME(6)     NOT NULL,
  PRIMARY KEY (`version`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The tables the triggers are installed on, the version installed, and the triggers'
-- names (what `cdc triggers remove` drops, and nothing else).
CREATE TABLE IF NOT EXISTS `cdc_triggers` (
  `schema_name`  VARCHAR(64)    NOT NULL,
  `table_name`   VARCHAR(64)    NOT NULL,
  `version`      CHAR(16)       NOT NULL,
  `triggers`     TEXT           NOT NULL COMMENT 'JSON array of the trigger names',
  `installed_at` DATETIME(6)    NOT NULL,
  PRIMARY KEY (`schema_name`, `table_name`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The HMAC pads of the [[redact]] hash keys the triggers hash with (the key itself is
-- in no trigger's text). They are as secret as the key: no one but cdc may read them.
CREATE TABLE IF NOT EXISTS `cdc_redact_keys` (
  `id`          CHAR(16)        NOT NULL,
  `ipad`        VARBINARY(64)   NOT NULL,
  `opad`        VARBINARY(64)   NOT NULL,
  PRIMARY KEY (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
