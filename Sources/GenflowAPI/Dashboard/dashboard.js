// Genflow's dashboard: the reference frontend. It uses only the public API (docs/api.md) and the
// event socket, through the client library genflow.js (docs/frontend.md walks through this file).
// Plain JavaScript modules, no build step.
import { GenflowClient } from "./genflow.js";

const $ = (id) => document.getElementById(id);
const STATUSES = ["queued", "running", "waiting_retry", "completed", "failed", "cancelled"];
const TERMINAL = new Set(["completed", "failed", "cancelled"]);

const state = {
  token: null,
  operator: false,
  user: null,               // whose jobs, balance and events are shown (an operator's watched user, or null: all, polled)
  jobs: new Map(),          // job id → view: {id, pipeline, status, progress, objects, events, doc, images}
  selected: null,
  genflow: null,            // the client: REST calls and the event stream (reconnects, since, de-duplication)
  following: null,          // the selected job's subscription ({stop})
  pipelines: new Map(),     // name → GET /v1/pipelines/{name}
  balance: null,
  timers: [],
};

// MARK: API

/** One API call (a GenflowError, with status and code, when it fails). */
function api(method, path, body) {
  return state.genflow.request(method, path, body);
}

/** `path` with the watched user for an operator (users are always themselves). */
function scoped(path) {
  if (!state.operator || !state.user) return path;
  return path + (path.includes("?") ? "&" : "?") + "user_id=" + encodeURIComponent(state.user);
}

function decodeJWT(token) {
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  try {
    return JSON.parse(atob(parts[1].replace(/-/g, "+").replace(/_/g, "/")));
  } catch {
    return null;
  }
}

// MARK: Sign-in

function showGate(message) {
  $("gate").hidden = false;
  $("app").hidden = true;
  $("gate-error").textContent = message ?? "";
  setConnection("offline", "offline");
}

async function signIn(token) {
  state.token = token.trim();
  state.genflow?.close();
  state.genflow = new GenflowClient({ token: state.token });
  const claims = decodeJWT(state.token);
  const params = new URLSearchParams(location.search);
  try {
    if (claims) {
      state.operator = false;
      state.user = claims.sub;
      await api("GET", "/v1/tokens/balance");
    } else {
      // Not a JWT: perhaps the admin token. Only operators may read the stats.
      await api("GET", "/v1/stats");
      state.operator = true;
      state.user = params.get("user") || null;
    }
  } catch (error) {
    sessionStorage.removeItem("genflow.token");
    showGate(error.status === 401 || error.status === 403 ? `This token is not accepted: ${error.message}` : error.message);
    return;
  }
  sessionStorage.setItem("genflow.token", state.token);
  $("gate").hidden = true;
  $("app").hidden = false;
  $("sign-out").hidden = false;
  await start();
}

function signOut(message) {
  sessionStorage.removeItem("genflow.token");
  state.genflow?.close();
  state.timers.forEach(clearInterval);
  state.timers = [];
  state.jobs.clear();
  state.selected = null;
  $("jobs").replaceChildren();
  showGate(message);
}

async function start() {
  state.jobs.clear();
  state.selected = null;
  $("jobs").replaceChildren();
  $("who").textContent = state.operator ? `operator${state.user ? ` · watching ${state.user}` : " · all users"}` : `user ${state.user}`;
  $("operator").hidden = !state.operator;
  $("watch-user").value = state.user ?? "";
  $("balance-box").hidden = !state.user;
  renderDetail();
  connect();
  await Promise.all([loadPipelines(), loadJobs(), loadBalance(), loadGallery(), state.operator ? loadOperator() : null]);
  state.timers.forEach(clearInterval);
  state.timers = [];
  if (state.operator) state.timers.push(setInterval(loadOperator, 5000));
  // Without a watched user an operator's socket carries no job events: the list is polled.
  if (state.operator && !state.user) state.timers.push(setInterval(loadJobs, 3000));
}

// MARK: The event socket

function setConnection(kind, text) {
  $("connection").dataset.state = kind;
  $("connection").textContent = text;
}

/** A new stream for the signed-in caller: every event goes through applyEvent, once, in order. */
function connect() {
  state.genflow.close();
  const token = state.token;
  const genflow = new GenflowClient({ token, userId: state.operator ? state.user ?? undefined : undefined });
  state.genflow = genflow;
  state.following = null;
  let opened = false;
  genflow.on("*", applyEvent);
  genflow.onState((kind, detail) => {
    if (state.genflow !== genflow) return;
    switch (kind) {
      case "connecting":
        return setConnection("connecting", detail?.since != null ? `reconnecting since event ${detail.since}…` : "connecting…");
      case "open":
        setConnection("live", "live");
        // After a drop, the REST views may have missed what the replay does not cover.
        if (opened) refreshAll();
        opened = true;
        return;
      case "reconnecting":
        return setConnection("reconnecting", `reconnecting in ${Math.ceil((detail?.delay ?? 0) / 1000)} s (closed: ${detail?.code ?? "?"})`);
      case "gap": return refreshAll();
      case "unauthorized":
        signOut(`The server refused the token: ${detail?.reason ?? ""}`);
        return setConnection("signed-out", "signed out");
      default: return;
    }
  });
  genflow.connect();
}

