// The console's only script (served at /static/console.js under a CSP without inline code):
// the proof badge of an event page, checked in the browser with tlog.js, and the live tail.
// Both read with the short-lived viewer token the server put in a data- attribute; the page's
// own session cookie is never sent to the API (credentials: "omit").
import { parseVerifierKey, verifyEvent } from "./tlog.js";

async function api(token, path, params = {}) {
  const url = new URL(path, window.location.origin);
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  const response = await fetch(url, {
    headers: { Authorization: `Bearer ${token}`, Accept: "application/json" },
    credentials: "omit",
  });
  if (!response.ok) {
    let detail = `HTTP ${response.status}`;
    try { detail = (await response.json()).detail || detail; } catch { /* not JSON */ }
    const err = new Error(detail);
    err.status = response.status;
    throw err;
  }
  return response.json();
}

async function checkProof(section) {
  const badge = document.getElementById("proof");
  const set = (state, text, why) => {
    badge.dataset.state = state;
    badge.textContent = text;
    badge.title = why;
  };
  const { token, logKey, id } = section.dataset;
  try {
    const key = await parseVerifierKey(logKey);
    const event = await api(token, `/v1/events/${encodeURIComponent(id)}`);
    let proof;
    try {
      proof = await api(token, "/v1/log/proof/inclusion", { id });
    } catch (err) {
      if (err.status === 409) {
        set("pending", "Pending", "not in a signed checkpoint yet; reload after the next checkpoint");
        return;
      }
      throw err;
    }
    const { checkpoint } = await verifyEvent(event, proof, key);
    set("verified", "Verified", `leaf ${proof.leaf_index} of ${checkpoint.origin} at size ${checkpoint.size}`);
  } catch (err) {
    set("failed", "Failed", err.message);
  }
}

function cell(text, className) {
  const td = document.createElement("td");
  if (className) td.className = className;
  td.textContent = text;
  return td;
}

function row(ev) {
  const tr = document.createElement("tr");
  tr.dataset.id = ev.id;
  tr.className = "fresh";
  const when = cell("", "when");
  const time = document.createElement("time");
  time.dateTime = ev.occurred_at;
  time.textContent = ev.occurred_at.slice(0, 19).replace("T", " ");
  when.append(time);
  const action = document.createElement("td");
  const link = document.createElement("a");
  link.className = "action";
  link.href = `/console/events/${encodeURIComponent(ev.id)}`;
  link.textContent = ev.action;
  action.append(link);
  const targets = cell("", "targets");
  for (const t of ev.targets || []) {
    const chip = document.createElement("span");
    chip.className = "chip";
    chip.textContent = `${t.type}: ${t.name || t.id}`;
    targets.append(chip);
  }
  const outcome = document.createElement("td");
  const span = document.createElement("span");
  span.className = `outcome ${ev.outcome || ""}`;
  span.textContent = ev.outcome || "";
  outcome.append(span);
  tr.append(when, cell(ev.actor.name || ev.actor.id, "actor"), action, targets, outcome);
  return tr;
}

function startTail(container) {
  // The feed, in log order (arrival), long-polled: a new event shows as soon as it commits.
  const token = container.dataset.token;
  const body = container.querySelector("tbody");
  const live = document.getElementById("live");
  let after = null;
  const poll = async () => {
    try {
      if (after === null) {
        const head = await api(token, "/v1/feed", { limit: "0" });
        after = Math.max(0, head.size - 50);
      }
      const page = await api(token, "/v1/feed", { after: String(after), limit: "200", wait: "20" });
      for (const ev of page.data) body.prepend(row(ev));
      after = page.next_after;
      if (page.data.length) body.querySelector("tr.empty")?.remove();
      while (body.rows.length > 500) body.lastElementChild.remove();
      live.dataset.state = "live";
      live.textContent = "live";
    } catch (err) {
      live.dataset.state = "error";
      live.textContent = err.status === 401 ? "session token expired: reload" : "reconnecting";
      if (err.status === 401 || err.status === 403) return;
      setTimeout(poll, 2000);
      return;
    }
    setTimeout(poll, 0);
  };
  const empty = document.createElement("tr");
  empty.className = "empty";
  empty.append(cell("Waiting for events…"));
  empty.firstChild.colSpan = 5;
  body.replaceChildren(empty);
  poll();
}

const section = document.getElementById("event");
if (section) checkProof(section);
const tail = document.getElementById("tail");
if (tail) startTail(tail);
