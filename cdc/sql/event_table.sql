-- cdc: the event table and the capture checkpoint. Idempotent: safe to apply again.
-- Applied by `cdc init` to the database named in the DSN.

-- One row per captured change, in commit order. `id` is assigned by the daemon:
-- strictly increasing and without gaps, written in the same transaction as the checkpoint.
CREATE TABLE IF NOT EXISTS `event` (
  `id`          BIGINT UNSIGNED NOT NULL,
  `timestamp`   DATETIME(6)     NOT NULL COMMENT 'commit time of the change, UTC',
  `user_id`     VARCHAR(255)    NULL     COMMENT 'value of the --user-column of the row, as text',
  `type`        VARCHAR(32)     NOT NULL COMMENT 'CREATE, UPDATE, DELETE, CASCADE, or an application event type',
  `schema_name` VARCHAR(64)     NULL     COMMENT 'NULL for an application event about no record',
  `table_name`  VARCHAR(64)     NULL,
  `row_id`      VARCHAR(1024)   NULL     COMMENT 'primary key: the value, a JSON array for a composite key, NULL without a key',
  `data`        JSON            NOT NULL COMMENT '{"after": ...} / {"before": ..., "after": ..., "changed": [...]} / {"before": ...}',
  `txn`         VARCHAR(255)    NOT NULL COMMENT 'source transaction: GTID, or binlog file:position of its commit',
  `context`     JSON            NULL     COMMENT 'the statement''s tags named by --context-tags',
  PRIMARY KEY (`id`),
  KEY `event_by_time` (`timestamp`),
  KEY `event_by_table_time` (`schema_name`, `table_name`, `timestamp`),
  KEY `event_by_row` (`schema_name`, `table_name`, `row_id`(255), `id`),
  KEY `event_by_user` (`user_id`, `id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Where capture resumes: the binlog position (and GTID state) just after the last
-- transaction whose events are in `event`, and the last event id given out.
CREATE TABLE IF NOT EXISTS `cdc_checkpoint` (
  `id`               TINYINT UNSIGNED NOT NULL COMMENT 'always 1',
  `log_file`         VARCHAR(255)     NOT NULL,
  `log_pos`          BIGINT UNSIGNED  NOT NULL,
  `gtid`             TEXT             NULL,
  `last_event_id`    BIGINT UNSIGNED  NOT NULL,
  `source_timestamp` DATETIME(6)      NULL COMMENT 'commit time of the last transaction read',
  `server_uuid`      VARCHAR(64)      NULL COMMENT 'identity of the captured server',
  `column_facts`     LONGTEXT         NULL COMMENT 'MariaDB JSON/UUID/INET columns as of the position (JSON)',
  `owner`            VARCHAR(255)     NULL COMMENT 'the lease (cdc_lease.owner) that wrote it',
  `updated_at`       DATETIME(6)      NOT NULL,
  PRIMARY KEY (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Application events (LOGIN, REPORT_PRINTED...): an application inserts a row here in its
-- own transaction, and the daemon makes it an event of that type, in commit order with
-- the transaction's row changes (the row may be deleted in the same transaction; the
-- daemon deletes the ones it has stored). `type` is letters, digits and _ (up to 32),
-- upper case, and not one of the row changes' own.
CREATE TABLE IF NOT EXISTS `cdc_outbox` (
  `id`          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  `type`        VARCHAR(32)     NOT NULL,
  `user_id`     VARCHAR(255)    NULL     COMMENT 'the event''s user (else the statement''s tag)',
  `data`        JSON            NULL,
  `schema_name` VARCHAR(64)     NULL     COMMENT 'the record the event is about, if any',
  `table_name`  VARCHAR(64)     NULL,
  `row_id`      VARCHAR(1024)   NULL,
  PRIMARY KEY (`id`),
  CONSTRAINT `cdc_outbox_type` CHECK (`type` REGEXP '^[A-Z][A-Z0-9_]{0,31}$'
    AND `type` NOT IN ('CREATE', 'UPDATE', 'DELETE', 'CASCADE'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
