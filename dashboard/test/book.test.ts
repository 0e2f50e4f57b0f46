import { describe, expect, it } from "vitest";
import { Book, parsePositions, timeToBreachDays } from "../src/book";
import { watchView, type Watch } from "../src/watches";

const money = (v: number) => ({ currency_code: "USD", units: String(Math.trunc(v)), nanos: Math.round((v % 1) * 1e9) });

const POSITIONS = {
  positions: [
    {
      symbol: "SPY",
      instrument_type: "INSTRUMENT_TYPE_EQUITY",
      underlying_symbol: "SPY",
      quantity: { units: "100", nanos: 0 },
      quantity_direction: "QUANTITY_DIRECTION_LONG",
      multiplier: 1,
      average_open_price: money(490),
      mark_price: money(495),
      streamer_symbol: "SPY",
    },
    {
      symbol: "SPY   261218P00520000",
      instrument_type: "INSTRUMENT_TYPE_EQUITY_OPTION",
      underlying_symbol: "SPY",
      quantity: { units: "2", nanos: 0 },
      quantity_direction: "QUANTITY_DIRECTION_SHORT",
      multiplier: 100,
      average_open_price: money(4.5),
      mark_price: money(20),
      option: { kind: "OPTION_KIND_PUT", strike_price: 520, expiration_time: "2026-12-18T21:00:00Z" },
      streamer_symbol: ".SPY261218P520",
    },
    {
      symbol: "AAPL  261218C00200000",
      instrument_type: "INSTRUMENT_TYPE_EQUITY_OPTION",
      underlying_symbol: "AAPL",
      quantity: { units: "1", nanos: 0 },
      quantity_direction: "QUANTITY_DIRECTION_LONG",
      multiplier: 100,
      average_open_price: money(1),
      mark_price: money(1.5),
      option: { kind: "OPTION_KIND_CALL", strike_price: 200 },
      streamer_symbol: ".AAPL261218C200",
    },
  ],
};

function greeks(symbols: string[], model: number[], broker: number[]) {
  const n = symbols.length;
  const fill = (v: number | string) => Array(n).fill(v);
  return {
    symbols,
    underlying_prices: [500, 190].slice(0, n),
    option_prices: [20.5, 1.6].slice(0, n),
    broker_volatilities: fill(0.15),
    broker_deltas: broker,
    broker_gammas: fill(0.02),
    broker_thetas: fill(-0.05),
    broker_vegas: fill(0.3),
    broker_rhos: fill("NaN"),
    model_volatilities: fill(0.14),
    model_prices: fill(1),
    model_deltas: model.map((v) => (Number.isNaN(v) ? "NaN" : v)),
    model_gammas: fill(0.01),
    model_thetas: fill(-0.06),
    model_vegas: fill(0.25),
    model_rhos: fill(0),
    model_vannas: fill(0.002),
    model_charms: fill(-0.001),
    event_times_unix_nanos: fill("1795632733688943000"),
  };
}

function book(): Book {
  const b = new Book(parsePositions(POSITIONS));
  b.applyQuotes({ symbols: ["SPY", "AAPL"], mark_prices: [500, 190] });
  b.setBeta("AAPL", 1.3, "broker");
  return b;
}

describe("parsePositions", () => {
  it("signs short quantities and reads option terms", () => {
    const [shares, put] = parsePositions(POSITIONS);
    expect(shares.quantity).toBe(100);
    expect(shares.isOption).toBe(false);
    expect(put.quantity).toBe(-2);
    expect(put.multiplier).toBe(100);
    expect(put.optionKind).toBe("P");
    expect(put.expiry).toBe("2026-12-18");
    expect(put.averageOpenPrice).toBe(4.5);
  });
});

