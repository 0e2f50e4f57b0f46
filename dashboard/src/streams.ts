/** Keeps a server stream open: reconnects with backoff, refreshes the token on 401, stops on UNIMPLEMENTED. */

import { ApiError, type Client } from "./client";
import { asStatus, NdjsonDecoder, type RpcStatus } from "./wire";

/** Where a stream is: shown beside each view so a stale number is never mistaken for a live one. */
export type StreamState = "connecting" | "live" | "retrying" | "unavailable" | "stopped";

/** One stream message: an object holding exactly one of the `event` oneof's fields. */
export type StreamMessage = Record<string, unknown>;

export interface StreamSpec {
  /** Shown in the status bar. */
  name: string;
  /** The path to open, asked again at each (re)connect so a resume point can move. */
  path: () => string;
  /** Every message but heartbeats and ends. */
  onMessage: (message: StreamMessage) => void;
  /** Every change of state, with a reason when there is one. */
  onState?: (state: StreamState, detail: string) => void;
  /** Called when the stream answers with an error status; returning true retries at once (e.g. after
   * moving the resume point), false uses the backoff. */
  onStatus?: (status: RpcStatus) => boolean;
  /** Called once the stream is open (its first message arrived). */
  onOpen?: () => void;
}

// Streams send heartbeats while idle, so silence this long means a dead connection.
const IDLE_TIMEOUT_MS = 30_000;
const MAX_BACKOFF_MS = 15_000;

/** Runs `spec` until `signal` aborts. */
export async function keepStreaming(client: Client, spec: StreamSpec, signal: AbortSignal): Promise<void> {
  let backoff = 500;
  const state = (s: StreamState, detail = ""): void => spec.onState?.(s, detail);
  while (!signal.aborted) {
    state("connecting");
    const outcome = await runOnce(client, spec, signal);
    if (signal.aborted) break;
    if (outcome.kind === "unimplemented") {
      state("unavailable", outcome.detail);
      return;
    }
    if (outcome.kind === "signedOut") {
      state("stopped", outcome.detail);
      return;
    }
    if (outcome.kind === "opened") backoff = 500;
    if (outcome.kind === "retryNow") continue;
    state("retrying", outcome.detail);
    await sleep(backoff + Math.random() * 250, signal);
    backoff = Math.min(MAX_BACKOFF_MS, backoff * 2);
  }
  state("stopped");
}

type Outcome =
  | { kind: "opened"; detail: string }
  | { kind: "failed"; detail: string }
  | { kind: "retryNow"; detail: string }
  | { kind: "unimplemented"; detail: string }
  | { kind: "signedOut"; detail: string };

async function runOnce(client: Client, spec: StreamSpec, outer: AbortSignal): Promise<Outcome> {
  const controller = new AbortController();
  const abort = (): void => controller.abort();
  outer.addEventListener("abort", abort);
  let idle: ReturnType<typeof setTimeout> | undefined;
  const arm = (): void => {
    clearTimeout(idle);
    idle = setTimeout(abort, IDLE_TIMEOUT_MS);
  };
  let opened = false;
  try {
    arm();
    let response: Response;
    try {
      response = await client.openStream(spec.path(), controller.signal);
    } catch (error) {
      if (error instanceof ApiError && error.status.reason === "SIGNED_OUT") return { kind: "signedOut", detail: "" };
      return { kind: "failed", detail: describe(error) };
    }
    if (!response.ok || !response.body) {
      const text = await response.text().catch(() => "");
      const status = parseStatus(text) ?? { code: 2, message: `HTTP ${response.status}`, reason: "" };
      return classify(spec, status, response.status);
    }
    const reader = response.body.getReader();
    const decoder = new NdjsonDecoder();
    for (;;) {
      const { value, done } = await reader.read();
      const messages = done ? decoder.finish() : decoder.push(value);
      for (const message of messages) {
        arm();
        const status = asStatus(message);
        if (status) return classify(spec, status, 200);
        const event = message as StreamMessage;
        if (!opened) {
          opened = true;
          spec.onState?.("live", "");
          spec.onOpen?.();
        }
        if ("heartbeat" in event) continue;
        if ("end" in event) {
          const end = event.end as { reason?: string; message?: string };
          return { kind: opened ? "opened" : "failed", detail: `ended: ${end.message || end.reason || ""}` };
        }
        spec.onMessage(event);
      }
      if (done) break;
    }
    // A stream cut short (no `end`) is never mistaken for a finished one: reconnect.
    return { kind: opened ? "opened" : "failed", detail: "connection closed" };
  } catch (error) {
    return { kind: opened ? "opened" : "failed", detail: describe(error) };
  } finally {
    clearTimeout(idle);
    outer.removeEventListener("abort", abort);
    controller.abort();
  }
}

function classify(spec: StreamSpec, status: RpcStatus, httpStatus: number): Outcome {
  if (httpStatus === 501 || status.code === 12) return { kind: "unimplemented", detail: status.message };
  if (spec.onStatus?.(status)) return { kind: "retryNow", detail: status.message };
  return { kind: "failed", detail: status.reason || status.message };
}

function parseStatus(text: string): RpcStatus | null {
  try {
    return asStatus(JSON.parse(text));
  } catch {
    return null;
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done);
  });
}