function refreshAll() {
  loadJobs();
  loadBalance();
  if (state.selected) refreshJob(state.selected);
}

/** Applies one event to the views: the job list, the selected job, the balance. */
function applyEvent(event) {
  if (event.type === "token_balance_updated") setBalance(event.data.balance, event.data.change);
  if (event.type.startsWith("pipeline.")) {
    loadPipelines();
    if (state.operator) loadOperator();
  }
  if (!event.job_id) return;
  if (state.operator && event.type.startsWith("job.")) loadOperatorSoon();
  let job = state.jobs.get(event.job_id);
  if (!job) {
    job = addJob({ id: event.job_id, pipeline: event.data?.pipeline ?? "", status: "queued", created_at: event.at });
    refreshJob(job.id);
  }
  // A job's events are written one transaction after another: ids rise within a job. A replay of
  // older events (subscribing to a job already followed live) adds to the log and the canvas but
  // does not take the status back.
  const newer = event.id > job.lastId;
  if (newer) job.lastId = event.id;
  job.events.push(event);
  job.events.sort((a, b) => a.id - b.id);
  if (job.events.length > 300) job.events.shift();
  const data = event.data ?? {};
  if (event.type === "canvas.objects") {
    for (const object of data.objects ?? []) job.objects.set(object.id, object);
  } else if (Array.isArray(data.images)) {
    job.images = data.images;
  }
  if (newer) applyStatus(job, event);
  renderJob(job);
  if (state.selected === job.id) {
    if (newer && (event.type.startsWith("step.") || event.type.startsWith("job."))) refreshJobSoon(job.id);
    renderDetail();
  }
}

/** What an event says of its job's status and progress. */
function applyStatus(job, event) {
  const data = event.data ?? {};
  switch (event.type) {
    case "job.queued":
      job.status = "queued";
      job.error = null;
      break;
    case "job.started":
      job.status = "running";
      break;
    case "step.started":
      job.status = "running";
      job.progress = { step: unitOf(event), fraction: 0, message: `attempt ${data.attempt}` };
      job.running.set(unitOf(event), job.progress);
      break;
    case "step.progress":
      job.progress = { step: unitOf(event), fraction: data.fraction ?? job.running.get(unitOf(event))?.fraction ?? 0, message: data.message ?? "" };
      job.running.set(unitOf(event), job.progress);
      break;
    case "step.retrying":
      // A branch waiting for its retry: the job runs on unless nothing else does.
      job.running.delete(unitOf(event));
      if (data.reason !== "on_invalid" && job.running.size === 0) job.status = "waiting_retry";
      job.progress = { step: unitOf(event), fraction: 0, message: `retry${data.delay_ms ? ` in ${seconds(data.delay_ms)}` : ""}: ${data.error?.class ?? ""} ${data.error?.message ?? ""}` };
      break;
    case "step.completed":
      job.running.delete(unitOf(event));
      if (data.item === undefined) job.done.add(event.step);
      job.progress = { step: unitOf(event), fraction: 1, message: "done" };
      break;
    case "job.completed":
    case "job.failed":
    case "job.cancelled":
      job.status = event.type.slice(4);
      job.progress = null;
      job.running.clear();
      job.error = data.error ?? null;
      refreshJob(job.id);
      if (job.images.length || job.pipeline.startsWith("image")) loadGallery();
      break;
  }
}

// MARK: Jobs

function addJob(doc) {
  let job = state.jobs.get(doc.id);
  if (!job) {
    job = { id: doc.id, pipeline: doc.pipeline, status: doc.status, progress: null, running: new Map(), done: new Set(), objects: new Map(), events: [], lastId: 0, doc: null, images: [] };
    state.jobs.set(job.id, job);
  }
  return job;
}

async function loadJobs() {
  try {
    const page = await api("GET", scoped("/v1/jobs?limit=30"));
    for (const doc of page.items.slice().reverse()) {
      renderJob(merge(doc));
    }
    if (!state.selected && page.items.length) select(page.items[0].id);
  } catch (error) {
    console.warn("loading jobs failed:", error.message);
  }
}

