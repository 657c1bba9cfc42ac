// Genflow's client for browsers (and any runtime with fetch and WebSocket): the REST API and the
// live event stream of /v1/events, kept whole across reconnects.
//
//   import { GenflowClient } from "./genflow.js";
//   const genflow = new GenflowClient({ baseUrl: "https://genflow.example.com", token: () => idp.getToken() });
//   genflow.on("token_balance_updated", (event) => showBalance(event.data.balance));
//   genflow.connect();
//   const { job } = await genflow.submit("canvas-generation", { instructions: "a flowchart with 4 steps" });
//   genflow.followJob(job.id, (event) => render(event));
//
// No dependencies, one file: copy it, or import it from a daemon at /dashboard/genflow.js.
// Types: genflow.d.ts. Protocol: docs/api.md ("WebSocket: /v1/events"); guide: docs/frontend.md.

/** The event types the daemon itself sends (pipelines add their own `notify` names). */
export const EVENT_TYPES = Object.freeze([
  "job.queued", "job.started", "step.started", "step.progress", "step.retrying", "step.completed",
  "job.completed", "job.failed", "job.cancelled", "canvas.objects", "token_balance_updated",
  "pipeline.loaded", "pipeline.removed", "pipeline.rejected",
]);

/** The event types that end a job. */
export const JOB_END_TYPES = Object.freeze(["job.completed", "job.failed", "job.cancelled"]);

/** An error answer of the API (`{"error": {code, message, details?}}`), or a network failure (status 0). */
export class GenflowError extends Error {
  constructor(status, code, message, details, retryAfter) {
    super(message);
    this.name = "GenflowError";
    this.status = status;
    this.code = code;
    this.details = details;
    this.retryAfter = retryAfter;
  }
}

// Close codes after which reconnecting cannot help (the request itself is wrong).
const FATAL_CLOSES = new Set([1003, 1007, 1009, 4400, 4403, 4404]);
// How many event ids are remembered to drop repeats (a replay can overlap what arrived live).
const SEEN_LIMIT = 10000;
// How many recent events are kept for `followJob`: a job's first events can arrive before the
// call that follows it (`submit` resolves after the daemon has already sent `job.queued`).
const HISTORY_LIMIT = 1000;

export class GenflowClient {
  /**
   * @param {object} options
   * @param {string} [options.baseUrl] the daemon (or the proxy in front of it); default: this page's origin
   * @param {string | (() => string | Promise<string>)} options.token a token, or a function that returns a
   *   fresh one: it is called before the first request and again whenever the daemon refuses the token
   * @param {string} [options.userId] operators: whose events the stream carries
   * @param {number} [options.since] start the stream after this event id (default: live from now)
   * @param {{initial?: number, max?: number}} [options.backoff] reconnect delays in ms (default 500 → 10000)
   * @param {typeof fetch} [options.fetch]
   * @param {typeof WebSocket} [options.WebSocket]
   */
  constructor(options = {}) {
    this.baseUrl = (options.baseUrl ?? globalThis.location?.origin ?? "").replace(/\/$/, "");
    this.tokenSource = options.token;
    this.userId = options.userId;
    this.backoff = { initial: 500, max: 10000, ...options.backoff };
    this.fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.WebSocketImpl = options.WebSocket ?? globalThis.WebSocket;
    this.lastEventId = options.since ?? null;
    this.state = "idle";
    this.token = typeof options.token === "string" ? options.token : null;
    this.handlers = new Map();     // type (or "*") -> Set of handlers
    this.stateHandlers = new Set();
    this.follows = new Map();      // job id -> {handlers: Set, lastId}
    this.seen = new Set();
    this.seenOrder = [];
    this.history = [];
    this.socket = null;
    this.attempt = 0;
    this.timer = null;
    this.wanted = false;
  }

  // ---- Tokens ---------------------------------------------------------------------------------

  /** The current token; with a token function, asks it when there is none (or `fresh` is set). */
  async currentToken(fresh = false) {
    if (typeof this.tokenSource !== "function") return this.tokenSource ?? "";
    if (fresh || !this.token) this.token = await this.tokenSource();
    return this.token;
  }

  // ---- REST -----------------------------------------------------------------------------------

