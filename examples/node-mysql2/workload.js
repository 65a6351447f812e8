#!/usr/bin/env node
'use strict';
// A hospital-like workload through attribution.js, and a manifest of exactly what it
// committed: for every committed transaction, the events cdc should store for it, in
// order. Several workers share one pool and interleave short, long (open across the
// others' commits), multi-statement, rolled-back and failing transactions, each as a
// user, with LOGIN events through the outbox.
//
//   node workload.js --dsn mysql://user:pass@host:port/appdb --events-db cdc \
//     (--seconds N | --transactions N) [--seed S] [--workers W] [--app-triggers] \
//     [--out manifest.json]
//
// Each worker changes only the rows it created, so given --seed the transactions and
// their events are the same on every run; only their interleaving (and the
// AUTO_INCREMENT ids) differ. The events expected of an untagged statement (the
// "nightly script") take their user from the row's `updated_by`: capture with
// `--user-column updated_by`; the tags other than the user's are in `context`: capture
// with `--context-tags route,request_id`.

const fs = require('node:fs');
const { parseArgs } = require('node:util');
const mysql = require('mysql2/promise');
const { emitEvent, tagged, userTags, withUserTransaction } = require('./attribution');

const STAFF = ['7', '12', "o'neil", 'amélie@ward 3', 'dr/kabila', '42'];
const SCRIPT_USER = 'script:nightly';
const NAMES = ['Amani', 'Baraka', 'Chausiku', 'Dalia', 'Eshe', 'Faraji', 'Gamba', 'Halima'];
const WARDS = ['maternity', 'pediatrics', 'surgery', 'medicine', 'emergency'];
const DRUGS = ['amoxicillin', 'artemether', 'paracetamol', 'ORS', 'zinc', 'ferrous sulfate'];
const LABELS = ['consultation', 'lab: malaria RDT', 'x-ray', 'bed day', 'pharmacy'];

// What a kind of transaction is, how often it comes, the route its request had.
const KINDS = [
  ['admit', 18, '/patients/new'],
  ['update_contact', 14, '/patients/:id?tab=contact'],
  ['login', 8, '/login'],
  ['login_and_change', 6, '/patients/:id/edit'],
  ['long_visit', 8, '/visits/new'],
  ['invoice', 9, '/billing/invoices'],
  ['transfer', 6, '/visits/transfer'],
  ['prescribe', 6, '/patients/:id/prescriptions'],
  ['discharge', 4, '/patients/:id/discharge'],
  ['rollback', 6, '/patients/new?draft=1'],
  ['long_rollback', 3, '/visits/new?cancel=1'],
  ['fail_midway', 6, '/billing/invoices?retry=0'],
  ['script', 4, null],
];
const TOTAL_WEIGHT = KINDS.reduce((sum, [, weight]) => sum + weight, 0);

class Rollback extends Error {}

/** mulberry32: a small seeded generator, so a seed gives the same choices everywhere. */
function generator(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    pick: (items) => items[Math.floor(next() * items.length)],
  };
}