async function refreshJob(id) {
  try {
    const job = merge(await api("GET", `/v1/jobs/${id}`));
    job.doc = job.latest;
    // The saved objects are the final word: a streamed preview can miss one (an arrow sent before its target).
    const saved = objectsOf(job.doc.result);
    if (saved.length && (TERMINAL.has(job.status) || job.objects.size === 0)) job.objects = new Map(saved.map((o) => [o.id, o]));
    renderJob(job);
    if (state.selected === id) renderDetail();
  } catch (error) {
    console.warn("loading job failed:", error.message);
  }
}

/** A job document from the API merged into its view. */
function merge(doc) {
  const job = addJob(doc);
  job.latest = doc;
  job.pipeline = doc.pipeline;
  job.created_at = doc.created_at;
  job.user_id = doc.user_id;
  // A terminal state seen on the socket is newer than a document read before it.
  if (!TERMINAL.has(job.status) || TERMINAL.has(doc.status)) job.status = doc.status;
  job.error = doc.error ?? (TERMINAL.has(job.status) ? job.error : null);
  return job;
}

const pendingRefresh = new Map();
function refreshJobSoon(id) {
  if (pendingRefresh.has(id)) return;
  pendingRefresh.set(id, setTimeout(() => {
    pendingRefresh.delete(id);
    refreshJob(id);
  }, 250));
}

/** The canvas objects of a job's result: the last step output with an `objects` array. */
function objectsOf(result) {
  let found = [];
  for (const output of Object.values(result ?? {})) {
    if (Array.isArray(output?.objects) && output.objects.every((o) => o && typeof o.type === "string")) found = output.objects;
  }
  return found;
}

function select(id) {
  const previous = state.selected;
  state.selected = id;
  for (const item of $("jobs").children) item.classList.toggle("selected", item.dataset.jobId === id);
  renderDetail();
  refreshJob(id);
  // Replays the job's events from the start (its canvas objects, retries), then it stays live,
  // across reconnects. The events themselves reach applyEvent like every other.
  if (previous !== id) {
    state.following?.stop();
    state.following = state.genflow.followJob(id, () => {});
  }
}

function renderJob(job) {
  let item = $("jobs").querySelector(`li[data-job-id="${job.id}"]`);
  if (!item) {
    item = document.createElement("li");
    item.dataset.jobId = job.id;
    item.addEventListener("click", () => select(job.id));
    $("jobs").prepend(item);
  }
  item.dataset.status = job.status;
  item.classList.toggle("selected", state.selected === job.id);
  const progress = job.progress && !TERMINAL.has(job.status) ? overallProgress(job) : null;
  item.replaceChildren(
    el("div", { class: "row" }, badge(job.status), el("span", { class: "name" }, job.pipeline || "job"), el("span", { class: "sub" }, time(job.created_at))),
    el("div", { class: "sub" }, `${job.id.slice(0, 8)}${state.operator && job.user_id ? ` · ${job.user_id}` : ""}${progress ? ` · ${job.progress.step}: ${job.progress.message}` : ""}`),
    progress === null ? "" : bar(progress),
  );
}

/** A progress bar (the width set through CSSOM: the page's CSP refuses inline style attributes). */
function bar(fraction) {
  const fill = el("div", {});
  fill.style.width = `${Math.round(fraction * 100)}%`;
  return el("div", { class: "progress" }, fill);
}

/** `step`, or `step[item]` for an item of a for_each step. */
function unitOf(event) {
  return event.data?.item === undefined ? event.step : `${event.step}[${event.data.item}]`;
}

/** Steps done plus the fractions of the steps running now (branches side by side), over the pipeline's steps. */
function overallProgress(job) {
  const steps = state.pipelines.get(job.pipeline)?.steps;
  const clamp = (value) => Math.max(0, Math.min(1, value ?? 0));
  if (!steps?.length) return clamp(job.progress?.fraction);
  const running = [...job.running.entries()].filter(([unit]) => !unit.includes("[")).reduce((sum, [, p]) => sum + clamp(p.fraction), 0);
  return Math.min(1, (job.done.size + running) / steps.length);
}

// MARK: The selected job

