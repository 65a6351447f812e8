// The live page: the last day from /events, then /stream, newest on top.
// No build step, no dependency. Every value is written with textContent (never HTML).
"use strict";

const MAX_ROWS = 5000; // rows kept on the page; older ones fall off the bottom
const FIRST_PAGE = 2000; // rows of history loaded at first
const VALUE_CHARS = 80; // longer values are cut (the full value is in the tooltip)

const tbody = document.getElementById("events");
const statusLine = document.getElementById("status");
const empty = document.getElementById("empty");
const form = document.getElementById("filters");
const tableInput = document.getElementById("table");
const tableList = document.getElementById("tables");
const loginForm = document.getElementById("login");
const loginError = document.getElementById("login-error");
const logoutButton = document.getElementById("logout");
const main = document.querySelector("main");

let source = null; // the EventSource
let generation = 0; // bumped on every (re)load, so that late answers are ignored
let lastId = null; // id of the newest event shown (where a manual reconnect resumes)
let retryDelay = 1000;
let retryTimer = null;
let pending = []; // events received, not drawn yet (drawn once per animation frame)
let drawScheduled = false;
const seenTables = new Set();

function setStatus(state, text) {
  statusLine.dataset.state = state;
  statusLine.textContent = text;
}

function filterParams() {
  const params = new URLSearchParams();
  for (const table of tableInput.value.split(",").map((t) => t.trim()).filter(Boolean)) {
    params.append("table", table);
  }
  const types = [...form.querySelectorAll("input[name=type]")];
  const chosen = types.filter((box) => box.checked).map((box) => box.value);
  if (chosen.length && chosen.length !== types.length) params.append("type", chosen.join(","));
  return params;
}

function noTypeChosen() {
  return !form.querySelector("input[name=type]:checked");
}

function readFiltersFromUrl() {
  const query = new URLSearchParams(location.search);
  const tables = query.getAll("table");
  if (tables.length) tableInput.value = tables.join(", ");
  const types = query.getAll("type").flatMap((t) => t.toUpperCase().split(","));
  if (types.length) {
    for (const box of form.querySelectorAll("input[name=type]")) {
      box.checked = types.includes(box.value);
    }
  }
}

function shown(value) {
  if (value === null || value === undefined) return "";
  return typeof value === "string" ? value : JSON.stringify(value);
}

function valueSpan(value, cls) {
  const span = document.createElement("span");
  span.className = `value ${cls}`;
  const text = value === undefined ? "—" : JSON.stringify(value);
  span.textContent = text.length > VALUE_CHARS ? `${text.slice(0, VALUE_CHARS)}…` : text;
  if (text.length > VALUE_CHARS) span.title = text;
  return span;
}

function describe(event) {
  const cell = document.createElement("td");
  cell.className = "what";
  const data = event.data || {};
  if (event.type === "CASCADE") {
    // A foreign key's cascade: which rows (a predicate), and what was set.
    const action = document.createElement("span");
    action.className = "col";
    action.textContent = `${data.action} where `;
    cell.append(action);
    for (const [column, value] of Object.entries({ ...(data.where || {}) })) {
      const change = document.createElement("span");
      change.className = "change";
      change.append(`${column}=`, valueSpan(value, "before"));
      cell.append(change);
    }
    for (const [column, value] of Object.entries(data.set || {})) {
      const change = document.createElement("span");
      change.className = "change";
      change.append(`set ${column}=`, valueSpan(value, "after"));
      cell.append(change);
    }
  } else if (event.type === "UPDATE") {
    const before = data.before || {};
    const after = data.after || {};
    const changed = data.changed ||
      Object.keys(after).filter((k) => JSON.stringify(after[k]) !== JSON.stringify(before[k]));
    for (const column of changed) {
      const change = document.createElement("span");
      change.className = "change";
      const name = document.createElement("span");
      name.className = "col";
      name.textContent = `${column}: `;
      change.append(name, valueSpan(before[column], "before"), " → ",
        valueSpan(after[column], "after"));
      cell.append(change);
    }
    if (!changed.length) cell.textContent = "(no column changed)";
  } else {
    const image = (event.type === "DELETE" ? data.before : data.after) || {};
    const cls = event.type === "DELETE" ? "before" : "after";
    for (const [column, value] of Object.entries(image)) {
      const change = document.createElement("span");
      change.className = "change";
      const name = document.createElement("span");
      name.className = "col";
      name.textContent = `${column}=`;
      change.append(name, valueSpan(value, cls));
      cell.append(change);
    }
  }
  return cell;
}

