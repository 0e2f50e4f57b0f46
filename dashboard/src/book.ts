/**
 * The live book: an account's positions re-valued on every pushed quote and Greeks update.
 *
 * Per-share model Greeks come from the market data service's StreamGreeks (core_ext, the platform's own
 * pricer) beside dxFeed's; underlying marks from StreamQuotes. They are scaled here exactly as the portfolio
 * service defines its PositionGreeks: signed quantity x multiplier, dollar delta = share delta x underlying
 * price, beta-weighted delta = beta x price x share delta / benchmark price.
 */

import { column, decimal, num } from "./wire";

/** One held position, from the broker's ListPositions. */
export interface Position {
  symbol: string;
  underlying: string;
  /** dxFeed symbol: what the quote and Greeks streams are asked for. */
  streamerSymbol: string;
  /** Signed: negative when short. */
  quantity: number;
  multiplier: number;
  isOption: boolean;
  optionKind: "C" | "P" | "";
  strike: number;
  expiry: string;
  averageOpenPrice: number;
  /** The broker's mark, used until the first pushed one. */
  brokerMark: number;
}

/** Per-share Greeks of one option: the platform model's and dxFeed's. */
export interface OptionGreeks {
  underlyingPrice: number;
  optionPrice: number;
  model: { iv: number; delta: number; gamma: number; theta: number; vega: number; vanna: number; charm: number };
  broker: { iv: number; delta: number; gamma: number; theta: number; vega: number };
  time: number;
}

/** Where a beta came from (as portfolio's BetaSource, plus the broker's market metrics). */
export type BetaSource = "portfolio" | "broker" | "benchmark" | "default";

/** Dollar-scaled Greeks of a position, an underlying or the account. */
export interface Exposure {
  deltaShares: number;
  deltaDollars: number;
  gamma: number;
  theta: number;
  vega: number;
  betaWeightedDelta: number;
  /** Delta change per calendar day (shares), for time-to-breach forecasts. */
  charm: number;
  /** Delta change per vol point (shares). */
  vanna: number;
  /** |gamma x S x sigma| x sqrt(1/365): one-day standard deviation of the share delta from price moves. */
  gammaMove: number;
  marketValue: number;
  unrealizedPnl: number;
}

/** Whose per-share Greeks a position is aggregated with: the platform's model, dxFeed's when the model has
 * none (e.g. an option priced below intrinsic, where no implied volatility exists), or none yet. */
export type GreeksSource = "shares" | "model" | "dxfeed" | "none";

export interface PositionRow extends Exposure {
  position: Position;
  mark: number;
  greeks: OptionGreeks | undefined;
  source: GreeksSource;
}

export interface UnderlyingRow extends Exposure {
  underlying: string;
  price: number;
  beta: number;
  betaSource: BetaSource;
}

export interface Totals extends Exposure {
  /** Option positions without Greeks from either source yet (left out of the sums). */
  missing: number;
  benchmark: string;
  benchmarkPrice: number;
  betaWeightedDeltaDollars: number;
}

/** Positions from a ListPositions JSON response. */
export function parsePositions(json: unknown): Position[] {
  const list = (json as { positions?: unknown[] }).positions ?? [];
  return list.map((raw) => {
    const p = raw as Record<string, unknown>;
    const option = p.option as Record<string, unknown> | undefined;
    const direction = p.quantity_direction;
    const size = decimal(p.quantity);
    const isOption = typeof p.instrument_type === "string" && p.instrument_type.endsWith("_OPTION");
    return {
      symbol: String(p.symbol),
      underlying: String(p.underlying_symbol || p.symbol),
      streamerSymbol: String(p.streamer_symbol || p.symbol),
      quantity: direction === "QUANTITY_DIRECTION_SHORT" ? -Math.abs(size) : size,
      multiplier: num(p.multiplier) || 1,
      isOption,
      optionKind: option?.kind === "OPTION_KIND_CALL" ? "C" : option?.kind === "OPTION_KIND_PUT" ? "P" : "",
      strike: num(option?.strike_price),
      expiry: typeof option?.expiration_time === "string" ? option.expiration_time.slice(0, 10) : "",
      averageOpenPrice: decimal(p.average_open_price),
      brokerMark: decimal(p.mark_price),
    };
  });
}

const ZERO: Exposure = {
  deltaShares: 0,
  deltaDollars: 0,
  gamma: 0,
  theta: 0,
  vega: 0,
  betaWeightedDelta: 0,
  charm: 0,
  vanna: 0,
  gammaMove: 0,
  marketValue: 0,
  unrealizedPnl: 0,
};