function renderDetail() {
  const job = state.jobs.get(state.selected);
  if (!job) {
    $("detail-title").textContent = "No job selected";
    $("detail-meta").replaceChildren();
    $("steps").replaceChildren();
    $("events").replaceChildren();
    $("images").replaceChildren();
    drawCanvas([]);
    return;
  }
  const doc = job.doc ?? {};
  $("detail-title").replaceChildren(`${job.pipeline} `, el("small", { class: "sub" }, job.id));
  const cancel = el("button", { class: "quiet", type: "button" }, "Cancel");
  cancel.disabled = TERMINAL.has(job.status);
  cancel.addEventListener("click", () => control(job.id, "cancel"));
  const retry = el("button", { class: "quiet", type: "button" }, "Retry");
  retry.disabled = !(job.status === "failed" || job.status === "cancelled");
  retry.addEventListener("click", () => control(job.id, "retry"));
  const error = job.error ?? doc.error;
  $("detail-meta").replaceChildren(
    badge(job.status),
    el("span", {}, `created ${time(doc.created_at ?? job.created_at)}`),
    doc.started_at ? el("span", {}, `started ${time(doc.started_at)}`) : "",
    doc.finished_at ? el("span", {}, `took ${seconds(Date.parse(doc.finished_at) - Date.parse(doc.started_at ?? doc.created_at))}`) : "",
    doc.user_id ? el("span", {}, `user ${doc.user_id}`) : "",
    cancel, retry,
    error ? el("span", { class: "error" }, `${error.step ? `${error.step}: ` : ""}${error.class}: ${error.message}`) : "",
  );
  drawCanvas([...job.objects.values()]);
  renderImages(job);
  renderSteps(doc);
  $("events").replaceChildren(...job.events.slice(-100).map((event) => el("li", {},
    `${event.id} `, el("span", { class: "type" }, event.type), `${event.step ? ` ${event.step}` : ""} ${summary(event.data)}`)));
  $("events").scrollTop = $("events").scrollHeight;
}

/**
 * The steps by level: a level's steps can run side by side (they need only steps of earlier
 * levels). A running step shows its progress bar; a for_each step its items done over started.
 */
function renderSteps(doc) {
  const job = state.jobs.get(state.selected);
  const steps = doc.steps ?? [];
  const level = levelsOf(steps);
  const rows = [el("tr", {}, ...["step", "stage", "status", "attempts", "time", "progress / error"].map((h) => el("th", {}, h)))];
  let shown = -1;
  for (const step of [...steps].sort((a, b) => level.get(a.id) - level.get(b.id))) {
    if (level.get(step.id) !== shown) {
      shown = level.get(step.id);
      const side = steps.filter((s) => level.get(s.id) === shown).length;
      rows.push(el("tr", { class: "level" }, el("td", { colspan: "6" }, `level ${shown + 1}${side > 1 ? ` · ${side} side by side` : ""}`)));
    }
    // Times of one job's attempts are placed by the flushes that wrote them, to within a millisecond or so.
    const took = step.started_at && step.finished_at ? seconds(Math.max(0, Date.parse(step.finished_at) - Date.parse(step.started_at))) : "";
    const live = job?.running.get(step.id);
    let detail = "";
    if (step.error) detail = el("span", { class: "error" }, `${step.error.class}: ${step.error.message}`);
    else if (step.items) detail = el("span", {}, `items ${step.items_completed}/${step.items.length}`, bar(step.items.length ? step.items_completed / step.items.length : 0));
    else if (live && step.status !== "completed") detail = el("span", {}, live.message ?? "", bar(live.fraction ?? 0));
    rows.push(el("tr", { "data-step": step.id },
      el("td", {}, step.id, step.needs?.length > 1 ? el("span", { class: "sub" }, ` ← ${step.needs.join(", ")}`) : ""),
      el("td", {}, step.stage), el("td", {}, badge(step.status)), el("td", {}, String(step.attempts)), el("td", {}, took), el("td", {}, detail)));
    for (const run of (doc.runs ?? []).filter((r) => r.step === step.id && (r.attempt > 1 || r.error) && !(r.item === undefined && step.items))) {
      const ran = run.finished_at ? seconds(Date.parse(run.finished_at) - Date.parse(run.started_at)) : "running";
      rows.push(el("tr", {},
        el("td", { class: "attempt", colspan: "3" }, `${run.item !== undefined ? `item ${run.item} · ` : ""}attempt ${run.attempt} · ${run.status}`), el("td", {}, ""), el("td", {}, ran),
        el("td", {}, run.error ? el("span", { class: "error" }, `${run.error.class}: ${run.error.message}${run.retry_delay_ms ? ` (retried after ${seconds(run.retry_delay_ms)})` : ""}`) : "")));
    }
  }
  $("steps").replaceChildren(...(doc.steps ? rows : []));
}

/** Each step's level: one more than its deepest need's (a step without needs listed: level 0). */
function levelsOf(steps) {
  const needs = new Map(steps.map((s) => [s.id, s.needs ?? []]));
  const level = new Map();
  const depth = (id, seen = new Set()) => {
    if (level.has(id)) return level.get(id);
    if (seen.has(id)) return 0;
    seen.add(id);
    const value = Math.max(-1, ...(needs.get(id) ?? []).map((need) => depth(need, seen))) + 1;
    level.set(id, value);
    return value;
  };
  for (const step of steps) depth(step.id);
  return level;
}

async function control(id, action) {
  try {
    await api("POST", `/v1/jobs/${id}/${action}`);
  } catch (error) {
    alert(`${action} failed: ${error.message}`);
  }
  refreshJob(id);
}

