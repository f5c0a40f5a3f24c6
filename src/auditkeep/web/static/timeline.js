// auditkeep timeline.js: <auditkeep-timeline>, an embeddable, verifiable activity timeline.
//
//   <script type="module" src="https://audit.example.com/static/timeline.js"></script>
//   <auditkeep-timeline token="..." endpoint="https://audit.example.com"
//                       log-key="audit.example.com+1a2b3c4d+AVjp..."></auditkeep-timeline>
//
// Attributes: token (bearer token with events:read), endpoint (default: the server this script
// came from), log-key (the pinned checkpoint verifier key from GET /v1/log/key), page-size
// (default 50), heading (default "Activity"), auto-verify (check every row as it appears).
// Events out: "auditkeep-timeline:rendered" {rows, ms} after each render,
// "auditkeep-timeline:error" {message}. Styling: CSS custom properties (docs/embedding.md).
// No inline scripts or styles: works under Content-Security-Policy default-src 'self'.

import { parseVerifierKey, verifyCheckpoint, verifyEvent } from "./tlog.js";

const STYLESHEET = new URL("./timeline.css", import.meta.url).href;
const DEFAULT_ENDPOINT = new URL("/", import.meta.url).href.replace(/\/$/, "");
const CONTEXT_LABELS = {
  ip: "IP address", user_agent: "User agent", request_id: "Request id",
  session_id: "Session id", location: "Location",
};
const FIELDS = [
  ["action", "Action"],
  ["actor_id", "Actor id"],
  ["target_id", "Target id"],
];

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (name === "class") el.className = value;
    else if (name === "text") el.textContent = value;
    else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
const absolute = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
const UNITS = [
  ["year", 31536000], ["month", 2592000], ["week", 604800], ["day", 86400],
  ["hour", 3600], ["minute", 60], ["second", 1],
];

export function relativeTime(date, now = Date.now()) {
  const seconds = (date.getTime() - now) / 1000;
  if (Math.abs(seconds) < 45) return "just now";
  for (const [unit, size] of UNITS) {
    if (Math.abs(seconds) >= size || unit === "second") {
      return relative.format(Math.round(seconds / size), unit);
    }
  }
  return "";
}

function initials(text) {
  const words = String(text).replace(/[^\p{L}\p{N} ]+/gu, " ").trim().split(/\s+/);
  const letters = words.length > 1 ? words[0][0] + words[words.length - 1][0] : String(text).slice(0, 2);
  return (letters || "?").toUpperCase();
}

function hue(text) {
  let n = 0;
  for (const c of String(text)) n = (n * 31 + c.codePointAt(0)) >>> 0;
  return n % 8;
}

function label(party) {
  if (!party) return "";
  return party.name || party.id;
}

// An answer of the API that is not a success: its RFC 9457 detail, and its status.
class Problem extends Error {
  constructor(message, status = 0) {
    super(message);
    this.status = status;
  }
}

async function problemOf(response) {
  let detail = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body && body.detail) detail = body.detail;
  } catch {
    // not problem+json: keep the status line
  }
  return new Problem(detail, response.status);
}

let counter = 0;

export class AuditkeepTimeline extends HTMLElement {
  static get observedAttributes() {
    return ["token", "endpoint", "log-key", "page-size", "heading"];
  }

  constructor() {
    super();
    this.attachShadow({ mode: "open" });
    this._uid = `ak${++counter}`;
    this._events = [];
    this._cursor = null;
    this._filters = {};
    this._checkpoints = new Map();
    this._key = null;
    this._loading = null;
    this._generation = 0; // a reload (new filters, token...) makes older answers stale
    this.firstRenderMs = null; // ms from connecting to the first page of rows in the DOM
    this.lastVerifiedMs = null; // ms from connecting to the latest verify result
  }

  get endpoint() {
    return (this.getAttribute("endpoint") || DEFAULT_ENDPOINT).replace(/\/+$/, "");
  }

  get pageSize() {
    const n = Number.parseInt(this.getAttribute("page-size") || "50", 10);
    return Number.isFinite(n) ? Math.min(Math.max(n, 1), 1000) : 50;
  }

  connectedCallback() {
    this._started = performance.now();
    if (!this._built) this._build();
    this.reload();
  }

  attributeChangedCallback(name, old, value) {
    if (!this._built || old === value) return;
    if (name === "heading") this._heading.textContent = value || "Activity";
    else if (name === "log-key") {
      this._key = null;
      this._checkpoints.clear();
    } else this.reload();
  }