function cell(cls, text, title) {
  const td = document.createElement("td");
  td.className = cls;
  td.textContent = text;
  if (title) td.title = title;
  return td;
}

function row(event, fresh) {
  const tr = document.createElement("tr");
  tr.dataset.id = event.id;
  if (fresh) tr.className = "new";
  const time = new Date(event.timestamp);
  const table = `${event.schema}.${event.table}`;
  tr.append(
    cell("id", String(event.id)),
    cell("time", time.toLocaleTimeString([], { hourCycle: "h23" }),
      `${time.toLocaleString()} (${event.timestamp})`),
    cell(`type ${event.type}`, event.type),
    cell("table", table, table),
    cell("row", shown(event.row_id), shown(event.row_id)),
    cell("user", shown(event.user_id), shown(event.user_id)),
    describe(event),
  );
  if (!seenTables.has(table)) {
    seenTables.add(table);
    const option = document.createElement("option");
    option.value = table;
    tableList.append(option);
  }
  return tr;
}

function trim() {
  while (tbody.rows.length > MAX_ROWS) tbody.lastElementChild.remove();
}

// Newest first: `events` is newest-first history to add below what is shown.
function appendHistory(events) {
  const fragment = document.createDocumentFragment();
  for (const event of events) fragment.append(row(event, false));
  tbody.append(fragment);
  trim();
  empty.hidden = tbody.rows.length > 0;
}

function draw() {
  drawScheduled = false;
  if (!pending.length) return;
  const fragment = document.createDocumentFragment();
  for (let i = pending.length - 1; i >= 0; i--) fragment.append(row(pending[i], true));
  pending = [];
  tbody.prepend(fragment);
  trim();
  empty.hidden = true;
  setStatus("live", `live · ${tbody.rows.length} shown`);
}

function receive(message) {
  const event = JSON.parse(message.data);
  lastId = event.id;
  pending.push(event);
  if (pending.length > MAX_ROWS) pending = pending.slice(-MAX_ROWS);
  if (!drawScheduled) {
    drawScheduled = true;
    // A hidden tab gets no animation frames: draw on a timer there instead.
    if (document.hidden) setTimeout(draw, 250);
    else requestAnimationFrame(draw);
  }
}

// After a refused stream: back to the login form if the session ended, else reconnect.
async function stillSignedIn(mine) {
  if (mine !== generation) return;
  try {
    await getJson("events?order=desc&limit=1&after_id=0");
  } catch (error) {
    if (error instanceof SignedOut) {
      showLogin(false);
      return;
    }
  }
  connect(lastId, mine);
}

function connect(after, mine) {
  if (mine !== generation) return;
  const params = filterParams();
  if (after !== null) params.set("last_event_id", String(after));
  source = new EventSource(`stream?${params}`);
  for (const type of ["CREATE", "UPDATE", "DELETE", "CASCADE"]) {
    source.addEventListener(type, receive);
  }
  // The history resumed from is no longer held (pruned, or another store): what is
  // shown may have holes, so the last day is read again.
  source.addEventListener("reset", () => {
    if (mine === generation) load();
  });
  source.onopen = () => {
    retryDelay = 1000;
    setStatus("live", `live · ${tbody.rows.length} shown`);
  };
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) {
      // Refused (503: too many clients, or shutting down; 401: signed out, session or
      // token expired): EventSource gives up, we do not. A reload finds out which.
      source = null;
      if (tbody.rows.length === 0 && lastId === 0) {
        load();
        return;
      }
      setStatus("reconnecting", `reconnecting in ${Math.round(retryDelay / 1000)} s…`);
      retryTimer = setTimeout(() => stillSignedIn(mine), retryDelay);
      retryDelay = Math.min(retryDelay * 2, 30000);
    } else {
      setStatus("reconnecting", "reconnecting…");
    }
  };
}