// MARK: Drawing canvas objects (schema v1: Excalidraw-like shapes)

function drawCanvas(objects) {
  const canvas = $("canvas");
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 640;
  const height = canvas.clientHeight || 400;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  canvas.dataset.objects = String(objects.length);
  const context = canvas.getContext("2d");
  context.setTransform(ratio, 0, 0, ratio, 0, 0);
  context.fillStyle = "#ffffff";
  context.fillRect(0, 0, width, height);
  if (!objects.length) {
    context.fillStyle = "#adb5bd";
    context.font = "14px system-ui, sans-serif";
    context.textAlign = "center";
    context.fillText("canvas objects appear here as they arrive", width / 2, height / 2);
    return;
  }
  const byID = new Map(objects.map((o) => [o.id, o]));
  const box = bounds(objects, context);
  const scale = Math.min((width - 40) / Math.max(box.w, 1), (height - 40) / Math.max(box.h, 1), 1.25);
  context.save();
  context.translate(20 + ((width - 40) - box.w * scale) / 2, 20 + ((height - 40) - box.h * scale) / 2);
  context.scale(scale, scale);
  context.translate(-box.x, -box.y);
  for (const object of objects) {
    if (object.type === "frame") drawObject(context, object, byID);
  }
  for (const object of objects) {
    if (object.type !== "frame") drawObject(context, object, byID);
  }
  context.restore();
}

function textSize(context, object) {
  context.font = `${object.fontSize ?? 20}px system-ui, sans-serif`;
  const lines = String(object.text ?? "").split("\n");
  return { w: Math.max(...lines.map((line) => context.measureText(line).width)), h: lines.length * (object.fontSize ?? 20) * 1.25 };
}

function extent(object, context) {
  if (object.type === "text") {
    const size = textSize(context, object);
    return { x: object.x, y: object.y, w: object.width ?? size.w, h: object.height ?? size.h };
  }
  if ((object.type === "line" || object.type === "arrow") && Array.isArray(object.points)) {
    const xs = object.points.map((p) => object.x + p[0]);
    const ys = object.points.map((p) => object.y + p[1]);
    return { x: Math.min(...xs), y: Math.min(...ys), w: Math.max(...xs) - Math.min(...xs), h: Math.max(...ys) - Math.min(...ys) };
  }
  return { x: object.x, y: object.y, w: object.width ?? 100, h: object.height ?? 60 };
}

function bounds(objects, context) {
  let left = Infinity, top = Infinity, right = -Infinity, bottom = -Infinity;
  for (const object of objects) {
    const e = extent(object, context);
    left = Math.min(left, e.x);
    top = Math.min(top, e.y - (object.type === "frame" ? 18 : 0));
    right = Math.max(right, e.x + e.w);
    bottom = Math.max(bottom, e.y + e.h);
  }
  return { x: left, y: top, w: right - left, h: bottom - top };
}

function drawObject(context, object, byID) {
  const e = extent(object, context);
  context.save();
  context.globalAlpha = (object.opacity ?? 100) / 100;
  context.lineWidth = object.strokeWidth ?? 1.5;
  context.strokeStyle = object.strokeColor ?? "#1e1e1e";
  context.setLineDash({ dashed: [8, 6], dotted: [2, 4] }[object.strokeStyle] ?? []);
  if (object.angle) {
    context.translate(e.x + e.w / 2, e.y + e.h / 2);
    context.rotate(object.angle);
    context.translate(-(e.x + e.w / 2), -(e.y + e.h / 2));
  }
  const outline = () => {
    context.beginPath();
    switch (object.type) {
      case "ellipse":
        context.ellipse(e.x + e.w / 2, e.y + e.h / 2, e.w / 2, e.h / 2, 0, 0, Math.PI * 2);
        break;
      case "diamond":
        context.moveTo(e.x + e.w / 2, e.y);
        context.lineTo(e.x + e.w, e.y + e.h / 2);
        context.lineTo(e.x + e.w / 2, e.y + e.h);
        context.lineTo(e.x, e.y + e.h / 2);
        context.closePath();
        break;
      default:
        context.roundRect ? context.roundRect(e.x, e.y, e.w, e.h, object.type === "note" ? 4 : 6) : context.rect(e.x, e.y, e.w, e.h);
    }
  };
  switch (object.type) {
    case "rectangle":
    case "ellipse":
    case "diamond":
    case "note": {
      const fill = object.backgroundColor ?? (object.type === "note" ? "#fff3bf" : "transparent");
      outline();
      fillShape(context, object, fill, e, outline);
      outline();
      context.stroke();
      if (object.text) drawText(context, { ...object, x: e.x + 8, y: e.y + 8 }, e.w - 16);
      break;
    }
    case "frame":
      context.setLineDash([6, 4]);
      context.strokeStyle = object.strokeColor ?? "#868e96";
      context.strokeRect(e.x, e.y, e.w, e.h);
      if (object.text) drawText(context, { ...object, fontSize: 13, strokeColor: "#868e96", x: e.x, y: e.y - 17 });
      break;
    case "text":
      drawText(context, object);
      break;
    case "line":
    case "arrow":
      drawLine(context, object, byID);
      break;
  }
  context.restore();
}