  _build() {
    this._built = true;
    const root = this.shadowRoot;
    const wrapper = h("div", { class: "ak", part: "timeline", hidden: true });
    const link = h("link", { rel: "stylesheet", href: STYLESHEET });
    const show = () => wrapper.removeAttribute("hidden");
    link.addEventListener("load", show);
    link.addEventListener("error", show);
    this._heading = h("h2", { class: "title", id: `${this._uid}-title`, text: this.getAttribute("heading") || "Activity" });
    this._field = h("select", { "aria-label": "Filter by", class: "field" },
      FIELDS.map(([value, text]) => h("option", { value, text })));
    this._query = h("input", {
      type: "search", class: "query", "aria-label": "Filter value",
      placeholder: "Filter, e.g. user.* or user.login", autocomplete: "off", spellcheck: "false",
    });
    this._outcome = h("select", { "aria-label": "Outcome", class: "outcome-filter" },
      h("option", { value: "", text: "Any outcome" }),
      h("option", { value: "success", text: "Success" }),
      h("option", { value: "failure", text: "Failure" }));
    const form = h("form", { class: "filters", role: "search", "aria-label": "Filter activity" },
      this._field, this._query, this._outcome, h("button", { type: "submit", class: "search", text: "Search" }));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      this._filters = {};
      const value = this._query.value.trim();
      if (value) this._filters[this._field.value] = value;
      if (this._outcome.value) this._filters.outcome = this._outcome.value;
      this.reload();
    });
    this._status = h("p", { class: "status", role: "status", "aria-live": "polite" });
    this._alert = h("div", { class: "alert", role: "alert", hidden: true });
    this._list = h("ol", { class: "rows", "aria-labelledby": `${this._uid}-title` });
    this._more = h("button", { type: "button", class: "more", hidden: true, text: "Load more" });
    this._more.addEventListener("click", () => this._loadPage());
    wrapper.append(
      h("header", { class: "head" }, this._heading, form),
      this._alert, this._list, h("footer", { class: "foot" }, this._status, this._more));
    root.append(link, wrapper);
  }

  reload() {
    if (!this._built) return;
    this._generation++;
    this._loading = null;
    this._events = [];
    this._cursor = null;
    this._list.replaceChildren();
    this._loadPage();
  }

  async _fetch(path, params) {
    const url = new URL(this.endpoint + path);
    for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
    const token = this.getAttribute("token") || "";
    let response;
    try {
      response = await fetch(url, {
        headers: { Authorization: `Bearer ${token}`, Accept: "application/json" },
        credentials: "omit",
        mode: "cors",
      });
    } catch (err) {
      throw new Problem(`cannot reach ${this.endpoint} (${err.message}); is this page's origin in the server's cors_allow_origins?`);
    }
    if (!response.ok) throw await problemOf(response);
    return response.json();
  }

  async _loadPage() {
    if (this._loading) return this._loading;
    const generation = this._generation;
    const params = { ...this._filters, limit: String(this.pageSize) };
    if (this._cursor) params.cursor = this._cursor;
    this._more.disabled = true;
    this._list.setAttribute("aria-busy", "true");
    this._loading = (async () => {
      try {
        if (!this.getAttribute("token")) throw new Problem("no token: set the token attribute to a key or viewer token");
        const page = await this._fetch("/v1/events", params);
        if (generation !== this._generation) return; // superseded by a newer search
        this._alert.hidden = true;
        this._cursor = page.next_cursor || null;
        const rows = page.data.map((event) => this._row(event));
        this._events.push(...page.data);
        this._list.append(...rows);
        this._rendered();
        if (this.hasAttribute("auto-verify")) this._verifyAll(rows);
      } catch (err) {
        if (generation !== this._generation) return;
        this._alert.textContent = err instanceof Problem ? err.message : `Something went wrong: ${err.message}`;
        this._alert.hidden = false;
        this.dispatchEvent(new CustomEvent("auditkeep-timeline:error", { detail: { message: this._alert.textContent }, bubbles: true, composed: true }));
      } finally {
        if (generation === this._generation) this._settle();
      }
    })();
    return this._loading;
  }

  _settle() {
    this._list.removeAttribute("aria-busy");
    this._more.disabled = false;
    this._more.hidden = !this._cursor;
    this._loading = null;
  }

  _rendered() {
    const n = this._events.length;
    const names = { action: "action", actor_id: "actor", target_id: "target" };
    const filters = Object.entries(this._filters).map(([k, v]) => (k === "outcome" ? v : `${names[k]} ${v}`));
    const text = n === 0 ? "No activity matches" : `Showing ${n} event${n === 1 ? "" : "s"}`;
    this._status.textContent = [text, ...filters].join(" · ");
    const ms = performance.now() - this._started;
    if (this.firstRenderMs === null) this.firstRenderMs = ms;
    this.dispatchEvent(new CustomEvent("auditkeep-timeline:rendered", { detail: { rows: n, ms }, bubbles: true, composed: true }));
  }

  _row(event) {
    const id = `${this._uid}-d${++counter}`;
    const actor = event.actor || {};
    const when = new Date(event.occurred_at);
    const target = (event.targets || [])[0];
    const outcome = event.outcome === "failure" ? "failure" : "success";
    const summary = h("button", {
      type: "button", class: "summary", "aria-expanded": "false", "aria-controls": id,
    },
    h("span", { class: `avatar hue-${hue(actor.id)}`, "aria-hidden": "true", text: initials(label(actor)) }),
    h("span", { class: "what" },
      h("span", { class: "line" },
        h("span", { class: "actor", text: label(actor) }),
        h("code", { class: "action", text: event.action }),
        target ? h("span", { class: "target" }, h("span", { class: "arrow", "aria-hidden": "true", text: "→" }), label(target),
          h("span", { class: "type", text: ` ${target.type}` })) : null,
        (event.targets || []).length > 1 ? h("span", { class: "type", text: ` +${event.targets.length - 1}` }) : null),
      h("span", { class: "meta" },
        h("span", { class: `pill ${outcome}`, text: outcome === "success" ? "Success" : "Failure" }),
        h("time", { datetime: event.occurred_at, title: absolute.format(when), text: relativeTime(when) }),
        event.context && event.context.ip ? h("span", { class: "ip", text: event.context.ip }) : null)));
    const badge = h("button", {
      type: "button", class: "badge", "data-state": "unverified",
      "aria-label": `Verify event ${event.id}`, title: "Check this event's proof in your browser",
    }, h("span", { class: "icon", "aria-hidden": "true" }), h("span", { class: "badge-text", text: "Verify" }));
    const reason = h("p", { class: "reason", hidden: true });
    const detail = h("div", { class: "detail", id, role: "region", "aria-label": `Details of ${event.action}`, hidden: true },
      this._details(event), reason);
    const li = h("li", { class: "row", "data-id": event.id, "data-seq": event.seq }, summary, badge, detail);
    summary.addEventListener("click", () => {
      const open = summary.getAttribute("aria-expanded") !== "true";
      summary.setAttribute("aria-expanded", String(open));
      detail.hidden = !open;
      li.classList.toggle("open", open);
    });
    badge.addEventListener("click", () => this._verify(event, badge, reason));
    return li;
  }

  _details(event) {
    const items = [
      ["Event id", event.id],
      ["Action", event.action],
      ["Actor", `${label(event.actor)} (${event.actor.type} ${event.actor.id})`],
      ...(event.targets || []).map((t, i) => [i ? "" : "Targets", `${label(t)} (${t.type} ${t.id})`]),
      ["Outcome", event.outcome],
      ["Reason", event.reason],
      ["Occurred", event.occurred_at],
      ["Received", event.received_at],
      ...Object.entries(event.context || {}).map(([k, v]) => [CONTEXT_LABELS[k] || k, typeof v === "string" ? v : JSON.stringify(v)]),
      ["Category", event.category],
      ["Sequence", event.seq],
      ["Leaf hash", event.hash],
      ["Hidden", (event.redacted || []).join(", ")],
    ].filter(([, v]) => v !== undefined && v !== null && v !== "");
    const dl = h("dl", { class: "fields" }, items.flatMap(([k, v]) => [h("dt", { text: k }), h("dd", { text: String(v) })]));
    const metadata = event.metadata && Object.keys(event.metadata).length
      ? h("div", { class: "metadata" }, h("h3", { text: "Metadata" }), h("pre", { text: JSON.stringify(event.metadata, null, 2) }))
      : null;
    return [dl, metadata];
  }

  _pinnedKey() {
    if (!this._key) this._key = parseVerifierKey(this.getAttribute("log-key") || "");
    return this._key;
  }

  _openCheckpoint(key, note) {
    let found = this._checkpoints.get(note);
    if (!found) {
      found = verifyCheckpoint(note, key);
      this._checkpoints.set(note, found);
    }
    return found;
  }

  async _verify(event, badge, reason) {
    const set = (state, text, why) => {
      badge.dataset.state = state;
      badge.querySelector(".badge-text").textContent = text;
      badge.title = why;
      badge.setAttribute("aria-label", `${text}: ${why}`);
      reason.textContent = why;
      reason.hidden = state === "checking";
      reason.className = `reason ${state}`;
      if (state !== "checking") this.lastVerifiedMs = performance.now() - this._started;
    };
    if (badge.dataset.state === "checking") return;
    set("checking", "Checking…", "checking the proof in your browser");
    try {
      const key = await this._pinnedKey();
      let proof;
      try {
        proof = await this._fetch("/v1/log/proof/inclusion", { id: event.id });
      } catch (err) {
        if (err instanceof Problem && err.status === 409) {
          // the event is newer than the latest signed checkpoint
          set("pending", "Pending", "not in a signed checkpoint yet; check again after the next checkpoint");
          return;
        }
        throw err;
      }
      const { checkpoint, redacted } = await verifyEvent(event, proof, key, (note) => this._openCheckpoint(key, note));
      const where = `leaf ${proof.leaf_index} of ${checkpoint.origin} at size ${checkpoint.size}, signed by ${key.name}`;
      if (redacted) {
        set("redacted", "Included",
          `content redacted (${event.redacted.join(", ")}), so it cannot be checked here; its inclusion is verified: ${where}`);
      } else {
        set("verified", "Verified", where);
      }
    } catch (err) {
      set("failed", "Failed", err.message);
    }
  }

  _verifyAll(rows) {
    for (const li of rows) li.querySelector(".badge").click();
  }
}

if (!customElements.get("auditkeep-timeline")) {
  customElements.define("auditkeep-timeline", AuditkeepTimeline);
}
