/** Delta monitor watches as the dashboard draws them: the band, the live watched delta, time to breach. */

import { type Book, timeToBreachDays } from "./book";
import { durationSeconds, num } from "./wire";

export type Metric = "DELTA_METRIC_SHARES" | "DELTA_METRIC_DOLLARS" | "DELTA_METRIC_BETA_WEIGHTED";

/** A watch from the delta monitor (the fields the dashboard uses). */
export interface Watch {
  watchId: string;
  accountNumber: string;
  displayName: string;
  target: { kind: "position"; symbol: string } | { kind: "underlying"; symbol: string } | { kind: "account" };
  metric: Metric;
  benchmark: string;
  /** Static bounds, or the last evaluated bounds of an adaptive band. */
  lower: number;
  upper: number;
  adaptive: boolean;
  state: string;
  /** The monitor's own last evaluation. */
  serverDelta: number;
  serverTimeToBreachSeconds: number;
  evaluateTime: string;
}

/** A Watch from its JSON form. */
export function parseWatch(json: unknown): Watch {
  const w = json as Record<string, unknown>;
  const position = w.position as { symbol?: string } | undefined;
  const underlying = w.underlying as { underlying_symbol?: string } | undefined;
  const target: Watch["target"] = position
    ? { kind: "position", symbol: position.symbol ?? "" }
    : underlying
      ? { kind: "underlying", symbol: underlying.underlying_symbol ?? "" }
      : { kind: "account" };
  const band = w.static_band as { lower?: unknown; upper?: unknown } | undefined;
  const evaluated = typeof w.evaluate_time === "string" && w.evaluate_time !== "";
  return {
    watchId: String(w.watch_id),
    accountNumber: String(w.account_number),
    displayName: String(w.display_name ?? ""),
    target,
    metric: (w.metric as Metric) ?? "DELTA_METRIC_SHARES",
    benchmark: String(w.benchmark_symbol || "SPY"),
    lower: band ? num(band.lower) : num(w.current_band_lower),
    upper: band ? num(band.upper) : num(w.current_band_upper),
    adaptive: !band,
    state: String(w.state ?? "WATCH_STATE_UNSPECIFIED"),
    serverDelta: evaluated ? num(w.current_delta) : Number.NaN,
    serverTimeToBreachSeconds: durationSeconds(w.time_to_breach),
    evaluateTime: evaluated ? String(w.evaluate_time) : "",
  };
}

/** The live view of a watch computed from the book. */
export interface WatchView {
  delta: number;
  lower: number;
  upper: number;
  inside: boolean;
  timeToBreachDays: number;
}

/** The watched delta in the watch's metric, from the pushed marks and Greeks, and its breach forecast. */
export function watchView(book: Book, watch: Watch): WatchView {
  const benchPrice = book.price(watch.benchmark);
  let delta = 0;
  let charm = 0;
  let vanna = 0;
  let gammaMove = 0;
  for (const row of book.rows()) {
    const p = row.position;
    const matches =
      watch.target.kind === "account" ||
      (watch.target.kind === "underlying" && p.underlying === watch.target.symbol) ||
      (watch.target.kind === "position" && p.symbol === watch.target.symbol);
    if (!matches) continue;
    const s = book.price(p.underlying);
    const factor =
      watch.metric === "DELTA_METRIC_DOLLARS"
        ? s
        : watch.metric === "DELTA_METRIC_BETA_WEIGHTED"
          ? (book.beta(p.underlying).beta * s) / benchPrice
          : 1;
    delta += factor * row.deltaShares;
    charm += factor * row.charm;
    vanna += factor * row.vanna;
    gammaMove += factor * Math.sign(row.gamma) * row.gammaMove;
  }
  const { lower, upper } = watch;
  return {
    delta,
    lower,
    upper,
    inside: delta >= lower && delta <= upper,
    timeToBreachDays: timeToBreachDays(delta, lower, upper, charm, Math.abs(gammaMove), vanna),
  };
}

/** "3 h 20 min", "2.4 days", "—" for a forecast in days. */
export function formatDays(days: number): string {
  if (!Number.isFinite(days)) return "none forecast";
  const minutes = days * 24 * 60;
  if (minutes < 1) return "< 1 min";
  if (minutes < 60) return `${Math.round(minutes)} min`;
  if (minutes < 48 * 60) return `${Math.floor(minutes / 60)} h ${Math.round(minutes % 60)} min`;
  return `${days.toFixed(1)} days`;
}