function fillShape(context, object, colour, e, outline) {
  if (!colour || colour === "transparent") return;
  const style = object.fillStyle ?? "hachure";
  context.save();
  context.setLineDash([]);
  if (style === "solid") {
    context.fillStyle = colour;
    context.fill();
  } else {
    // Hachure: diagonal strokes clipped to the shape (cross-hatch adds the other diagonal).
    context.clip();
    context.globalAlpha *= 0.25;
    context.fillStyle = colour;
    context.fill();
    context.globalAlpha /= 0.25;
    context.strokeStyle = colour;
    context.lineWidth = 1.5;
    context.beginPath();
    for (let d = -e.h; d < e.w; d += 8) {
      context.moveTo(e.x + d, e.y + e.h);
      context.lineTo(e.x + d + e.h, e.y);
      if (style === "cross-hatch") {
        context.moveTo(e.x + d, e.y);
        context.lineTo(e.x + d + e.h, e.y + e.h);
      }
    }
    context.stroke();
  }
  context.restore();
}

function drawText(context, object, maxWidth) {
  const size = object.fontSize ?? 20;
  context.font = `${size}px system-ui, sans-serif`;
  context.fillStyle = object.strokeColor ?? "#1e1e1e";
  context.textBaseline = "top";
  context.setLineDash([]);
  String(object.text ?? "").split("\n").forEach((line, index) => context.fillText(line, object.x, object.y + index * size * 1.25, maxWidth));
}

function drawLine(context, object, byID) {
  let points = (object.points ?? [[0, 0], [object.width ?? 100, object.height ?? 0]]).map((p) => [object.x + p[0], object.y + p[1]]);
  const centre = (id) => {
    const target = byID.get(id);
    if (!target) return null;
    const e = extent(target, context);
    return [e.x + e.w / 2, e.y + e.h / 2];
  };
  // Bound to objects and without points of its own: centre to centre.
  if (!object.points && object.start && object.end && centre(object.start) && centre(object.end)) points = [centre(object.start), centre(object.end)];
  context.beginPath();
  points.forEach(([x, y], index) => (index ? context.lineTo(x, y) : context.moveTo(x, y)));
  context.stroke();
  if (object.type === "arrow" && points.length >= 2) {
    const [[x1, y1], [x2, y2]] = points.slice(-2);
    const angle = Math.atan2(y2 - y1, x2 - x1);
    context.setLineDash([]);
    context.beginPath();
    for (const side of [-1, 1]) {
      context.moveTo(x2, y2);
      context.lineTo(x2 - 12 * Math.cos(angle + side * 0.45), y2 - 12 * Math.sin(angle + side * 0.45));
    }
    context.stroke();
  }
}

// MARK: Images

function imageSource(image) {
  if (!image.image_url) return null;
  // Kept by the daemon (a relative API path): the token goes in the query, as <img> sends no header.
  if (!image.image_url.startsWith("/")) return image.image_url;
  const path = scoped(image.image_url);
  return `${path}${path.includes("?") ? "&" : "?"}token=${encodeURIComponent(state.token)}`;
}

function renderImages(job) {
  const images = job.images.length ? job.images : (job.doc?.result?.save?.images ?? []);
  $("images").replaceChildren(...images.filter((i) => i && i.image_url).map((image) => el("img", { src: imageSource(image), alt: image.prompt ?? "generated image" })));
}

async function loadGallery() {
  try {
    const page = await api("GET", scoped("/v1/images?limit=12"));
    $("gallery").replaceChildren(...page.items.map((image) => el("figure", {},
      el("img", { src: imageSource(image), alt: image.prompt, title: image.full_prompt ?? image.prompt }),
      el("figcaption", {}, image.prompt))));
  } catch (error) {
    console.warn("loading images failed:", error.message);
  }
}

// MARK: Balance

async function loadBalance() {
  if (!state.user) return;
  try {
    const balance = await api("GET", scoped("/v1/tokens/balance"));
    setBalance(balance.balance, null);
  } catch (error) {
    console.warn("loading the balance failed:", error.message);
  }
}

function setBalance(balance, change) {
  state.balance = balance;
  $("balance").textContent = String(balance);
  const note = $("balance-change");
  if (change) {
    note.textContent = `${change > 0 ? "+" : "−"}${Math.abs(change)}`;
    note.className = change > 0 ? "credit" : "debit";
  }
}

