import { describe, expect, it } from "vitest";
import type { Client } from "../src/client";
import { keepStreaming, type StreamState } from "../src/streams";

/** A client whose streams are scripted: each open answers the next body (NDJSON text) or status. */
function scripted(answers: { status?: number; body: string }[]): { client: Client; paths: string[] } {
  const paths: string[] = [];
  const client = {
    openStream: async (path: string) => {
      paths.push(path);
      const next = answers.shift();
      if (!next) return new Promise<Response>(() => undefined); // hang: the test aborts
      return new Response(next.body, { status: next.status ?? 200 });
    },
  } as unknown as Client;
  return { client, paths };
}

describe("keepStreaming", () => {
  it("reconnects after a cut stream, asking for the resume point again, without repeating alerts", async () => {
    let last = "";
    const seen: string[] = [];
    const { client, paths } = scripted([
      { body: '{"heartbeat":{}}\n{"alert":{"alert_id":"a1"}}\n{"alert":{"alert_id":"a2"}}\n' }, // cut: no end
      { body: '{"heartbeat":{}}\n{"alert":{"alert_id":"a3"}}\n{"end":{"reason":"STREAM_END_REASON_SERVER_SHUTDOWN"}}\n' },
    ]);
    const abort = new AbortController();
    const running = keepStreaming(
      client,
      {
        name: "alerts",
        path: () => (last ? `/v1/alerts:stream?after_alert_id=${last}` : "/v1/alerts:stream"),
        onMessage: (m) => {
          last = (m.alert as { alert_id: string }).alert_id;
          seen.push(last);
          if (last === "a3") setTimeout(() => abort.abort(), 0);
        },
      },
      abort.signal,
    );
    await running;
    expect(seen).toEqual(["a1", "a2", "a3"]);
    expect(paths).toEqual(["/v1/alerts:stream", "/v1/alerts:stream?after_alert_id=a2"]);
  });

  it("stops and says so when the service is not on the platform", async () => {
    const states: StreamState[] = [];
    const { client, paths } = scripted([{ status: 501, body: '{"code":12,"message":"not implemented yet"}' }]);
    await keepStreaming(
      client,
      { name: "x", path: () => "/v1/x", onMessage: () => undefined, onState: (s) => states.push(s) },
      new AbortController().signal,
    );
    expect(states).toEqual(["connecting", "unavailable"]);
    expect(paths).toHaveLength(1);
  });

  it("lets the caller move an expired resume point and retry at once", async () => {
    let after = "old";
    const abort = new AbortController();
    const { client, paths } = scripted([
      { body: '{"code":11,"message":"expired","details":[{"reason":"RESUME_POINT_EXPIRED"}]}' },
      { body: '{"heartbeat":{}}\n' },
    ]);
    await keepStreaming(
      client,
      {
        name: "alerts",
        path: () => `/s?after=${after}`,
        onMessage: () => undefined,
        onOpen: () => abort.abort(),
        onStatus: (status) => {
          after = "";
          return status.reason === "RESUME_POINT_EXPIRED";
        },
      },
      abort.signal,
    );
    expect(paths).toEqual(["/s?after=old", "/s?after="]);
  });
});
