import { describe, expect, it } from "vitest";
import { asStatus, column, decimal, durationSeconds, NdjsonDecoder, num } from "../src/wire";

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

describe("NdjsonDecoder", () => {
  it("joins a line split across chunks", () => {
    const d = new NdjsonDecoder();
    expect(d.push(bytes('{"heartbeat":{}}\n{"quo'))).toEqual([{ heartbeat: {} }]);
    expect(d.push(bytes('tes":{"symbols":["SPY"]}}\n'))).toEqual([{ quotes: { symbols: ["SPY"] } }]);
    expect(d.finish()).toEqual([]);
  });

  it("keeps a multi-byte character split between chunks", () => {
    const d = new NdjsonDecoder();
    const all = bytes('{"message":"band \u2212 breached"}\n');
    const cut = all.indexOf(0xe2) + 1; // inside the three bytes of U+2212
    expect(d.push(all.slice(0, cut))).toEqual([]);
    expect(d.push(all.slice(cut))).toEqual([{ message: "band \u2212 breached" }]);
  });

  it("parses a final status sent without a newline", () => {
    const d = new NdjsonDecoder();
    expect(d.push(bytes('{"heartbeat":{}}\n{"code":12,"message":"not implemented"}'))).toEqual([{ heartbeat: {} }]);
    expect(d.finish()).toEqual([{ code: 12, message: "not implemented" }]);
  });

  it("skips blank lines", () => {
    expect(new NdjsonDecoder().push(bytes('\n\n{"a":1}\r\n\n'))).toEqual([{ a: 1 }]);
  });
});

describe("proto3 JSON values", () => {
  it("reads NaN, int64 strings and missing values", () => {
    expect(num("NaN")).toBeNaN();
    expect(num("Infinity")).toBe(Infinity);
    expect(num("1795632733688943000")).toBe(1795632733688943000);
    expect(num(undefined)).toBeNaN();
    expect(column([1, "NaN", "2"])).toEqual([1, NaN, 2]);
  });

  it("reads Money as units plus nanos", () => {
    expect(decimal({ currency_code: "USD", units: "182", nanos: 500000000 })).toBe(182.5);
    expect(decimal({ units: "-2", nanos: -400000000 })).toBeCloseTo(-2.4, 12);
    expect(decimal(undefined)).toBeNaN();
  });

  it("reads durations", () => {
    expect(durationSeconds("300s")).toBe(300);
    expect(durationSeconds("1.5s")).toBe(1.5);
    expect(durationSeconds(undefined)).toBeNaN();
  });

  it("finds the ErrorInfo reason of a status", () => {
    const status = asStatus({
      code: 11,
      message: "gone",
      details: [
        { "@type": "type.googleapis.com/google.rpc.ErrorInfo", reason: "RESUME_POINT_EXPIRED", domain: "deltamonitor.tastyplat" },
      ],
    });
    expect(status).toEqual({ code: 11, message: "gone", reason: "RESUME_POINT_EXPIRED" });
    expect(asStatus({ heartbeat: {} })).toBeNull();
  });
});
