-- cdc trigger capture: the pattern `cdc triggers install` follows, readable by a DBA.
-- Generated from cdc's own trigger generator (cdc/capture/triggers/pattern.py); a test
-- keeps this file equal to it. Do not install it by hand: `cdc triggers install` makes
-- these for every included table from information_schema, records them (so `status`
-- and `remove` know exactly what is cdc's), and keeps them up to date after ALTER TABLE.
--
-- Each trigger inserts one row into the staging table (sql/trigger_tables.sql) inside
-- the application's transaction: the change's type, table, the table version the row
-- was staged by, the user (@cdc_user_id, set by the application per transaction), the
-- connection as the transaction's identity, the statement's UTC time, and the row
-- images as JSON_OBJECT('before', ..., 'after', ...). Values are staged losslessly:
-- text and binary as HEX, FLOAT as DOUBLE, DECIMAL and dates as text; the daemon turns
-- them into the same values binlog capture gives. Triggers never write `event`: the
-- daemon moves committed staging rows there with gapless ids, in one transaction.
--
-- Example table:
--   CREATE TABLE hosp.patient (
--     id         INT PRIMARY KEY,
--     name       VARCHAR(100) CHARACTER SET utf8mb4,
--     born       DATE,
--     balance    DECIMAL(10,2),
--     weight_kg  FLOAT,
--     photo      BLOB,
--     updated_by VARCHAR(32)
--   );

-- MariaDB 10.5+ (CREATE OR REPLACE TRIGGER on reinstall: atomic)
SET SESSION sql_mode = 'STRICT_ALL_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION';
CREATE OR REPLACE TRIGGER `hosp`.`cdc_patient_ai` AFTER INSERT ON `hosp`.`patient` FOR EACH ROW
INSERT INTO `cdc`.`cdc_staging` (`type`, `schema_name`, `table_name`, `version`, `user_id`, `txn`, `ts`, `data`) VALUES ('CREATE', 'hosp', 'patient', 'b85d8a89362cbe9d', LEFT(CAST(@cdc_user_id AS CHAR), 255), CONCAT('connection ', CONNECTION_ID()), UTC_TIMESTAMP(6), JSON_OBJECT('after', JSON_OBJECT('id', NEW.`id`, 'name', HEX(NEW.`name`), 'born', CAST(NEW.`born` AS CHAR), 'balance', CAST(NEW.`balance` AS CHAR), 'weight_kg', CAST(NEW.`weight_kg` AS DOUBLE), 'photo', HEX(NEW.`photo`), 'updated_by', HEX(NEW.`updated_by`))));
CREATE OR REPLACE TRIGGER `hosp`.`cdc_patient_au` AFTER UPDATE ON `hosp`.`patient` FOR EACH ROW
INSERT INTO `cdc`.`cdc_staging` (`type`, `schema_name`, `table_name`, `version`, `user_id`, `txn`, `ts`, `data`) VALUES ('UPDATE', 'hosp', 'patient', 'b85d8a89362cbe9d', LEFT(CAST(@cdc_user_id AS CHAR), 255), CONCAT('connection ', CONNECTION_ID()), UTC_TIMESTAMP(6), JSON_OBJECT('before', JSON_OBJECT('id', OLD.`id`, 'name', HEX(OLD.`name`), 'born', CAST(OLD.`born` AS CHAR), 'balance', CAST(OLD.`balance` AS CHAR), 'weight_kg', CAST(OLD.`weight_kg` AS DOUBLE), 'photo', HEX(OLD.`photo`), 'updated_by', HEX(OLD.`updated_by`)), 'after', JSON_OBJECT('id', NEW.`id`, 'name', HEX(NEW.`name`), 'born', CAST(NEW.`born` AS CHAR), 'balance', CAST(NEW.`balance` AS CHAR), 'weight_kg', CAST(NEW.`weight_kg` AS DOUBLE), 'photo', HEX(NEW.`photo`), 'updated_by', HEX(NEW.`updated_by`))));
CREATE OR REPLACE TRIGGER `hosp`.`cdc_patient_ad` AFTER DELETE ON `hosp`.`patient` FOR EACH ROW
INSERT INTO `cdc`.`cdc_staging` (`type`, `schema_name`, `table_name`, `version`, `user_id`, `txn`, `ts`, `data`) VALUES ('DELETE', 'hosp', 'patient', 'b85d8a89362cbe9d', LEFT(CAST(@cdc_user_id AS CHAR), 255), CONCAT('connection ', CONNECTION_ID()), UTC_TIMESTAMP(6), JSON_OBJECT('before', JSON_OBJECT('id', OLD.`id`, 'name', HEX(OLD.`name`), 'born', CAST(OLD.`born` AS CHAR), 'balance', CAST(OLD.`balance` AS CHAR), 'weight_kg', CAST(OLD.`weight_kg` AS DOUBLE), 'photo', HEX(OLD.`photo`), 'updated_by', HEX(OLD.`updated_by`))));

-- MySQL 8 (reinstall: LOCK TABLES ... WRITE, DROP TRIGGER, CREATE TRIGGER, UNLOCK TABLES)
SET SESSION sql_mode = 'STRICT_ALL_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION';
CREATE TRIGGER `hosp`.`cdc_patient_ai` AFTER INSERT ON `hosp`.`patient` FOR EACH ROW
INSERT INTO `cdc`.`cdc_staging` (`type`, `schema_name`, `table_name`, `version`, `user_id`, `txn`, `ts`, `data`) VALUES ('CREATE', 'hosp', 'patient', 'b85d8a89362cbe9d', LEFT(CAST(@cdc_user_id AS CHAR), 255), CONCAT('connection ', CONNECTION_ID()), UTC_TIMESTAMP(6), JSON_OBJECT('after', JSON_OBJECT('id', NEW.`id`, 'name', HEX(NEW.`name`), 'born', CAST(NEW.`born` AS CHAR), 'balance', CAST(NEW.`balance` AS CHAR), 'weight_kg', CAST(NEW.`weight_kg` AS DOUBLE), 'photo', HEX(NEW.`photo`), 'updated_by', HEX(NEW.`updated_by`))));
CREATE TRIGGER `hosp`.`cdc_patient_au` AFTER UPDATE ON `hosp`.`patient` FOR EACH ROW
INSERT INTO `cdc`.`cdc_staging` (`type`, `schema_name`, `table_name`, `version`, `user_id`, `txn`, `ts`, `data`) VALUES ('UPDATE', 'hosp', 'patient', 'b85d8a89362cbe9d', LEFT(CAST(@cdc_user_id AS CHAR), 255), CONCAT('connection ', CONNECTION_ID()), UTC_TIMESTAMP(6), JSON_OBJECT('before', JSON_OBJECT('id', OLD.`id`, 'name', HEX(OLD.`name`), 'born', CAST(OLD.`born` AS CHAR), 'balance', CAST(OLD.`balance` AS CHAR), 'weight_kg', CAST(OLD.`weight_kg` AS DOUBLE), 'photo', HEX(OLD.`photo`), 'updated_by', HEX(OLD.`updated_by`)), 'after', JSON_OBJECT('id', NEW.`id`, 'name', HEX(NEW.`name`), 'born', CAST(NEW.`born` AS CHAR), 'balance', CAST(NEW.`balance` AS CHAR), 'weight_kg', CAST(NEW.`weight_kg` AS DOUBLE), 'photo', HEX(NEW.`photo`), 'updated_by', HEX(NEW.`updated_by`))));
CREATE TRIGGER `hosp`.`cdc_patient_ad` AFTER DELETE ON `hosp`.`patient` FOR EACH ROW
INSERT INTO `cdc`.`cdc_staging` (`type`, `schema_name`, `table_name`, `version`, `user_id`, `txn`, `ts`, `data`) VALUES ('DELETE', 'hosp', 'patient', 'b85d8a89362cbe9d', LEFT(CAST(@cdc_user_id AS CHAR), 255), CONCAT('connection ', CONNECTION_ID()), UTC_TIMESTAMP(6), JSON_OBJECT('before', JSON_OBJECT('id', OLD.`id`, 'name', HEX(OLD.`name`), 'born', CAST(OLD.`born` AS CHAR), 'balance', CAST(OLD.`balance` AS CHAR), 'weight_kg', CAST(OLD.`weight_kg` AS DOUBLE), 'photo', HEX(OLD.`photo`), 'updated_by', HEX(OLD.`updated_by`))));
