// Types of genflow.js: Genflow's client for the REST API and the /v1/events stream.
// The event catalogue follows docs/api.md ("Event types").

export type JobStatus = "queued" | "running" | "waiting_retry" | "completed" | "failed" | "cancelled";

export interface StepErrorInfo {
  class: string;
  message: string;
  step?: string | null;
  [key: string]: unknown;
}

/** `data` of each event type the daemon sends. */
export interface EventData {
  "job.queued": { pipeline?: string; priority?: number; retry?: true; generation?: number; released?: true };
  "job.started": { pipeline: string; version: string };
  "step.started": { attempt: number; stage: string; daemon: string; item?: number };
  "step.progress": { fraction?: number; message?: string; item?: number };
  "step.retrying": { attempt?: number; delay_ms?: number; error: StepErrorInfo; reason?: "on_invalid"; retry_step?: string; item?: number };
  "step.completed": { duration_ms?: number; cost?: string; error?: StepErrorInfo; continued?: true; items?: number; item?: number };
  "job.completed": { pipeline: string; cost: string };
  "job.failed": { error: StepErrorInfo };
  "job.cancelled": { error: StepErrorInfo; while?: string };
  "canvas.objects": { objects: CanvasObject[]; cached?: boolean };
  "token_balance_updated": { balance: number; change: number; reason: string; transaction_id: number };
  "pipeline.loaded": { name: string; version: string; file: string };
  "pipeline.removed": { name: string };
  "pipeline.rejected": { file: string; error: string };
}

export type KnownEventType = keyof EventData;

/** One event as the stream delivers it. */
export interface GenflowEvent<T extends string = string> {
  op: "event";
  id: number;
  type: T;
  job_id: string | null;
  step: string | null;
  at: string;
  data: T extends KnownEventType ? EventData[T] : Record<string, unknown>;
}

export type AnyGenflowEvent = { [T in KnownEventType]: GenflowEvent<T> }[KnownEventType] | GenflowEvent<string>;

/** A canvas object (docs/api.md, canvas schema v1). */
export interface CanvasObject {
  id: string;
  type: "rectangle" | "ellipse" | "diamond" | "text" | "arrow" | "line" | string;
  x: number;
  y: number;
  width?: number;
  height?: number;
  text?: string;
  [key: string]: unknown;
}

export interface Job {
  id: string;
  pipeline: string;
  pipeline_version: string;
  user_id: string;
  status: JobStatus;
  priority: number;
  attempts: number;
  input: Record<string, unknown>;
  result?: Record<string, unknown> | null;
  error?: StepErrorInfo | null;
  created_at: string;
  started_at?: string | null;
  finished_at?: string | null;
  [key: string]: unknown;
}

export type StreamState = "idle" | "connecting" | "open" | "reconnecting" | "gap" | "unauthorized" | "closed";

export interface StateDetail {
  since?: number | null;
  delay?: number;
  code?: number;
  reason?: string;
  message?: string;
  jobId?: string;
}

export interface GenflowClientOptions {
  /** The daemon (or the proxy in front of it); default: the page's origin. */
  baseUrl?: string;
  /** A token, or a function returning a fresh one (asked again whenever the daemon refuses the token). */
  token: string | (() => string | Promise<string>);
  /** Operators: whose events the stream carries. */
  userId?: string;
  /** Start the stream after this event id (default: live from now). */
  since?: number;
  /** Reconnect delays in ms: doubling from `initial` (500) to `max` (10000), less up to a fifth. */
  backoff?: { initial?: number; max?: number };
  fetch?: typeof fetch;
  WebSocket?: typeof WebSocket;
}

export declare const EVENT_TYPES: readonly KnownEventType[];
export declare const JOB_END_TYPES: readonly ["job.completed", "job.failed", "job.cancelled"];

export declare class GenflowError extends Error {
  /** The HTTP status; 0 when the daemon could not be reached. */
  status: number;
  /** The API's error code (`unauthorized`, `rate_limited`, `not_found`…; `network`). */
  code: string;
  details?: unknown;
  /** Seconds, from `Retry-After`. */
  retryAfter?: number;
}

export declare class GenflowClient {
  constructor(options: GenflowClientOptions);
  /** The id of the last event of the stream (what a reconnect asks `since`). */
  readonly lastEventId: number | null;
  readonly state: StreamState;

  request<T = unknown>(method: string, path: string, body?: unknown): Promise<T>;
  submit(pipeline: string, input?: Record<string, unknown>, options?: { priority?: number; idempotencyKey?: string; runAt?: string; userId?: string }): Promise<{ job: Job }>;
  job(id: string): Promise<Job>;
  cancel(id: string): Promise<{ job: Job; cancel_requested?: boolean }>;
  retry(id: string): Promise<{ job: Job }>;
  balance(): Promise<{ user_id: string; balance: number }>;
  list<T = unknown>(path: string, query?: Record<string, string | number | undefined>): AsyncGenerator<T>;
  jobs(query?: { status?: JobStatus; pipeline?: string; limit?: number }): AsyncGenerator<Job>;

  on<T extends KnownEventType>(type: T, handler: (event: GenflowEvent<T>) => void): () => void;
  on(type: "*" | string, handler: (event: AnyGenflowEvent) => void): () => void;
  onState(handler: (state: StreamState, detail?: StateDetail) => void): () => void;
  followJob(jobId: string, handler: (event: AnyGenflowEvent) => void): { stop(): void };
  connect(): this;
  close(): void;
  send(message: { op: "ping" } | { op: "subscribe"; job_id: string; since?: number } | { op: "unsubscribe"; job_id: string }): boolean;
}
