# Sourced (not executed: keep it without the x bit) by the MySQL image's entrypoint on
# its first start (docker-entrypoint-initdb.d), before mysql-init.sql: creates the `cdc`
# user with the password of the compose secret `cdc_db_password`, so no password is
# written in a file of the repository.
cdc_password=$(tr -d '\n' < /run/secrets/cdc_db_password)
docker_process_sql --database=mysql <<SQL
CREATE USER IF NOT EXISTS 'cdc'@'%' IDENTIFIED BY '${cdc_password}';
SQL
unset cdc_password