const started = process.hrtime.bigint();
const now = () => Number(process.hrtime.bigint() - started) / 1e6; // ms since start
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const q = (name) => '`' + name.replace(/`/g, '``') + '`';

function options() {
  const { values } = parseArgs({
    options: {
      dsn: { type: 'string' },
      'events-db': { type: 'string', default: 'cdc' },
      seconds: { type: 'string' },
      transactions: { type: 'string' },
      seed: { type: 'string', default: '1' },
      workers: { type: 'string', default: '4' },
      'long-ms': { type: 'string', default: '600' },
      'app-triggers': { type: 'boolean', default: false },
      out: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  const usage =
    'usage: node workload.js --dsn mysql://user:pass@host:port/appdb [--events-db cdc]\n' +
    '  (--seconds N | --transactions N) [--seed S] [--workers W] [--long-ms MS]\n' +
    '  [--app-triggers] [--out manifest.json]';
  if (values.help) {
    console.log(usage);
    process.exit(0);
  }
  if (!values.dsn || (values.seconds === undefined) === (values.transactions === undefined)) {
    console.error(usage);
    process.exit(2);
  }
  const url = new URL(values.dsn);
  const schema = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (url.protocol !== 'mysql:' || !schema) {
    console.error('--dsn must be mysql://user:pass@host:port/appdb (with the schema to write)');
    process.exit(2);
  }
  return {
    connection: {
      host: url.hostname,
      port: Number(url.port || 3306),
      user: decodeURIComponent(url.username),
      password: decodeURIComponent(url.password),
    },
    schema,
    eventsDb: values['events-db'],
    seconds: values.seconds === undefined ? null : Number(values.seconds),
    transactions: values.transactions === undefined ? null : Number(values.transactions),
    seed: Number(values.seed),
    workers: Number(values.workers),
    longMs: Number(values['long-ms']),
    appTriggers: values['app-triggers'],
    out: values.out,
  };
}

/** The workload's tables (if missing), and the application's own trigger when asked. */
async function setUp(conn, opts) {
  const s = q(opts.schema);
  await conn.query(`CREATE DATABASE IF NOT EXISTS ${s}`);
  await conn.query(
    `CREATE TABLE IF NOT EXISTS ${s}.patient (
       id INT AUTO_INCREMENT PRIMARY KEY,
       display_name VARCHAR(100) NOT NULL,
       phone VARCHAR(32) NULL,
       updated_by VARCHAR(64) NULL
     ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  );
  await conn.query(
    `CREATE TABLE IF NOT EXISTS ${s}.visit (
       id INT AUTO_INCREMENT PRIMARY KEY,
       patient_id INT NOT NULL,
       ward VARCHAR(32) NOT NULL,
       reason VARCHAR(200) NULL,
       moves INT NOT NULL DEFAULT 0,
       CONSTRAINT visit_patient FOREIGN KEY (patient_id) REFERENCES patient (id) ON DELETE CASCADE
     ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  );
  // A composite key: row_id is the JSON array [invoice_id, line].
  await conn.query(
    `CREATE TABLE IF NOT EXISTS ${s}.invoice_item (
       invoice_id INT NOT NULL,
       line INT NOT NULL,
       label VARCHAR(100) NOT NULL,
       amount DECIMAL(10,2) NOT NULL,
       PRIMARY KEY (invoice_id, line)
     ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  );
  await conn.query(
    `CREATE TABLE IF NOT EXISTS ${s}.prescription (
       patient_id INT NOT NULL,
       line INT NOT NULL,
       drug VARCHAR(64) NOT NULL,
       dose VARCHAR(32) NOT NULL,
       PRIMARY KEY (patient_id, line)
     ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  );
  if (opts.appTriggers) {
    // The application's own trigger: capture triggers (cdc triggers install) live beside it.
    await conn.query(
      `CREATE TABLE IF NOT EXISTS ${s}.patient_audit (
         patient_id INT PRIMARY KEY,
         updates INT NOT NULL,
         updated_by VARCHAR(64) NULL
       ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
    );
    await conn.query(
      `CREATE TRIGGER IF NOT EXISTS ${s}.patient_audit_after_update AFTER UPDATE ON ${s}.patient
       FOR EACH ROW INSERT INTO ${s}.patient_audit (patient_id, updates, updated_by)
         VALUES (NEW.id, 1, NEW.updated_by)
         ON DUPLICATE KEY UPDATE updates = updates + 1, updated_by = NEW.updated_by`,
    );
  }
  const [[{ top }]] = await conn.query(
    `SELECT COALESCE(MAX(invoice_id), 0) AS top FROM ${s}.invoice_item`,
  );
  return Number(top);
}

/** One transaction's expectations, filled in as its statements succeed. */
class Txn {
  constructor(worker, seq, kind, route, user, schema) {
    this.worker = worker;
    this.seq = seq;
    this.kind = kind;
    this.user_id = user;
    this.route = route;
    this.request_id = route === null ? null : `w${worker}-${seq}`;
    this.schema = schema;
    this.events = [];
    this.markers = []; // text in the values of a transaction that must leave no event
    this.audited = new Set(); // patients whose audit row this transaction wrote
    this.onCommit = []; // the worker's state changes, applied once it committed
  }

  get context() {
    return this.route === null ? null : { request_id: this.request_id, route: this.route };
  }

  get tags() {
    return { id: this.user_id, route: this.route, request_id: this.request_id };
  }

  change(type, table, rowId, userId = this.user_id) {
    this.events.push({
      type,
      schema: this.schema,
      table,
      row_id: rowId,
      user_id: userId,
      context: this.context,
    });
  }

  application(type, userId, data, record = null) {
    this.events.push({
      type,
      schema: record ? record.schema : null,
      table: record ? record.table : null,
      row_id: record ? record.rowId : null,
      user_id: userId,
      context: this.context,
      data,
    });
  }
}

class Worker {
  constructor(index, pool, opts, invoiceBase, manifest) {
    this.index = index;
    this.pool = pool;
    this.opts = opts;
    this.rng = generator(opts.seed * 1000003 + index * 7919 + 17);
    // id -> {visits: [{id, moves}], audited, lines (its live prescription lines), nextLine}
    this.patients = new Map();
    this.nextInvoice = invoiceBase + (index + 1) * 100000;
    this.counter = 0;
    this.manifest = manifest;
    this.s = q(opts.schema);
    this.outbox = `${opts.eventsDb}.cdc_outbox`;
  }

  unique() {
    this.counter += 1;
    return `${this.index}-${this.counter}`;
  }

  patientIds() {
    return [...this.patients.keys()];
  }

  chooseKind() {
    let roll = this.rng.next() * TOTAL_WEIGHT;
    for (const [kind, weight, route] of KINDS) {
      roll -= weight;
      if (roll < 0) return [kind, route];
    }
    const [kind, , route] = KINDS[KINDS.length - 1];
    return [kind, route];
  }

  async runOne(seq) {
    let [kind, route] = this.chooseKind();
    const needsPatient = !['admit', 'login', 'invoice', 'rollback', 'fail_midway'].includes(kind);
    if (needsPatient && this.patients.size === 0) [kind, route] = ['admit', KINDS[0][2]];
    const user = kind === 'script' ? SCRIPT_USER : this.rng.pick(STAFF);
    const txn = new Txn(this.index, seq, kind, route, user, this.opts.schema);
    const body = this[kind].bind(this);
    txn.begin_ms = now();
    try {
      if (kind === 'script' || kind === 'login') {
        await body(null, txn); // autocommit statements, no transaction of ours
      } else {
        await withUserTransaction(this.pool, txn.tags, async (db) => {
          await body(db, txn);
          txn.last_statement_ms = now(); // COMMIT is sent after this
        });
      }
      txn.commit_done_ms = now();
      for (const apply of txn.onCommit) apply();
      this.manifest.committed.push(txn);
    } catch (error) {
      const expected = error instanceof Rollback || txn.expectError === error.code;
      this.manifest.rolled_back.push({
        worker: txn.worker,
        seq: txn.seq,
        kind: txn.kind,
        user_id: txn.user_id,
        reason:
          error instanceof Rollback ? 'ROLLBACK' : `${error.code || 'error'}: ${error.message}`,
        expected,
        markers: txn.markers,
      });
      if (!expected) {
        // A deadlock or lock timeout the server rolled back: nothing of it committed.
        console.error(`worker ${this.index} ${kind}: ${error.code || ''} ${error.message}`);
      }
    }
  }

  // -- the kinds of transaction: each issues its statements and says what they leave --

  async insertPatient(db, txn, name) {
    const phone = `+243 81 ${this.unique()}`;
    const [r] = await db.query(
      `INSERT INTO ${this.s}.patient (display_name, phone, updated_by) VALUES (?, ?, ?)`,
      [name, phone, txn.user_id],
    );
    txn.change('CREATE', 'patient', r.insertId);
    return r.insertId;
  }

  async insertVisit(db, txn, patientId, reason) {
    const ward = this.rng.pick(WARDS);
    const [r] = await db.query(
      `INSERT INTO ${this.s}.visit (patient_id, ward, reason) VALUES (?, ?, ?)`,
      [patientId, ward, reason],
    );
    txn.change('CREATE', 'visit', r.insertId);
    return r.insertId;
  }

  /** UPDATE patient, through a prepared statement (the tag is kept in it too). */
  async updatePatient(db, txn, patientId, userId = txn.user_id) {
    const patient = this.patients.get(patientId);
    const phone = `+243 97 ${this.unique()}`;
    const sql = `UPDATE ${this.s}.patient SET phone = ?, updated_by = ? WHERE id = ?`;
    const [r] = db
      ? await db.execute(sql, [phone, userId, patientId])
      : await this.pool.execute(sql, [phone, userId, patientId]);
    if (r.changedRows !== 1) throw new Error(`patient ${patientId} not updated`);
    txn.change('UPDATE', 'patient', patientId, userId);
    if (this.opts.appTriggers) {
      // The application's trigger wrote its counter in the same statement.
      const audited = patient.audited || txn.audited.has(patientId);
      txn.change(audited ? 'UPDATE' : 'CREATE', 'patient_audit', patientId, userId);
      txn.audited.add(patientId);
      txn.onCommit.push(() => {
        patient.audited = true;
      });
    }
  }

  async admit(db, txn) {
    const name = `${this.rng.pick(NAMES)} ${this.unique()}`;
    const id = await this.insertPatient(db, txn, name);
    const visits = [];
    const count = this.rng.int(1, 2);
    for (let i = 0; i < count; i += 1)
      visits.push({ id: await this.insertVisit(db, txn, id, 'admission'), moves: 0 });
    if (this.rng.next() < 0.4) {
      const data = { copies: 1, form: 'admission' };
      const record = { schema: this.opts.schema, table: 'patient', rowId: id };
      await emitEvent(db, 'CHART_PRINTED', txn.user_id, data, record, { outbox: this.outbox });
      txn.application('CHART_PRINTED', txn.user_id, data, record);
    }
    txn.onCommit.push(() =>
      this.patients.set(id, { visits, audited: false, lines: [], nextLine: 1 }),
    );
  }

  async update_contact(db, txn) {
    await this.updatePatient(db, txn, this.rng.pick(this.patientIds()));
  }

  /** A LOGIN alone: one autocommit INSERT into the outbox (no transaction of ours). */
  async login(_db, txn) {
    const data = {
      session: `s-${this.unique()}`,
      ip: `10.0.${this.index}.${this.rng.int(1, 254)}`,
    };
    await emitEvent(tagged(this.pool, userTags(txn.tags)), 'LOGIN', txn.user_id, data, null, {
      outbox: this.outbox,
    });
    txn.application('LOGIN', txn.user_id, data);
  }

  async login_and_change(db, txn) {
    const data = {
      session: `s-${this.unique()}`,
      ip: `10.1.${this.index}.${this.rng.int(1, 254)}`,
    };
    const loginFirst = this.rng.next() < 0.5;
    if (loginFirst) {
      await emitEvent(db, 'LOGIN', txn.user_id, data, null, { outbox: this.outbox });
      txn.application('LOGIN', txn.user_id, data);
    }
    await this.updatePatient(db, txn, this.rng.pick(this.patientIds()));
    if (!loginFirst) {
      await emitEvent(db, 'LOGIN', txn.user_id, data, null, { outbox: this.outbox });
      txn.application('LOGIN', txn.user_id, data);
    }
  }

  /** Open across the other workers' commits: its events come after theirs. */
  async long_visit(db, txn) {
    const patientId = this.rng.pick(this.patientIds());
    const visitId = await this.insertVisit(db, txn, patientId, 'follow-up');
    await sleep(this.rng.int(this.opts.longMs / 3, this.opts.longMs));
    await db.query(`UPDATE ${this.s}.visit SET ward = ?, moves = moves + 1 WHERE id = ?`, [
      this.rng.pick(WARDS),
      visitId,
    ]);
    txn.change('UPDATE', 'visit', visitId);
    await this.invoiceLines(db, txn, this.rng.int(2, 3));
    const patient = this.patients.get(patientId);
    txn.onCommit.push(() => patient.visits.push({ id: visitId, moves: 1 }));
  }

  /** One multi-row INSERT of `count` lines: one CREATE each, in the VALUES' order. */
  async invoiceLines(db, txn, count) {
    const invoice = this.nextInvoice;
    this.nextInvoice += 1;
    const rows = [];
    for (let line = 1; line <= count; line += 1) {
      rows.push([
        invoice,
        line,
        this.rng.pick(LABELS),
        (this.rng.int(100, 250000) / 100).toFixed(2),
      ]);
    }
    await db.query(
      `INSERT INTO ${this.s}.invoice_item (invoice_id, line, label, amount) VALUES ?`,
      [rows],
    );
    for (const [id, line] of rows) txn.change('CREATE', 'invoice_item', [id, line]);
    return invoice;
  }

  async invoice(db, txn) {
    const invoice = await this.invoiceLines(db, txn, this.rng.int(2, 4));
    await db.query(
      `UPDATE ${this.s}.invoice_item SET amount = amount + 1 WHERE invoice_id = ? AND line = 1`,
      [invoice],
    );
    txn.change('UPDATE', 'invoice_item', [invoice, 1]);
    await db.query(`DELETE FROM ${this.s}.invoice_item WHERE invoice_id = ? AND line = 2`, [
      invoice,
    ]);
    txn.change('DELETE', 'invoice_item', [invoice, 2]);
  }

  /** One statement changing every visit of a patient, in id order. */
  async transfer(db, txn) {
    const patientId = this.rng.pick(this.patientIds());
    const patient = this.patients.get(patientId);
    const ward = this.rng.pick(WARDS);
    const [r] = await db.query(
      `UPDATE ${this.s}.visit SET ward = ?, moves = moves + 1 WHERE patient_id = ? ORDER BY id`,
      [ward, patientId],
    );
    const ids = patient.visits.map((v) => v.id).sort((a, b) => a - b);
    if (r.changedRows !== ids.length)
      throw new Error(`transfer changed ${r.changedRows} of ${ids.length}`);
    for (const id of ids) txn.change('UPDATE', 'visit', id);
  }

  /** A new prescription line; now and then the previous one stopped (deleted). */
  async prescribe(db, txn) {
    const patientId = this.rng.pick(this.patientIds());
    const patient = this.patients.get(patientId);
    const line = patient.nextLine;
    await db.query(
      `INSERT INTO ${this.s}.prescription (patient_id, line, drug, dose) VALUES (?, ?, ?, ?)`,
      [patientId, line, this.rng.pick(DRUGS), `${this.rng.int(1, 3)}x/day`],
    );
    txn.change('CREATE', 'prescription', [patientId, line]);
    const lines = [...patient.lines, line];
    if (lines.length > 1 && this.rng.next() < 0.5) {
      const stopped = lines.shift();
      await db.query(`DELETE FROM ${this.s}.prescription WHERE patient_id = ? AND line = ?`, [
        patientId,
        stopped,
      ]);
      txn.change('DELETE', 'prescription', [patientId, stopped]);
    }
    txn.onCommit.push(() => {
      patient.lines = lines;
      patient.nextLine = line + 1;
    });
  }

  /** DELETE a patient: InnoDB deletes the visits itself (ON DELETE CASCADE), with no row
   * events; cdc's binlog capture says so with one CASCADE event on `visit`. */
  async discharge(db, txn) {
    const patientId = this.rng.pick(this.patientIds());
    const patient = this.patients.get(patientId);
    const [r] = await db.query(
      `DELETE FROM ${this.s}.prescription WHERE patient_id = ? ORDER BY line`,
      [patientId],
    );
    if (r.affectedRows !== patient.lines.length) throw new Error('prescriptions out of step');
    for (const line of patient.lines) txn.change('DELETE', 'prescription', [patientId, line]);
    await db.query(`DELETE FROM ${this.s}.patient WHERE id = ?`, [patientId]);
    txn.change('DELETE', 'patient', patientId);
    // Whether or not the patient had visits: the event names the rows by the foreign key.
    txn.change('CASCADE', 'visit', null);
    txn.events.at(-1).cascade = true;
    txn.onCommit.push(() => this.patients.delete(patientId));
  }

  async rollback(db, txn) {
    const marker = `rolled-back ${this.unique()}`;
    txn.markers.push(marker);
    await this.insertPatient(db, txn, marker);
    await emitEvent(db, 'LOGIN', txn.user_id, { session: marker }, null, { outbox: this.outbox });
    if (this.patients.size) await this.updatePatient(db, txn, this.rng.pick(this.patientIds()));
    throw new Rollback('the user cancelled');
  }

  async long_rollback(db, txn) {
    const marker = `rolled-back ${this.unique()}`;
    txn.markers.push(marker);
    await this.insertVisit(db, txn, this.rng.pick(this.patientIds()), marker);
    await sleep(this.rng.int(this.opts.longMs / 3, this.opts.longMs));
    throw new Rollback('the visit was cancelled');
  }

  /** A statement fails half-way through: the application rolls the whole transaction back. */
  async fail_midway(db, txn) {
    const marker = `rolled-back ${this.unique()}`;
    txn.markers.push(marker);
    await emitEvent(db, 'LOGIN', txn.user_id, { session: marker }, null, { outbox: this.outbox });
    const invoice = await this.invoiceLines(db, txn, 2);
    if (this.rng.next() < 0.5 || this.patients.size === 0) {
      txn.expectError = 'ER_DUP_ENTRY';
      await db.query(
        `INSERT INTO ${this.s}.invoice_item (invoice_id, line, label, amount) VALUES (?, 1, ?, 1)`,
        [invoice, marker],
      );
    } else {
      txn.expectError = 'ER_NO_REFERENCED_ROW_2';
      await db.query(
        `INSERT INTO ${this.s}.visit (patient_id, ward, reason) VALUES (?, 'nowhere', ?)`,
        [-1, marker],
      );
    }
  }

  /** A script with no tag and no @cdc_user_id (the kind of writer attribution misses):
   * its events' user is the row's own `updated_by` (cdc run --user-column updated_by). */
  async script(_db, txn) {
    await this.updatePatient(null, txn, this.rng.pick(this.patientIds()), SCRIPT_USER);
  }

  async run(shouldContinue) {
    for (let seq = 0; shouldContinue(seq); seq += 1) await this.runOne(seq);
  }
}

/** Every connection of the pool, at once: none may still hold a user in @cdc_user_id. */
async function leakedUsers(pool, count) {
  const conns = [];
  try {
    for (let i = 0; i < count; i += 1) conns.push(await pool.getConnection());
    let leaked = 0;
    for (const conn of conns) {
      const [[row]] = await conn.query('SELECT @cdc_user_id AS user');
      if (row.user !== null) leaked += 1;
    }
    return leaked;
  } finally {
    for (const conn of conns) conn.release();
  }
}

async function main() {
  const opts = options();
  const admin = await mysql.createConnection({ ...opts.connection, charset: 'utf8mb4' });
  let invoiceBase;
  try {
    invoiceBase = await setUp(admin, opts);
  } finally {
    await admin.end();
  }
  const pool = mysql.createPool({
    ...opts.connection,
    database: opts.schema,
    connectionLimit: opts.workers,
    charset: 'utf8mb4',
  });
  const manifest = { committed: [], rolled_back: [] };
  const workers = [];
  for (let i = 0; i < opts.workers; i += 1)
    workers.push(new Worker(i, pool, opts, invoiceBase, manifest));
  const deadline = now() + (opts.seconds || 0) * 1000;
  // --transactions: worker i runs the transactions i, i + W, i + 2W... of the N.
  const budget = (worker) => (seq) =>
    opts.transactions !== null
      ? seq * opts.workers + worker.index < opts.transactions
      : now() < deadline;
  try {
    await Promise.all(workers.map((w) => w.run(budget(w))));
    manifest.leaked_user_variables = await leakedUsers(pool, opts.workers);
  } finally {
    await pool.end();
  }
  const transactions = manifest.committed
    .sort((a, b) => a.commit_done_ms - b.commit_done_ms)
    .map((t) => ({
      worker: t.worker,
      seq: t.seq,
      kind: t.kind,
      user_id: t.user_id,
      route: t.route,
      request_id: t.request_id,
      begin_ms: t.begin_ms,
      last_statement_ms: t.last_statement_ms === undefined ? t.begin_ms : t.last_statement_ms,
      commit_done_ms: t.commit_done_ms,
      events: t.events,
    }));
  const out = {
    schema: opts.schema,
    events_db: opts.eventsDb,
    seed: opts.seed,
    workers: opts.workers,
    app_triggers: opts.appTriggers,
    user_column: 'updated_by',
    context_tags: ['route', 'request_id'],
    transactions,
    rolled_back: manifest.rolled_back,
    leaked_user_variables: manifest.leaked_user_variables,
    event_count: transactions.reduce((sum, t) => sum + t.events.length, 0),
  };
  const text = JSON.stringify(out, null, 1) + '\n';
  if (opts.out) fs.writeFileSync(opts.out, text);
  else process.stdout.write(text);
  const unexpected = manifest.rolled_back.filter((r) => !r.expected).length;
  console.error(
    `committed ${transactions.length} transactions (${out.event_count} events), ` +
      `rolled back ${manifest.rolled_back.length} (${unexpected} by the server)`,
  );
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
