/** Reading the gateway's proto3 JSON: NDJSON stream framing, 64-bit integers as strings, NaN as "NaN". */

/** A number from proto3 JSON: doubles may arrive as "NaN"/"Infinity" strings and int64 always as strings. */
export function num(value: unknown): number {
  if (typeof value === "number") return value;
  if (typeof value === "string" && value !== "") return Number(value);
  return Number.NaN;
}

/** A packed double column (`repeated double`) as numbers. */
export function column(value: unknown): number[] {
  return Array.isArray(value) ? value.map(num) : [];
}

/** A `tastyplat.type.v1.Money` or `Decimal` ({units, nanos}) as a JavaScript number (display only). */
export function decimal(value: unknown): number {
  if (value === null || typeof value !== "object") return Number.NaN;
  const v = value as { units?: unknown; nanos?: unknown };
  return num(v.units ?? 0) + num(v.nanos ?? 0) / 1e9;
}

/** A `google.protobuf.Duration` in JSON form ("12.5s") as seconds; NaN when absent or malformed. */
export function durationSeconds(value: unknown): number {
  if (typeof value !== "string" || !value.endsWith("s")) return Number.NaN;
  return Number(value.slice(0, -1));
}

/**
 * Splits a byte stream of newline-delimited JSON into objects.
 *
 * A chunk may end inside a line (or inside a multi-byte character, which the TextDecoder keeps), so the
 * incomplete tail waits for the next chunk; `finish` parses a last line sent without its newline, which is
 * how the gateway sends a stream's final error status.
 */
export class NdjsonDecoder {
  private readonly text = new TextDecoder();
  private tail = "";

  /** Objects completed by this chunk, in order. */
  push(chunk: Uint8Array): unknown[] {
    this.tail += this.text.decode(chunk, { stream: true });
    const lines = this.tail.split("\n");
    this.tail = lines.pop() ?? "";
    return parseLines(lines);
  }

  /** Whatever was left after the last newline, once the stream is over. */
  finish(): unknown[] {
    this.tail += this.text.decode();
    const rest = this.tail;
    this.tail = "";
    return parseLines([rest]);
  }
}

function parseLines(lines: string[]): unknown[] {
  const out: unknown[] = [];
  for (const line of lines) {
    const trimmed = line.trim();
    if (trimmed !== "") out.push(JSON.parse(trimmed));
  }
  return out;
}

/** A google.rpc.Status as the gateway sends it in an error body (or as a stream's last line). */
export interface RpcStatus {
  code: number;
  message: string;
  reason: string;
}

/** The status carried by `value`, or null when it is not a status (a stream message has no `code`). */
export function asStatus(value: unknown): RpcStatus | null {
  if (value === null || typeof value !== "object" || !("code" in value)) return null;
  const v = value as { code: unknown; message?: unknown; details?: unknown; reason?: unknown };
  let reason = typeof v.reason === "string" ? v.reason : "";
  if (Array.isArray(v.details)) {
    for (const d of v.details) {
      if (d && typeof d === "object" && typeof (d as { reason?: unknown }).reason === "string") {
        reason = (d as { reason: string }).reason;
        break;
      }
    }
  }
  return { code: num(v.code), message: typeof v.message === "string" ? v.message : "", reason };
}