class SignedOut extends Error {}

async function getJson(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  if (response.status === 401) throw new SignedOut();
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  return response.json();
}

// Signed out (the server wants a credential): nothing is shown but the login form.
function showLogin(failed) {
  generation++;
  if (source) source.close();
  source = null;
  clearTimeout(retryTimer);
  pending = [];
  tbody.replaceChildren();
  main.hidden = true;
  form.hidden = true;
  logoutButton.hidden = true;
  loginForm.hidden = false;
  loginError.hidden = !failed;
  setStatus("signed-out", "sign in to see the changes");
}

let authOn = null; // from /health: whether the server asks for credentials

async function showData() {
  loginForm.hidden = true;
  main.hidden = false;
  form.hidden = false;
  if (authOn === null) {
    try {
      authOn = (await (await fetch("health")).json()).auth === true;
    } catch {
      authOn = false;
    }
  }
  logoutButton.hidden = !authOn;
}

async function login(event) {
  event.preventDefault();
  // Posted as the form would be; the session cookie (HttpOnly) is set by the answer.
  const response = await fetch("login", {
    method: "POST",
    body: new URLSearchParams(new FormData(loginForm)),
    redirect: "manual",
  });
  loginForm.reset();
  if (response.type === "opaqueredirect" || response.ok) {
    authOn = true;
    load();
  } else {
    showLogin(true);
  }
}

async function logout() {
  await fetch("logout", { method: "POST" });
  showLogin(false);
}

// The newest id of history, and the history up to it (newest first): `before` pages back
// until a page is full or the day is read (a narrow grant may find few per page).
async function readHistory(mine) {
  const newest = await getJson("events?order=desc&limit=1&after_id=0");
  let head = 0;
  if (newest.events.length) head = newest.events[0].id;
  else if (newest.next_before_id) head = newest.next_before_id - 1;
  const events = [];
  let before = head + 1;
  while (events.length < FIRST_PAGE && mine === generation) {
    const params = filterParams();
    params.set("order", "desc");
    params.set("since", "24h");
    params.set("before_id", String(before));
    params.set("limit", String(FIRST_PAGE - events.length));
    const page = await getJson(`events?${params}`);
    events.push(...page.events);
    if (!page.next_before_id) break;
    before = page.next_before_id;
  }
  return { head, events };
}

async function load() {
  const mine = ++generation;
  if (source) source.close();
  source = null;
  clearTimeout(retryTimer);
  pending = [];
  tbody.replaceChildren();
  setStatus("loading", "loading…");
  try {
    if (noTypeChosen()) {
      empty.hidden = false;
      setStatus("idle", "no type chosen");
      return;
    }
    // The newest id first: history up to it, then the stream from it, so that an event
    // committed in between is neither missed nor shown twice.
    const { head, events } = await readHistory(mine);
    if (mine !== generation) return;
    showData();
    appendHistory(events);
    lastId = head;
    connect(head, mine);
  } catch (error) {
    if (mine !== generation) return;
    if (error instanceof SignedOut) {
      showLogin(false);
      return;
    }
    setStatus("reconnecting", `cannot load history (${error.message}); retrying…`);
    retryTimer = setTimeout(load, 5000);
  }
}

function filtersChanged() {
  const params = filterParams();
  const url = params.toString() ? `?${params}` : location.pathname;
  history.replaceState(null, "", url);
  load();
}

readFiltersFromUrl();
loginForm.addEventListener("submit", login);
logoutButton.addEventListener("click", logout);
form.addEventListener("change", filtersChanged);
form.addEventListener("submit", (e) => {
  e.preventDefault();
  filtersChanged();
});
load();