describe("Book", () => {
  it("scales per-share model Greeks by signed quantity x multiplier", () => {
    const b = book();
    b.applyGreeks(greeks([".SPY261218P520", ".AAPL261218C200"], [-0.8, 0.25], [-0.81, 0.26]));
    const [shares, put, call] = b.rows();
    expect(shares.deltaShares).toBe(100);
    expect(put.source).toBe("model");
    expect(put.deltaShares).toBeCloseTo(-2 * 100 * -0.8, 9); // +160
    expect(put.gamma).toBeCloseTo(-2, 9);
    expect(put.theta).toBeCloseTo(12, 9); // short premium earns decay
    expect(put.vega).toBeCloseTo(-50, 9);
    expect(put.deltaDollars).toBeCloseTo(160 * 500, 6);
    expect(put.unrealizedPnl).toBeCloseTo((20.5 - 4.5) * -200, 6);
    expect(call.betaWeightedDelta).toBeCloseTo((1.3 * 190 * 25) / 500, 9);
  });

  it("uses dxFeed's Greeks where the model has none and leaves out positions with neither", () => {
    const b = book();
    b.applyGreeks(greeks([".SPY261218P520", ".AAPL261218C200"], [NaN, NaN], [-1, NaN]));
    const [, put, call] = b.rows();
    expect(put.source).toBe("dxfeed");
    expect(put.deltaShares).toBeCloseTo(200, 9);
    expect(call.source).toBe("none");
    expect(call.deltaShares).toBe(0);
    const totals = b.totals();
    expect(totals.missing).toBe(1);
    expect(totals.deltaShares).toBeCloseTo(300, 9);
  });

  it("totals beta-weighted delta in benchmark shares and dollars", () => {
    const b = book();
    b.applyGreeks(greeks([".SPY261218P520", ".AAPL261218C200"], [-0.8, 0.25], [-0.81, 0.26]));
    const t = b.totals();
    const expected = 100 + 160 + (1.3 * 190 * 25) / 500;
    expect(t.betaWeightedDelta).toBeCloseTo(expected, 9);
    expect(t.betaWeightedDeltaDollars).toBeCloseTo(expected * 500, 6);
    expect(t.deltaDollars).toBeCloseTo(260 * 500 + 25 * 190, 6);
    const [aapl, spy] = b.underlyings();
    expect(aapl.underlying).toBe("AAPL");
    expect(aapl.betaSource).toBe("broker");
    expect(spy.betaSource).toBe("benchmark");
    expect(spy.deltaShares).toBeCloseTo(260, 9);
  });

  it("follows the benchmark and every underlying on the quote stream and options on the Greeks stream", () => {
    const b = book();
    expect(b.quoteSymbols(["QQQ"])).toEqual(["AAPL", "QQQ", "SPY"]);
    expect(b.optionSymbols()).toEqual([".AAPL261218C200", ".SPY261218P520"]);
  });
});

describe("watchView", () => {
  const watch = (target: Watch["target"], metric: Watch["metric"]): Watch => ({
    watchId: "w",
    accountNumber: "A",
    displayName: "",
    target,
    metric,
    benchmark: "SPY",
    lower: 0,
    upper: 1e9,
    adaptive: false,
    state: "",
    serverDelta: NaN,
    serverTimeToBreachSeconds: NaN,
    evaluateTime: "",
  });

  it("expresses the watched delta in the watch's metric", () => {
    const b = book();
    b.applyGreeks(greeks([".SPY261218P520", ".AAPL261218C200"], [-0.8, 0.25], [-0.81, 0.26]));
    expect(watchView(b, watch({ kind: "underlying", symbol: "SPY" }, "DELTA_METRIC_SHARES")).delta).toBeCloseTo(260, 9);
    expect(watchView(b, watch({ kind: "underlying", symbol: "AAPL" }, "DELTA_METRIC_DOLLARS")).delta).toBeCloseTo(25 * 190, 9);
    expect(watchView(b, watch({ kind: "account" }, "DELTA_METRIC_BETA_WEIGHTED")).delta).toBeCloseTo(
      260 + (1.3 * 190 * 25) / 500,
      9,
    );
  });
});

describe("timeToBreachDays matches the delta monitor's forecast", () => {
  // Reference values from services.deltamonitor.domain.analytics.time_to_breach_days.
  it.each([
    [100, 50, 200, 5, 3, 2, 17.024632941998703],
    [100, 50, 200, -20, 0, 0, 2.5000000000000004],
    [100, 99, 1000, 0, 10, 0, 0.010000000000000002],
  ])("delta %d in [%d, %d], charm %d", (delta, lower, upper, charm, gammaMove, vanna, days) => {
    expect(timeToBreachDays(delta, lower, upper, charm, gammaMove, vanna)).toBeCloseTo(days, 9);
  });

  it("forecasts nothing without drift or diffusion, or outside the band", () => {
    expect(timeToBreachDays(100, 50, 200, 0, 0, 0)).toBeNaN();
    expect(timeToBreachDays(300, 50, 200, 1, 1, 1)).toBeNaN();
  });
});