// MARK: Pipelines and the submit form

async function loadPipelines() {
  try {
    const list = await api("GET", "/v1/pipelines");
    const loaded = list.items.filter((p) => p.name);
    const details = await Promise.all(loaded.map((p) => api("GET", `/v1/pipelines/${encodeURIComponent(p.name)}`)));
    state.pipelines = new Map(details.map((d) => [d.name, d]));
    state.pipelineList = list.items;
    const select = $("pipeline");
    const current = select.value;
    select.replaceChildren(...details.map((d) => el("option", { value: d.name }, d.name)));
    if (state.pipelines.has(current)) select.value = current;
    renderFields();
    if (state.operator) renderPipelines();
  } catch (error) {
    console.warn("loading pipelines failed:", error.message);
  }
}

/** One field per property of the pipeline's input schema (SPEC §5's subset). */
function renderFields() {
  const pipeline = state.pipelines.get($("pipeline").value);
  const input = pipeline?.input ?? {};
  const required = new Set(input.required ?? []);
  const fields = Object.entries(input.properties ?? {}).map(([name, schema]) => {
    const label = `${name}${required.has(name) ? " *" : ""}`;
    let control;
    if (Array.isArray(schema.enum)) {
      control = el("select", {}, ...schema.enum.map((v) => el("option", { value: JSON.stringify(v) }, String(v))));
      if (schema.default !== undefined) control.value = JSON.stringify(schema.default);
    } else if (schema.type === "boolean") {
      control = el("input", { type: "checkbox" });
      control.checked = schema.default === true;
      return el("label", { class: "check" }, control, label);
    } else if (schema.type === "integer" || schema.type === "number") {
      control = el("input", { type: "number", step: schema.type === "integer" ? "1" : "any" });
      if (schema.minimum !== undefined) control.min = schema.minimum;
      if (schema.maximum !== undefined) control.max = schema.maximum;
      if (schema.default !== undefined) control.value = schema.default;
    } else if (schema.type === "string" && (schema.maxLength ?? 0) > 200) {
      control = el("textarea", { rows: "3" });
      control.value = schema.default ?? "";
    } else if (schema.type === "string") {
      control = el("input", {});
      control.value = schema.default ?? "";
    } else {
      control = el("textarea", { rows: "2", placeholder: "JSON" });
      if (schema.default !== undefined) control.value = JSON.stringify(schema.default);
    }
    control.name = name;
    control.dataset.kind = Array.isArray(schema.enum) ? "enum" : schema.type ?? "json";
    control.required = required.has(name);
    return el("label", {}, label, control);
  });
  $("fields").replaceChildren(...fields);
}

function formInput() {
  const input = {};
  for (const control of $("fields").querySelectorAll("[name]")) {
    const kind = control.dataset.kind;
    if (kind === "boolean") input[control.name] = control.checked;
    else if (control.value === "") continue;
    else if (kind === "enum") input[control.name] = JSON.parse(control.value);
    else if (kind === "integer" || kind === "number") input[control.name] = Number(control.value);
    else if (kind === "string") input[control.name] = control.value;
    else input[control.name] = JSON.parse(control.value);
  }
  return input;
}

async function submitJob(event) {
  event.preventDefault();
  $("submit-error").textContent = "";
  const body = { pipeline: $("pipeline").value };
  try {
    body.input = formInput();
  } catch (error) {
    $("submit-error").textContent = `A JSON field is not valid JSON: ${error.message}`;
    return;
  }
  if (state.operator) {
    if (!state.user) {
      $("submit-error").textContent = "Watch a user first: operators submit jobs for a user.";
      return;
    }
    body.user_id = state.user;
  }
  $("submit").disabled = true;
  try {
    const answer = await api("POST", "/v1/jobs", body);
    const job = addJob(answer.job);
    job.created_at = answer.job.created_at;
    renderJob(job);
    select(job.id);
  } catch (error) {
    const details = (error.details ?? []).map((d) => `\n• ${d.path}: ${d.message}`).join("");
    $("submit-error").textContent = `${error.message}${details}`;
  } finally {
    $("submit").disabled = false;
  }
}

// MARK: Operator panels

async function loadOperator() {
  try {
    const [stats, plugins, providers] = await Promise.all([api("GET", "/v1/stats"), api("GET", "/v1/plugins"), api("GET", "/v1/providers")]);
    renderStats(stats);
    renderPlugins(plugins.items);
    renderProviders(providers.items);
    renderPipelines();
  } catch (error) {
    console.warn("loading operator panels failed:", error.message);
  }
}

let operatorTimer = null;
function loadOperatorSoon() {
  if (operatorTimer) return;
  operatorTimer = setTimeout(() => {
    operatorTimer = null;
    loadOperator();
  }, 500);
}