/** The book of one account, updated in place by stream batches. */
export class Book {
  readonly benchmark: string;
  private readonly marks = new Map<string, number>();
  private readonly greeks = new Map<string, OptionGreeks>();
  private readonly betas = new Map<string, { beta: number; source: BetaSource }>();
  /** When the last pushed update arrived (ms), 0 before any. */
  lastUpdate = 0;

  constructor(
    readonly positions: Position[],
    benchmark = "SPY",
  ) {
    this.benchmark = benchmark;
  }

  /** Symbols to follow on StreamQuotes: every underlying, every share position and the benchmark. */
  quoteSymbols(extra: Iterable<string> = []): string[] {
    const set = new Set<string>([this.benchmark, ...extra]);
    for (const p of this.positions) {
      set.add(p.underlying);
      if (!p.isOption) set.add(p.streamerSymbol);
    }
    return [...set].sort();
  }

  /** Symbols to follow on StreamGreeks: every option, in dxFeed form. */
  optionSymbols(): string[] {
    return [...new Set(this.positions.filter((p) => p.isOption).map((p) => p.streamerSymbol))].sort();
  }

  /** Sets a beta (the benchmark's own is always 1). */
  setBeta(underlying: string, beta: number, source: BetaSource): void {
    if (Number.isFinite(beta)) this.betas.set(underlying, { beta, source });
  }

  /** Applies a `QuoteBatch` (JSON); returns true when a mark changed. */
  applyQuotes(batch: Record<string, unknown>): boolean {
    const symbols = (batch.symbols as string[] | undefined) ?? [];
    const marks = column(batch.mark_prices);
    let changed = false;
    symbols.forEach((symbol, i) => {
      const mark = marks[i];
      if (Number.isFinite(mark) && this.marks.get(symbol) !== mark) {
        this.marks.set(symbol, mark);
        changed = true;
      }
    });
    if (changed) this.lastUpdate = Date.now();
    return changed;
  }

  /** Applies a `GreeksBatch` (JSON); returns true when anything changed. */
  applyGreeks(batch: Record<string, unknown>): boolean {
    const symbols = (batch.symbols as string[] | undefined) ?? [];
    const c = (name: string): number[] => column(batch[name]);
    const [under, price, mIv, mDelta, mGamma, mTheta, mVega, mVanna, mCharm] = [
      "underlying_prices",
      "option_prices",
      "model_volatilities",
      "model_deltas",
      "model_gammas",
      "model_thetas",
      "model_vegas",
      "model_vannas",
      "model_charms",
    ].map(c);
    const [bIv, bDelta, bGamma, bTheta, bVega] = [
      "broker_volatilities",
      "broker_deltas",
      "broker_gammas",
      "broker_thetas",
      "broker_vegas",
    ].map(c);
    const times = column(batch.event_times_unix_nanos);
    symbols.forEach((symbol, i) => {
      this.greeks.set(symbol, {
        underlyingPrice: under[i],
        optionPrice: price[i],
        model: {
          iv: mIv[i],
          delta: mDelta[i],
          gamma: mGamma[i],
          theta: mTheta[i],
          vega: mVega[i],
          vanna: mVanna[i],
          charm: mCharm[i],
        },
        broker: { iv: bIv[i], delta: bDelta[i], gamma: bGamma[i], theta: bTheta[i], vega: bVega[i] },
        time: times[i] / 1e6,
      });
    });
    if (symbols.length) this.lastUpdate = Date.now();
    return symbols.length > 0;
  }

  /** The price of an underlying: its pushed mark, else the option feed's underlying price. */
  price(symbol: string): number {
    const mark = this.marks.get(symbol);
    if (mark !== undefined) return mark;
    for (const p of this.positions) {
      if (p.underlying === symbol && p.isOption) {
        const g = this.greeks.get(p.streamerSymbol);
        if (g && Number.isFinite(g.underlyingPrice)) return g.underlyingPrice;
      }
      if (p.symbol === symbol && !p.isOption) return p.brokerMark;
    }
    return Number.NaN;
  }

  beta(underlying: string): { beta: number; source: BetaSource } {
    if (underlying === this.benchmark) return { beta: 1, source: "benchmark" };
    return this.betas.get(underlying) ?? { beta: 1, source: "default" };
  }