  /**
   * One API call; resolves to the parsed JSON answer (null for an empty body) or rejects with a
   * GenflowError. A 401 with a token function asks it for a fresh token and tries once more.
   */
  async request(method, path, body, retried = false) {
    const headers = { Authorization: `Bearer ${await this.currentToken()}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await this.fetchImpl(this.baseUrl + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (error) {
      throw new GenflowError(0, "network", `cannot reach ${this.baseUrl || "the daemon"}: ${error.message}`);
    }
    const text = await response.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch { json = null; }
    if (response.ok) return json;
    if (response.status === 401 && !retried && typeof this.tokenSource === "function") {
      await this.currentToken(true);
      return this.request(method, path, body, true);
    }
    const error = json?.error ?? {};
    const retryAfter = Number(response.headers.get("Retry-After")) || undefined;
    throw new GenflowError(response.status, error.code ?? "http_error", error.message ?? `HTTP ${response.status}`, error.details, retryAfter);
  }

  /** POST /v1/jobs: `{job}`. Options: priority, idempotencyKey, runAt (ISO 8601), userId (operators). */
  submit(pipeline, input = {}, options = {}) {
    const body = { pipeline, input };
    if (options.priority !== undefined) body.priority = options.priority;
    if (options.idempotencyKey !== undefined) body.idempotency_key = options.idempotencyKey;
    if (options.runAt !== undefined) body.run_at = options.runAt;
    if (options.userId !== undefined) body.user_id = options.userId;
    return this.request("POST", "/v1/jobs", body);
  }

  /** GET /v1/jobs/{id}: the job with its steps. */
  job(id) { return this.request("GET", `/v1/jobs/${encodeURIComponent(id)}`); }

  /** POST /v1/jobs/{id}/cancel. */
  cancel(id) { return this.request("POST", `/v1/jobs/${encodeURIComponent(id)}/cancel`); }

  /** POST /v1/jobs/{id}/retry. */
  retry(id) { return this.request("POST", `/v1/jobs/${encodeURIComponent(id)}/retry`); }

  /** GET /v1/tokens/balance. */
  balance() { return this.request("GET", "/v1/tokens/balance"); }

  /**
   * Pages through a list endpoint (`/v1/jobs`, `/v1/prompts`, `/v1/images`, `/v1/tokens/ledger`…),
   * newest first, following `next_cursor`: `for await (const job of genflow.list("/v1/jobs", {status: "failed"}))`.
   */
  async *list(path, query = {}) {
    let cursor = null;
    do {
      const params = new URLSearchParams(Object.entries(query).filter(([, value]) => value !== undefined && value !== null));
      if (cursor) params.set("cursor", cursor);
      const search = params.toString();
      const page = await this.request("GET", search ? `${path}?${search}` : path);
      for (const item of page?.items ?? []) yield item;
      cursor = page?.next_cursor ?? null;
    } while (cursor);
  }

  /** The user's jobs, newest first (filters: status, pipeline, limit per page). */
  jobs(query = {}) { return this.list("/v1/jobs", query); }

  // ---- Events ---------------------------------------------------------------------------------

  /** Calls `handler(event)` for each event of `type` ("*": every event); returns a function that stops it. */
  on(type, handler) {
    if (!this.handlers.has(type)) this.handlers.set(type, new Set());
    this.handlers.get(type).add(handler);
    return () => this.handlers.get(type)?.delete(handler);
  }

  /**
   * Calls `handler(state, detail)` when the stream's state changes: "connecting" ({since}), "open",
   * "reconnecting" (waiting before the next attempt: {delay, code, reason}), "gap" (the daemon no longer has the events after
   * `since`: reload what you show over REST), "unauthorized" (the token was refused and there is no
   * token function to ask), "closed" ({code, reason}: by `close()` or for good).
   */
  onState(handler) {
    this.stateHandlers.add(handler);
    return () => this.stateHandlers.delete(handler);
  }

  /**
   * Follows one job: `handler(event)` gets its events, from its first (replayed) to its end, across
   * reconnects, each once and in order. For a user's own jobs the stream carries them anyway; an
   * operator's stream needs this. Returns `{stop()}`; it stops by itself after the job's end.
   */
  followJob(jobId, handler) {
    const follow = this.follows.get(jobId) ?? { handlers: new Set(), lastId: null, replayUntil: null };
    follow.handlers.add(handler);
    this.follows.set(jobId, follow);
    // What already arrived of the job first, then what the subscription replays and what comes live.
    let ended = false;
    for (const event of this.history) {
      if (event.job_id !== jobId) continue;
      follow.lastId = event.id;
      handler(event);
      ended = ended || JOB_END_TYPES.includes(event.type);
    }
    if (ended) {
      follow.handlers.delete(handler);
      if (follow.handlers.size === 0) this.follows.delete(jobId);
      return { stop: () => {} };
    }
    this.sendSubscribe(jobId, follow);
    return {
      stop: () => {
        follow.handlers.delete(handler);
        if (follow.handlers.size === 0) this.unfollow(jobId);
      },
    };
  }

  /** Opens the stream (and keeps it open until `close()`). */
  connect() {
    this.wanted = true;
    if (!this.socket && !this.timer) this.open();
    return this;
  }

  /** Closes the stream for good. */
  close() {
    this.wanted = false;
    clearTimeout(this.timer);
    this.timer = null;
    const socket = this.socket;
    this.socket = null;
    if (socket) socket.close(1000, "client closed");
    this.setState("closed", { code: 1000, reason: "client closed" });
  }

  /** Sends a client message on the open socket (`{op: "ping"}`…); false when not open. */
  send(message) {
    if (this.socket?.readyState !== 1) return false;
    this.socket.send(JSON.stringify(message));
    return true;
  }

  setState(state, detail) {
    this.state = state;
    for (const handler of this.stateHandlers) handler(state, detail);
  }

  async open() {
    this.timer = null;
    let token;
    try {
      token = await this.currentToken(this.attempt > 0 && this.refreshOnOpen);
    } catch (error) {
      return this.retryLater(0, `token function failed: ${error.message}`);
    }
    this.refreshOnOpen = false;
    if (!this.wanted) return;
    const params = new URLSearchParams({ token });
    if (this.lastEventId !== null) params.set("since", String(this.lastEventId));
    if (this.userId) params.set("user_id", this.userId);
    const url = `${this.baseUrl.replace(/^http/, "ws")}/v1/events?${params}`;
    this.setState("connecting", { since: this.lastEventId });
    const socket = new this.WebSocketImpl(url);
    this.socket = socket;
    socket.onopen = () => {
      if (this.socket !== socket) return;
      this.setState("open", { since: this.lastEventId });
      for (const [jobId, follow] of this.follows) this.sendSubscribe(jobId, follow);
    };
    socket.onmessage = (message) => {
      if (this.socket !== socket) return;
      let parsed;
      try { parsed = JSON.parse(message.data); } catch { return; }
      this.received(parsed);
    };
    socket.onclose = (close) => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.closed(close.code, close.reason);
    };
  }

  closed(code, reason) {
    if (!this.wanted) return;
    if (code === 4401) {
      // The token was refused (expired, revoked): a token function gives a fresh one at once.
      if (typeof this.tokenSource !== "function") {
        this.wanted = false;
        return this.setState("unauthorized", { code, reason });
      }
      this.refreshOnOpen = true;
      this.attempt += 1;
      return this.retryLater(0, reason, code);
    }
    if (code === 4429) {
      const seconds = Number(/(\d+) s/.exec(reason ?? "")?.[1]) || 60;
      return this.retryLater(seconds * 1000, reason, code);
    }
    if (FATAL_CLOSES.has(code)) {
      this.wanted = false;
      return this.setState("closed", { code, reason });
    }
    const delay = Math.min(this.backoff.max, this.backoff.initial * 2 ** Math.min(this.attempt, 10));
    this.attempt += 1;
    // Up to a fifth less, so that many clients dropped at once do not come back at once.
    this.retryLater(delay * (0.8 + 0.2 * Math.random()), reason, code);
  }

  retryLater(delay, reason, code) {
    if (!this.wanted) return;
    this.setState("reconnecting", { delay, code, reason });
    this.timer = setTimeout(() => this.open(), delay);
  }

  received(message) {
    switch (message.op) {
      case "event": return this.deliver(message);
      case "error":
        if (message.code === "unknown_since") this.setState("gap", { code: message.code, message: message.message, jobId: message.job_id });
        return;
      default: return;
    }
  }

  deliver(event) {
    if (this.seen.has(event.id)) return;
    this.seen.add(event.id);
    this.seenOrder.push(event.id);
    if (this.seenOrder.length > SEEN_LIMIT) this.seen.delete(this.seenOrder.shift());
    this.history.push(event);
    if (this.history.length > HISTORY_LIMIT) this.history.shift();
    // A job subscription replays events older than where the stream stands: they must not move
    // the stream's resume point (`since`) back. Ids grow with time (not strictly: docs/api.md,
    // "Ordering"), so a replayed event is one at or below the stream's position when the job was
    // subscribed; the first newer one ends the replay.
    const follow = event.job_id ? this.follows.get(event.job_id) : undefined;
    const replayed = follow?.replayUntil != null && event.id <= follow.replayUntil;
    if (follow) {
      follow.lastId = event.id;
      if (!replayed) follow.replayUntil = null;
    }
    if (!replayed) this.lastEventId = event.id;
    this.attempt = 0;
    for (const type of [event.type, "*"]) {
      for (const handler of this.handlers.get(type) ?? []) handler(event);
    }
    if (follow) {
      for (const handler of follow.handlers) handler(event);
      if (JOB_END_TYPES.includes(event.type)) this.unfollow(event.job_id);
    }
  }

  sendSubscribe(jobId, follow) {
    if (this.send({ op: "subscribe", job_id: jobId, since: follow.lastId ?? 0 })) follow.replayUntil = this.lastEventId;
  }

  unfollow(jobId) {
    if (!this.follows.delete(jobId)) return;
    this.send({ op: "unsubscribe", job_id: jobId });
  }
}
