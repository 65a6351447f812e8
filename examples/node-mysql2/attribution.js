'use strict';
// Who made the change, for cdc, with mysql2: every statement carries a sqlcommenter tag
// (`/*route='%2Fpatients',user_id='7'*/`, read from the binlog's Annotate_rows events),
// and every transaction sets `@cdc_user_id` (read by the capture triggers). Setting both
// lets either capture mode attribute the change.

const USER_VARIABLE = '@cdc_user_id';

/** A tag value as sqlcommenter writes it: URL-encoded, with `'` escaped. */
function encodeValue(value) {
  return encodeURIComponent(String(value)).replace(/'/g, "\\'");
}

/**
 * The sqlcommenter comment for `tags` ({key: value}): keys URL-encoded and sorted,
 * values URL-encoded and quoted; null and undefined values are left out. '' for no tag.
 */
function sqlComment(tags) {
  const pairs = Object.keys(tags || {})
    .filter((key) => tags[key] !== undefined && tags[key] !== null)
    .map((key) => [encodeURIComponent(key), encodeValue(tags[key])])
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([key, value]) => `${key}='${value}'`);
  return pairs.length ? `/*${pairs.join(',')}*/` : '';
}

/** `sql` with the tag appended (sqlcommenter puts it at the end, before any `;`). */
function withComment(sql, tags) {
  const comment = sqlComment(tags);
  if (!comment) return sql;
  const body = sql.replace(/[\s;]+$/, '');
  return `${body} ${comment}`;
}

/**
 * A wrapper around a mysql2/promise connection (or pool) whose `query` and `execute`
 * append the tag to every statement. `tags` is an object, or a function returning one
 * (read at each statement, e.g. from an AsyncLocalStorage of the current request).
 */
function tagged(conn, tags) {
  const current = typeof tags === 'function' ? tags : () => tags;
  const rewrite = (sql) =>
    typeof sql === 'string'
      ? withComment(sql, current())
      : { ...sql, sql: withComment(sql.sql, current()) };
  return {
    raw: conn,
    query: (sql, values) => conn.query(rewrite(sql), values),
    execute: (sql, values) => conn.execute(rewrite(sql), values),
  };
}

/** The tags of a user: `user` is an id, or {id, route, ...other tags}. */
function userTags(user, userTag = 'user_id') {
  if (user !== null && typeof user === 'object') {
    const { id, ...rest } = user;
    return { ...rest, [userTag]: id };
  }
  return { [userTag]: user };
}

/**
 * Runs `fn(db)` in a transaction on a connection of `pool`, as `user` (an id, or
 * {id, route}): `db` is the connection with every statement tagged, and `@cdc_user_id`
 * holds the user's id for the whole transaction. Commits when `fn` returns, rolls back
 * when it throws (and rethrows). Returns what `fn` returned.
 */
async function withUserTransaction(pool, user, fn, { userTag = 'user_id' } = {}) {
  const tags = userTags(user, userTag);
  const conn = await pool.getConnection();
  let clean = false;
  try {
    let result;
    try {
      await conn.query('BEGIN');
      // Set at the start of every transaction, not once per connection: the pool hands
      // this connection to whichever request comes next.
      await conn.query(`SET ${USER_VARIABLE} = ?`, [String(tags[userTag])]);
      result = await fn(tagged(conn, tags));
      await conn.query('COMMIT');
    } catch (error) {
      await conn.query('ROLLBACK').catch(() => {}); // the connection may be gone: rethrow the cause
      throw error;
    }
    return result;
  } finally {
    // ALWAYS cleared before the connection goes back: a pooled connection keeps its
    // session variables, so without this the next request on it (a script, a request
    // with no user) would be attributed to this user by the capture triggers.
    try {
      await conn.query(`SET ${USER_VARIABLE} = NULL`);
      clean = true;
    } catch {
      // Not cleared (the connection broke): it must not be reused.
    }
    if (clean) conn.release();
    else conn.destroy();
  }
}

/**
 * An application event (LOGIN, CHART_PRINTED...) through cdc's outbox, in the caller's
 * transaction: it is stored only if that transaction commits, in its place among the
 * transaction's row changes. `record` ({schema, table, rowId}) names what the event is
 * about, if anything; `outbox` is the outbox table (in cdc's event database).
 */
async function emitEvent(
  conn,
  type,
  userId,
  data,
  record = null,
  { outbox = 'cdc.cdc_outbox' } = {},
) {
  const table = outbox
    .split('.')
    .map((part) => '`' + part.replace(/`/g, '``') + '`')
    .join('.');
  // row_id as cdc writes it: the key value, a JSON array for a composite key.
  const rowId = record && record.rowId !== undefined && record.rowId !== null ? record.rowId : null;
  const [result] = await conn.query(
    `INSERT INTO ${table} (type, user_id, data, schema_name, table_name, row_id)` +
      ' VALUES (?, ?, ?, ?, ?, ?)',
    [
      type,
      userId === null || userId === undefined ? null : String(userId),
      data === null || data === undefined ? null : JSON.stringify(data),
      record ? record.schema || null : null,
      record ? record.table || null : null,
      rowId === null ? null : typeof rowId === 'string' ? rowId : JSON.stringify(rowId),
    ],
  );
  return result.insertId;
}

module.exports = {
  USER_VARIABLE,
  sqlComment,
  withComment,
  tagged,
  userTags,
  withUserTransaction,
  emitEvent,
};