  /** Every position with its exposure. */
  rows(): PositionRow[] {
    const benchPrice = this.price(this.benchmark);
    return this.positions.map((position) => {
      const g = position.isOption ? this.greeks.get(position.streamerSymbol) : undefined;
      const s = this.price(position.underlying);
      const size = position.quantity * position.multiplier;
      const mark = position.isOption
        ? g && Number.isFinite(g.optionPrice)
          ? g.optionPrice
          : position.brokerMark
        : (this.marks.get(position.streamerSymbol) ?? position.brokerMark);
      const source: GreeksSource = !position.isOption
        ? "shares"
        : g && Number.isFinite(g.model.delta)
          ? "model"
          : g && Number.isFinite(g.broker.delta)
            ? "dxfeed"
            : "none";
      const per =
        source === "shares"
          ? { delta: 1, gamma: 0, theta: 0, vega: 0, charm: 0, vanna: 0, iv: 0 }
          : source === "model" && g
            ? { ...g.model }
            : source === "dxfeed" && g
              ? { ...g.broker, gamma: finite(g.broker.gamma), theta: finite(g.broker.theta), vega: finite(g.broker.vega), charm: 0, vanna: 0 }
              : { delta: 0, gamma: 0, theta: 0, vega: 0, charm: 0, vanna: 0, iv: 0 };
      const deltaShares = size * per.delta;
      const { beta } = this.beta(position.underlying);
      const gamma = size * per.gamma;
      return {
        position,
        mark,
        greeks: g,
        source,
        deltaShares,
        deltaDollars: deltaShares * s,
        gamma,
        theta: size * per.theta,
        vega: size * per.vega,
        betaWeightedDelta: (beta * s * deltaShares) / benchPrice,
        charm: size * finite(per.charm),
        vanna: size * finite(per.vanna),
        gammaMove: Math.abs(gamma * s * finite(per.iv)) * Math.sqrt(1 / 365),
        marketValue: mark * size,
        unrealizedPnl: (mark - position.averageOpenPrice) * size,
      };
    });
  }

  /** Exposure per underlying, sorted by symbol. */
  underlyings(rows = this.rows()): UnderlyingRow[] {
    const by = new Map<string, PositionRow[]>();
    for (const row of rows) {
      const list = by.get(row.position.underlying) ?? [];
      list.push(row);
      by.set(row.position.underlying, list);
    }
    return [...by.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([underlying, list]) => {
        const { beta, source } = this.beta(underlying);
        return { ...sum(list), underlying, price: this.price(underlying), beta, betaSource: source };
      });
  }

  /** The account's totals. */
  totals(rows = this.rows()): Totals {
    const total = sum(rows);
    const benchmarkPrice = this.price(this.benchmark);
    return {
      ...total,
      missing: rows.filter((r) => r.source === "none").length,
      benchmark: this.benchmark,
      benchmarkPrice,
      betaWeightedDeltaDollars: total.betaWeightedDelta * benchmarkPrice,
    };
  }
}

function finite(v: number): number {
  return Number.isFinite(v) ? v : 0;
}

function sum(rows: Exposure[]): Exposure {
  const out = { ...ZERO };
  for (const row of rows) {
    for (const key of Object.keys(ZERO) as (keyof Exposure)[]) {
      out[key] += key === "gammaMove" ? 0 : row[key];
    }
  }
  // One-day deltas of different positions on the same underlying move together: their price-driven
  // standard deviations add linearly (same shock), as the monitor assumes.
  out.gammaMove = Math.abs(rows.reduce((acc, r) => acc + Math.sign(r.gamma) * r.gammaMove, 0));
  return out;
}

/**
 * Days until the watched delta reaches the nearer bound of its band, as the delta monitor forecasts it:
 * a drift of `charm` per day plus a one-sigma envelope `s sqrt(t)` with `s = hypot(gammaMove, vanna x vov)`.
 * NaN when the delta is outside the band, nothing drives it, or the forecast is beyond `horizonDays`.
 */
export function timeToBreachDays(
  delta: number,
  lower: number,
  upper: number,
  charmPerDay: number,
  gammaMove: number,
  vanna: number,
  volOfVolPoints = 1,
  horizonDays = 30,
): number {
  if (!(delta >= lower && delta <= upper)) return Number.NaN;
  const s = Math.hypot(gammaMove, vanna * volOfVolPoints);
  let best = Number.POSITIVE_INFINITY;
  for (const [distance, drift] of [
    [upper - delta, charmPerDay],
    [delta - lower, -charmPerDay],
  ] as const) {
    const mu = Math.max(drift, 0);
    const disc = Math.sqrt(s * s + 4 * mu * distance);
    const root = s + disc > 0 ? (2 * distance) / (s + disc) : Number.POSITIVE_INFINITY;
    const t = root * root;
    if (Number.isFinite(t) && t < best) best = t;
  }
  return Number.isFinite(best) && best <= horizonDays ? best : Number.NaN;
}