function renderStats(stats) {
  const rows = [
    ["queue depth", stats.queue_depth],
    ["success rate", stats.success_rate === null || stats.success_rate === undefined ? "–" : `${(stats.success_rate * 100).toFixed(1)} %`],
    ["p50 / p95", stats.duration_ms ? `${seconds(stats.duration_ms.p50)} / ${seconds(stats.duration_ms.p95)}` : "–"],
    ["cost", stats.cost ? `$${stats.cost.total}` : "–"],
    ...STATUSES.map((s) => [s.replace("_", " "), stats.by_status?.[s] ?? 0]),
  ];
  $("stats").replaceChildren(el("dl", {}, ...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", { "data-stat": k }, String(v))])));
}

function renderPipelines() {
  const items = state.pipelineList ?? [];
  $("pipelines").replaceChildren(
    el("tr", {}, el("th", {}, "name"), el("th", {}, "version"), el("th", {}, "loaded")),
    ...items.flatMap((p) => [
      el("tr", {}, el("td", {}, p.name ?? p.file), el("td", {}, el("code", {}, (p.version ?? "–").slice(0, 12))), el("td", {}, p.loaded_at ? time(p.loaded_at) : "–")),
      p.error ? el("tr", {}, el("td", { colspan: "3", class: "load-error" }, p.error)) : "",
    ]),
  );
}

function renderPlugins(items) {
  $("plugins").replaceChildren(
    el("tr", {}, el("th", {}, "plugin"), el("th", {}, "state"), el("th", {}, "processes"), el("th", {}, "restarts")),
    ...items.map((p) => p.name
      ? el("tr", {}, el("td", {}, `${p.name} ${p.version}`), el("td", {}, badge(p.state)), el("td", {}, `${p.running}/${p.instances} ${p.pids.length ? `(pid ${p.pids.join(", ")})` : ""}`), el("td", {}, String(p.restarts)))
      : el("tr", {}, el("td", { colspan: "4", class: "load-error" }, p.error))),
  );
}

// One row per model called on a provider: its state (cooling down, with the time left), calls and
// failures; a provider with no calls yet shows its kind alone.
function renderProviders(items) {
  $("providers").replaceChildren(
    el("tr", {}, el("th", {}, "provider"), el("th", {}, "model"), el("th", {}, "state"), el("th", {}, "calls / failures")),
    ...items.flatMap((p) => (p.targets.length ? p.targets : [null]).map((t) => el("tr", {},
      el("td", {}, `${p.name} (${p.kind})`),
      el("td", {}, t ? t.model : "–"),
      el("td", { title: t?.last_error ?? "" }, t ? badge(t.state) : "–", t?.cooling_down_ms ? ` ${seconds(t.cooling_down_ms)}` : ""),
      el("td", {}, t ? `${t.calls} / ${t.failures}` : "0 / 0"),
    ))),
  );
}

// MARK: Small helpers

function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes ?? {})) node.setAttribute(name, value);
  for (const child of children) if (child !== "" && child !== null && child !== undefined) node.append(child);
  return node;
}

function badge(status) {
  return el("span", { class: `badge ${status}` }, String(status).replace("_", " "));
}

function seconds(milliseconds) {
  if (milliseconds === null || milliseconds === undefined || Number.isNaN(milliseconds)) return "–";
  return milliseconds < 1000 ? `${Math.round(milliseconds)} ms` : `${(milliseconds / 1000).toFixed(1)} s`;
}

function time(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : date.toLocaleTimeString();
}

function summary(data) {
  if (!data) return "";
  const text = JSON.stringify(data);
  return text.length > 160 ? `${text.slice(0, 160)}…` : text;
}

// MARK: Start

document.addEventListener("DOMContentLoaded", () => {
  $("gate-form").addEventListener("submit", (event) => {
    event.preventDefault();
    signIn($("gate-token").value);
  });
  $("sign-out").addEventListener("click", () => signOut());
  $("submit-form").addEventListener("submit", submitJob);
  $("pipeline").addEventListener("change", renderFields);
  $("watch-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.user = $("watch-user").value.trim() || null;
    start();
  });
  window.addEventListener("resize", () => renderDetail());
  // ?token= signs in and is then removed from the address bar (and from the history).
  const params = new URLSearchParams(location.search);
  const token = params.get("token") ?? sessionStorage.getItem("genflow.token");
  if (params.has("token")) {
    params.delete("token");
    history.replaceState(null, "", `${location.pathname}${params.size ? `?${params}` : ""}`);
  }
  if (token) signIn(token);
  else showGate();
});

// For the browser test (Tests/Fixtures/dashboard_browser.py), which drives the page from outside.
window.dashboard = { state, api };
