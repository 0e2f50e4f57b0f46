/** The dashboard: sign-in, then an account's live Greeks, watch bands, alert feed, charts and scenarios. */

import { Book, parsePositions, type PositionRow, type Totals, type UnderlyingRow } from "./book";
import { HeatMap, TimeChart } from "./charts";
import { ApiError, type Client, type Session } from "./client";
import { keepStreaming, type StreamState } from "./streams";
import { fmt, h, money, replace, setText, svg, tone } from "./ui";
import { formatDays, type Metric, parseWatch, type Watch, watchView } from "./watches";
import { column, decimal, num, type RpcStatus } from "./wire";

interface Account {
  accountNumber: string;
  nickname: string;
}

interface Alert {
  alertId: string;
  accountNumber: string;
  watchId: string;
  kind: string;
  severity: string;
  state: string;
  title: string;
  message: string;
  raiseTime: string;
  /** raise_time with nine fraction digits, so that string order is time order. */
  raiseKey: string;
  /** When this page received it from the stream (ms), for the latency shown to tests; 0 when listed. */
  receivedAt: number;
}

/** Series kept per account across reloads (sessionStorage), sampled at most every SAMPLE_MS. */
interface Series {
  pnl: number[][];
  betaWeighted: number[][];
  watches: Record<string, number[][]>;
}

const SAMPLE_MS = 2_000;
const MAX_POINTS = 900;
const RENDER_MS = 250;
const METRIC_LABEL: Record<Metric, string> = {
  DELTA_METRIC_SHARES: "shares",
  DELTA_METRIC_DOLLARS: "dollars",
  DELTA_METRIC_BETA_WEIGHTED: "beta-weighted (benchmark shares)",
};

/** The running page. */
export class App {
  private readonly root: HTMLElement;
  private readonly status: HTMLElement;
  // null until the first session is seen, so the first call always renders.
  private sessionKey: string | null = null;
  private sessionAbort: AbortController | null = null;
  private accountAbort: AbortController | null = null;
  private accounts: Account[] = [];
  private account = "";
  private book: Book | null = null;
  private watches = new Map<string, Watch>();
  private watchesAvailable = true;
  private alerts = new Map<string, Alert>();
  private alertsListed = false;
  private streamStates = new Map<string, { state: StreamState; detail: string }>();
  private series: Series = { pnl: [], betaWeighted: [], watches: {} };
  private lastSample = 0;
  private renderQueued = false;
  private lastRender = 0;
  private views: DashboardViews | null = null;
  private selectedWatch = "";
  private realized: number[][] = [];
  private pnlView: "live" | "realized" = "live";

  constructor(
    private readonly client: Client,
    private readonly storage: Storage,
    mount: HTMLElement,
  ) {
    this.root = mount;
    this.status = h("div", { class: "streams", role: "status", "aria-live": "polite", "data-testid": "streams" });
    client.onSession((session) => this.onSession(session));
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") client.refreshIfDue();
    });
    this.onSession(client.current);
  }

  private onSession(session: Session | null): void {
    const key = session ? session.userId : "";
    if (key === this.sessionKey) return; // a token refresh: streams keep running
    this.sessionKey = key;
    this.sessionAbort?.abort();
    this.accountAbort?.abort();
    this.views = null;
    if (!session) {
      this.renderSignIn();
      return;
    }
    this.sessionAbort = new AbortController();
    this.alerts.clear();
    this.alertsListed = false;
    this.streamStates.clear();
    this.renderDashboard(session);
    void this.loadAccounts();
    this.startAlerts(this.sessionAbort.signal);
  }

  // ---- sign-in -------------------------------------------------------------------------------------

  private renderSignIn(): void {
    const error = h("p", { class: "error", role: "alert", "data-testid": "signin-error" });
    const email = h("input", { id: "email", type: "email", autocomplete: "username", required: true });
    const password = h("input", {
      id: "password",
      type: "password",
      autocomplete: "current-password",
      required: true,
      minlength: 12,
    });
    const submit = async (create: boolean): Promise<void> => {
      setText(error, "");
      if (!email.value || !password.value) {
        setText(error, "Enter an e-mail address and a password.");
        return;
      }
      try {
        if (create) await this.client.signUp(email.value, password.value);
        await this.client.signIn(email.value, password.value);
      } catch (e) {
        setText(error, describe(e));
      }
    };
    const form = h(
      "form",
      {
        class: "signin card",
        "aria-labelledby": "signin-title",
        onsubmit: (e: Event) => {
          e.preventDefault();
          void submit(false);
        },
      },
      h("h2", { id: "signin-title" }, "Sign in"),
      h("label", { for: "email" }, "E-mail"),
      email,
      h("label", { for: "password" }, "Password"),
      password,
      h(
        "div",
        { class: "row" },
        h("button", { type: "submit", class: "primary" }, "Sign in"),
        h("button", { type: "button", onclick: () => void submit(true) }, "Create account and sign in"),
      ),
      error,
    );
    replace(this.root, this.header(null), h("main", { id: "main", tabindex: -1 }, form));
    email.focus();
  }

  private header(session: Session | null): HTMLElement {
    return h(
      "header",
      { class: "top" },
      h("h1", {}, "Risk dashboard"),
      session ? this.status : null,
      session
        ? h(
            "div",
            { class: "who" },
            h("span", { "data-testid": "user-email" }, session.email),
            h("button", { type: "button", onclick: () => void this.client.signOut(), "data-testid": "signout" }, "Sign out"),
          )
        : null,
    );
  }

  // ---- dashboard -----------------------------------------------------------------------------------

  private renderDashboard(session: Session): void {
    const views = new DashboardViews(this);
    this.views = views;
    replace(this.root, this.header(session), views.main);
    this.renderStreams();
  }

  /** Called by the account picker. */
  selectAccount(accountNumber: string): void {
    if (accountNumber === this.account) return;
    this.account = accountNumber;
    this.storage.setItem(`tastyplat.account.${this.sessionKey ?? ""}`, accountNumber);
    void this.loadAccount();
  }

  private async loadAccounts(): Promise<void> {
    const views = this.views;
    try {
      const body = await this.client.call<{ accounts?: Record<string, unknown>[] }>("GET", "/v1/accounts");
      this.accounts = (body.accounts ?? []).map((a) => ({
        accountNumber: String(a.account_number),
        nickname: String(a.nickname ?? ""),
      }));
    } catch (e) {
      views?.notice(`Accounts could not be loaded: ${describe(e)}`);
      return;
    }
    if (views !== this.views || !views) return;
    const stored = this.storage.getItem(`tastyplat.account.${this.sessionKey ?? ""}`) ?? "";
    const pick = this.accounts.find((a) => a.accountNumber === stored) ?? this.accounts[0];
    views.setAccounts(this.accounts, pick?.accountNumber ?? "");
    if (!pick) {
      views.notice("No brokerage account is linked to this user.");
      return;
    }
    this.account = pick.accountNumber;
    await this.loadAccount();
  }

  private async loadAccount(): Promise<void> {
    this.accountAbort?.abort();
    const abort = new AbortController();
    this.accountAbort = abort;
    const account = this.account;
    const views = this.views;
    if (!views) return;
    this.book = null;
    this.watches.clear();
    this.series = this.loadSeries(account);
    this.lastSample = 0;
    views.resetAccount();
    let positions;
    try {
      positions = parsePositions(await this.pages(`/v1/accounts/${encodeURIComponent(account)}/positions`, "positions"));
    } catch (e) {
      views.notice(`Positions could not be loaded: ${describe(e)}`);
      return;
    }
    if (abort.signal.aborted) return;
    const book = new Book(positions);
    this.book = book;
    await this.loadBetas(book, account);
    await this.loadWatches(account);
    await this.loadHistory(account);
    if (abort.signal.aborted) return;
    views.setTargets(book);
    this.startMarketStreams(book, abort.signal);
    this.render();
    void this.runScenario();
  }

  private async pages(path: string, field: string): Promise<{ [k: string]: unknown[] }> {
    const all: unknown[] = [];
    let token = "";
    for (let i = 0; i < 50; i++) {
      const sep = path.includes("?") ? "&" : "?";
      const body = await this.client.call<Record<string, unknown>>(
        "GET",
        token ? `${path}${sep}page_token=${encodeURIComponent(token)}` : path,
      );
      all.push(...((body[field] as unknown[]) ?? []));
      token = String(body.next_page_token ?? "");
      if (!token) break;
    }
    return { [field]: all };
  }

  /** Betas from the portfolio service (its own estimates) or else the broker's market metrics. */
  private async loadBetas(book: Book, account: string): Promise<void> {
    try {
      const body = await this.client.call<{ underlyings?: Record<string, unknown>[] }>(
        "GET",
        `/v1/portfolios/${encodeURIComponent(account)}/greeks`,
      );
      for (const u of body.underlyings ?? []) book.setBeta(String(u.underlying_symbol), num(u.beta), "portfolio");
      const total = (body as { total?: Record<string, unknown>; compute_time?: string }).total;
      if (total) {
        this.views?.showServiceTotals(
          {
            deltaDollars: num(total.delta_dollars),
            betaWeightedDelta: num(total.beta_weighted_delta),
            theta: num(total.theta),
            vega: num(total.vega),
          },
          String((body as { compute_time?: string }).compute_time ?? ""),
        );
      }
      if ((body.underlyings ?? []).length) return;
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
    }
    const symbols = [...new Set(book.positions.map((p) => p.underlying))];
    if (!symbols.length) return;
    try {
      const query = symbols.map((s) => `symbols=${encodeURIComponent(s)}`).join("&");
      const body = await this.client.call<{ metrics?: Record<string, unknown>[] }>("GET", `/v1/marketMetrics?${query}`);
      for (const m of body.metrics ?? []) {
        if (m.beta !== undefined) book.setBeta(String(m.symbol), num(m.beta), "broker");
      }
    } catch {
      // Without metrics every beta is 1.0, and the per-underlying table says so.
    }
  }

  /** Realized P&L by day from the portfolio service (its FIFO lots), for the "since open" P&L view. */
  private async loadHistory(account: string): Promise<void> {
    try {
      const body = await this.client.call<{ daily_pnl?: Record<string, unknown>[] }>(
        "GET",
        `/v1/portfolios/${encodeURIComponent(account)}/history`,
      );
      this.realized = (body.daily_pnl ?? []).map((d) => [Date.parse(String(d.day_end_time)), decimal(d.cumulative_realized_pnl)]);
    } catch {
      this.realized = [];
    }
  }

  private async loadWatches(account: string): Promise<void> {
    try {
      const body = await this.pages(`/v1/watches?account_number=${encodeURIComponent(account)}`, "watches");
      this.watchesAvailable = true;
      for (const w of body.watches) {
        const watch = parseWatch(w);
        this.watches.set(watch.watchId, watch);
      }
    } catch (e) {
      this.watchesAvailable = !(e instanceof ApiError && e.unimplemented);
      if (this.watchesAvailable) this.views?.notice(`Watches could not be loaded: ${describe(e)}`);
    }
    this.views?.renderWatches();
  }

  private startMarketStreams(book: Book, signal: AbortSignal): void {
    const benchmarks = [...this.watches.values()].map((w) => w.benchmark);
    const quotes = book.quoteSymbols(benchmarks).map((s) => `symbols=${encodeURIComponent(s)}`).join("&");
    void keepStreaming(
      this.client,
      {
        name: "quotes",
        path: () => `/v1/quotes:stream?${quotes}`,
        onMessage: (m) => {
          if (m.quotes && book.applyQuotes(m.quotes as Record<string, unknown>)) this.changed();
        },
        onState: (state, detail) => this.setStream("quotes", state, detail),
      },
      signal,
    );
    const options = book.optionSymbols();
    if (!options.length) return;
    const query = options.map((s) => `symbols=${encodeURIComponent(s)}`).join("&");
    void keepStreaming(
      this.client,
      {
        name: "greeks",
        path: () => `/v1/greeks:stream?${query}`,
        onMessage: (m) => {
          if (m.greeks && book.applyGreeks(m.greeks as Record<string, unknown>)) this.changed();
        },
        onState: (state, detail) => this.setStream("greeks", state, detail),
      },
      signal,
    );
  }

  // ---- alerts --------------------------------------------------------------------------------------

  private lastAlertKey(): string {
    return `tastyplat.lastAlert.${this.sessionKey ?? ""}`;
  }

  private startAlerts(signal: AbortSignal): void {
    void keepStreaming(
      this.client,
      {
        name: "alerts",
        // Resume after the last alert seen, so a reconnect (or a reload) misses none and repeats none.
        path: () => {
          const after = this.storage.getItem(this.lastAlertKey()) ?? "";
          return after ? `/v1/alerts:stream?after_alert_id=${encodeURIComponent(after)}` : "/v1/alerts:stream";
        },
        onOpen: () => {
          if (!this.alertsListed) void this.listAlerts();
        },
        onMessage: (m) => {
          if (m.alert) this.addAlert({ ...parseAlert(m.alert), receivedAt: Date.now() }, true);
        },
        onStatus: (status: RpcStatus) => {
          // The resume point is gone (expired, or not this user's): list what is retained and start over.
          if (status.reason === "RESUME_POINT_EXPIRED" || status.reason === "ALERT_NOT_FOUND") {
            this.storage.removeItem(this.lastAlertKey());
            this.alertsListed = false;
            return true;
          }
          return false;
        },
        onState: (state, detail) => {
          this.setStream("alerts", state, detail);
          if (state === "unavailable") this.views?.renderAlerts(false);
        },
      },
      signal,
    );
  }

  private async listAlerts(): Promise<void> {
    this.alertsListed = true;
    try {
      const body = await this.client.call<{ alerts?: unknown[] }>("GET", "/v1/alerts?page_size=100");
      // Newest first: add oldest first so the resume point ends at the newest.
      for (const raw of [...(body.alerts ?? [])].reverse()) this.addAlert(parseAlert(raw), false);
    } catch (e) {
      this.alertsListed = false;
      if (!(e instanceof ApiError && e.unimplemented)) this.views?.notice(`Alerts could not be listed: ${describe(e)}`);
    }
    this.views?.renderAlerts(true);
  }

  private addAlert(alert: Alert, live: boolean): void {
    // The same alert can come from the stream and from the list (they overlap at start-up): an
    // acknowledgement is never undone, and the time it was first received is kept.
    const known = this.alerts.get(alert.alertId);
    const acked = known?.state === "ALERT_STATE_ACKNOWLEDGED" ? known : alert;
    this.alerts.set(alert.alertId, { ...acked, receivedAt: known?.receivedAt || alert.receivedAt });
    if (known) {
      this.views?.renderAlerts(true);
      return;
    }
    const last = this.storage.getItem(this.lastAlertKey());
    const lastAlert = last ? this.alerts.get(last) : undefined;
    if (!lastAlert || alert.raiseKey >= lastAlert.raiseKey) this.storage.setItem(this.lastAlertKey(), alert.alertId);
    this.views?.renderAlerts(true);
    if (live) {
      this.views?.announce(`New alert: ${alert.title}`);
      const watch = this.watches.get(alert.watchId);
      if (watch) void this.refreshWatch(watch.watchId);
    }
  }

  /** Called by an alert's Acknowledge button. */
  async acknowledge(alertId: string): Promise<void> {
    try {
      const body = await this.client.call<{ alert: unknown }>(
        "POST",
        `/v1/alerts/${encodeURIComponent(alertId)}:acknowledge`,
        { channel: "CHANNEL_KIND_STREAM" },
      );
      const previous = this.alerts.get(alertId);
      this.alerts.set(alertId, { ...parseAlert(body.alert), receivedAt: previous?.receivedAt ?? 0 });
      this.views?.renderAlerts(true, alertId);
    } catch (e) {
      this.views?.notice(`The alert could not be acknowledged: ${describe(e)}`);
    }
  }

  alertList(): Alert[] {
    return [...this.alerts.values()].sort((a, b) => (a.raiseKey < b.raiseKey ? 1 : a.raiseKey > b.raiseKey ? -1 : 0));
  }

  // ---- watches -------------------------------------------------------------------------------------

  /** Called by the create-watch form; returns an error message or "". */
  async createWatch(input: {
    name: string;
    target: string;
    metric: Metric;
    lower: number;
    upper: number;
  }): Promise<string> {
    const watch: Record<string, unknown> = {
      account_number: this.account,
      display_name: input.name,
      metric: input.metric,
      static_band: { lower: input.lower, upper: input.upper },
      hysteresis_ratio: 0.25,
      cooldown: "300s",
    };
    if (input.target === "") watch.account = {};
    else watch.underlying = { underlying_symbol: input.target };
    try {
      const body = await this.client.call<{ watch: unknown }>("POST", "/v1/watches", {
        request_id: crypto.randomUUID(),
        watch,
      });
      const created = parseWatch(body.watch);
      this.watches.set(created.watchId, created);
      this.selectedWatch = created.watchId;
      this.views?.renderWatches();
      this.render();
      // A watch created outside its band alerts on its first evaluation, which can reach the alert stream
      // before this response: fetch its state now if so.
      if ([...this.alerts.values()].some((a) => a.watchId === created.watchId)) void this.refreshWatch(created.watchId);
      return "";
    } catch (e) {
      return describe(e);
    }
  }

  /** Called by a watch's Delete button. */
  async deleteWatch(watchId: string): Promise<void> {
    try {
      await this.client.call("DELETE", `/v1/watches/${encodeURIComponent(watchId)}`);
      this.watches.delete(watchId);
      delete this.series.watches[watchId];
      this.views?.renderWatches();
    } catch (e) {
      this.views?.notice(`The watch could not be deleted: ${describe(e)}`);
    }
  }

  private async refreshWatch(watchId: string): Promise<void> {
    try {
      const body = await this.client.call<{ watch: unknown }>("GET", `/v1/watches/${encodeURIComponent(watchId)}`);
      const watch = parseWatch(body.watch);
      if (this.watches.has(watchId)) this.watches.set(watchId, watch);
      this.views?.renderWatches();
    } catch {
      // The band stays drawn from what was known; the next alert refreshes it again.
    }
  }

  watchList(): Watch[] {
    return [...this.watches.values()];
  }

  get hasWatchService(): boolean {
    return this.watchesAvailable;
  }

  get currentBook(): Book | null {
    return this.book;
  }

  get chartWatch(): string {
    return this.watches.has(this.selectedWatch) ? this.selectedWatch : (this.watchList()[0]?.watchId ?? "");
  }

  set chartWatch(watchId: string) {
    this.selectedWatch = watchId;
    this.render();
  }

  get chartSeries(): Series {
    return this.series;
  }

  /** Which P&L the chart shows: today's live unrealized P&L, or realized P&L by day since the first trade. */
  set pnlMode(mode: "live" | "realized") {
    this.pnlView = mode;
    this.render();
  }

  // ---- scenario ------------------------------------------------------------------------------------

  /** Runs the scenario grid on the portfolio service and draws it. */
  async runScenario(): Promise<void> {
    const views = this.views;
    const account = this.account;
    if (!views || !account) return;
    const moves = [-0.1, -0.075, -0.05, -0.025, 0, 0.025, 0.05, 0.075, 0.1];
    const shifts = [-0.05, -0.025, 0, 0.025, 0.05];
    views.scenarioState("Running…");
    try {
      const body = await this.client.call<Record<string, unknown>>(
        "POST",
        `/v1/portfolios/${encodeURIComponent(account)}:runScenario`,
        { grid: { underlying_moves: moves, volatility_shifts: shifts, days_forward: [0] } },
      );
      const pnls = column(body.pnls);
      const grid = (body.grid ?? {}) as Record<string, unknown>;
      const m = column(grid.underlying_moves);
      const s = column(grid.volatility_shifts);
      const rows = s.map((_, si) => m.map((__, mi) => pnls[si * m.length + mi]));
      views.showScenario(
        m.map((x) => `${fmt(x * 100, 1, true)}%`),
        s.map((x) => `${fmt(x * 100, 1, true)} pts`),
        rows,
        decimal(body.base_value),
      );
    } catch (e) {
      views.scenarioState(
        e instanceof ApiError && e.unimplemented
          ? "Scenarios need the portfolio service, which this platform does not serve yet."
          : `The scenario could not be run: ${describe(e)}`,
      );
    }
  }

  // ---- rendering -----------------------------------------------------------------------------------

  private setStream(name: string, state: StreamState, detail: string): void {
    this.streamStates.set(name, { state, detail });
    this.renderStreams();
  }

  private renderStreams(): void {
    replace(
      this.status,
      ...[...this.streamStates.entries()].map(([name, { state, detail }]) =>
        h(
          "span",
          { class: `chip ${state}`, title: detail, "data-testid": `stream-${name}`, "data-state": state },
          `${name}: ${state === "unavailable" ? "not served yet" : state}`,
        ),
      ),
    );
  }

  private changed(): void {
    if (this.renderQueued) return;
    this.renderQueued = true;
    const wait = Math.max(0, RENDER_MS - (performance.now() - this.lastRender));
    setTimeout(() => requestAnimationFrame(() => this.render()), wait);
  }

  private render(): void {
    this.renderQueued = false;
    this.lastRender = performance.now();
    const book = this.book;
    const views = this.views;
    if (!book || !views) return;
    const rows = book.rows();
    const totals = book.totals(rows);
    views.showTotals(totals, book);
    views.showUnderlyings(book.underlyings(rows));
    views.showPositions(rows);
    views.updateWatchBands(book);
    this.sample(book, totals);
    views.showCharts(this.series, this.watches.get(this.chartWatch), this.pnlView === "realized" ? this.realized : null);
  }

  private sample(book: Book, totals: Totals): void {
    const now = Date.now();
    if (now - this.lastSample < SAMPLE_MS || book.lastUpdate === 0) return;
    this.lastSample = now;
    push(this.series.pnl, [now, totals.unrealizedPnl]);
    push(this.series.betaWeighted, [now, totals.betaWeightedDelta]);
    for (const watch of this.watches.values()) {
      const view = watchView(book, watch);
      push((this.series.watches[watch.watchId] ??= []), [now, view.delta, view.lower, view.upper]);
    }
    this.storage.setItem(`tastyplat.series.${this.account}`, JSON.stringify(this.series));
  }

  private loadSeries(account: string): Series {
    try {
      const raw = this.storage.getItem(`tastyplat.series.${account}`);
      if (raw) {
        const parsed = JSON.parse(raw) as Series;
        if (Array.isArray(parsed.pnl) && Array.isArray(parsed.betaWeighted) && parsed.watches) return parsed;
      }
    } catch {
      // A damaged entry starts the charts afresh.
    }
    return { pnl: [], betaWeighted: [], watches: {} };
  }
}

function push(list: number[][], point: number[]): void {
  list.push(point);
  if (list.length > MAX_POINTS) list.splice(0, list.length - MAX_POINTS);
}

function parseAlert(json: unknown): Alert {
  const a = json as Record<string, unknown>;
  return {
    alertId: String(a.alert_id),
    accountNumber: String(a.account_number ?? ""),
    watchId: String(a.watch_id ?? ""),
    kind: String(a.kind ?? ""),
    severity: String(a.severity ?? "SEVERITY_WARNING"),
    state: String(a.state ?? "ALERT_STATE_OPEN"),
    title: String(a.title ?? ""),
    message: String(a.message ?? ""),
    raiseTime: String(a.raise_time ?? ""),
    raiseKey: sortableTime(String(a.raise_time ?? "")),
    receivedAt: 0,
  };
}

/** A protobuf JSON timestamp ("...:54.1Z", always UTC) with its fraction padded to nanoseconds. */
export function sortableTime(time: string): string {
  const match = /^(.*?)(?:\.(\d+))?Z$/.exec(time);
  return match ? `${match[1]}.${(match[2] ?? "").padEnd(9, "0")}Z` : time;
}

function describe(error: unknown): string {
  if (error instanceof ApiError) {
    const reason = error.status.reason ? ` (${error.status.reason})` : "";
    return `${error.status.message || `HTTP ${error.httpStatus}`}${reason}`;
  }
  return error instanceof Error ? error.message : String(error);
}

const SEVERITY: Record<string, string> = {
  SEVERITY_INFO: "Info",
  SEVERITY_WARNING: "Warning",
  SEVERITY_CRITICAL: "Critical",
};

/** The dashboard's DOM: built once per sign-in, updated in place by the live data. */
class DashboardViews {
  readonly main: HTMLElement;
  private readonly notices = h("div", { class: "notices", role: "alert" });
  private readonly live = h("div", { class: "sr-only", "aria-live": "assertive" });
  private readonly accountSelect = h("select", { id: "account", "data-testid": "account" });
  private readonly totals = h("dl", { class: "totals", "data-testid": "totals" });
  private readonly underlyingBody = h("tbody");
  private readonly positionBody = h("tbody");
  private readonly watchList = h("ul", { class: "watches", "data-testid": "watches" });
  private readonly watchForm: HTMLFormElement;
  private readonly targetSelect = h("select", { id: "watch-target", "data-testid": "watch-target" });
  private readonly alertList = h("ol", { class: "alerts", "data-testid": "alerts" });
  private readonly alertNote = h("p", { class: "muted" });
  private readonly chartWatchSelect = h("select", { id: "chart-watch", "data-testid": "chart-watch" });
  private readonly pnlChart: TimeChart;
  private readonly deltaChart: TimeChart;
  private readonly heatMap: HeatMap;
  private readonly scenarioNote = h("p", { class: "muted", "data-testid": "scenario-state" });
  private readonly scenarioTable = h("table", { class: "num", "data-testid": "scenario-table" });
  private readonly updated = h("p", { class: "muted", "data-testid": "updated" });
  private readonly serviceTotals = h("p", { class: "muted", "data-testid": "service-totals" });
  private readonly pnlMode = h(
    "select",
    { id: "pnl-mode", "data-testid": "pnl-mode" },
    h("option", { value: "live" }, "Today, live (unrealized)"),
    h("option", { value: "realized" }, "Since open (realized, by day)"),
  );
  private bandNodes = new Map<string, { text: HTMLElement; ttb: HTMLElement; band: HTMLElement }>();

  constructor(private readonly app: App) {
    const pnlEl = h("div", { class: "chart", "data-testid": "pnl-chart" });
    const deltaEl = h("div", { class: "chart", "data-testid": "delta-chart" });
    const heatEl = h("div", { class: "chart tall", "data-testid": "scenario-heatmap" });
    this.watchForm = this.buildWatchForm();
    this.accountSelect.addEventListener("change", () => app.selectAccount(this.accountSelect.value));
    this.pnlMode.addEventListener("change", () => {
      app.pnlMode = this.pnlMode.value === "realized" ? "realized" : "live";
    });
    this.chartWatchSelect.addEventListener("change", () => {
      app.chartWatch = this.chartWatchSelect.value;
    });
    this.main = h(
      "main",
      { id: "main", tabindex: -1 },
      this.notices,
      this.live,
      h(
        "section",
        { class: "card wide", "aria-labelledby": "greeks-title" },
        h(
          "div",
          { class: "card-head" },
          h("h2", { id: "greeks-title" }, "Portfolio Greeks"),
          h("span", { class: "control" }, h("label", { for: "account" }, "Account "), this.accountSelect),
        ),
        this.totals,
        this.updated,
        this.serviceTotals,
        h(
          "div",
          { class: "scroll", tabindex: 0, role: "region", "aria-label": "Greeks per underlying" },
          h(
            "table",
            { class: "num", "data-testid": "underlyings" },
            h("caption", {}, "Per underlying"),
            headRow(["Underlying", "Price", "Beta", "Δ shares", "Δ $", "β-wtd Δ", "Γ", "Θ $/day", "Vega $/pt", "Unrealized P&L"]),
            this.underlyingBody,
          ),
        ),
      ),
      h(
        "section",
        { class: "card", "aria-labelledby": "watches-title" },
        h("h2", { id: "watches-title" }, "Watches"),
        this.watchList,
        this.watchForm,
      ),
      h(
        "section",
        { class: "card", "aria-labelledby": "alerts-title" },
        h("h2", { id: "alerts-title" }, "Alerts"),
        this.alertNote,
        this.alertList,
      ),
      h(
        "section",
        { class: "card", "aria-labelledby": "pnl-title" },
        h(
          "div",
          { class: "card-head" },
          h("h2", { id: "pnl-title" }, "P&L over time"),
          h("span", { class: "control" }, h("label", { for: "pnl-mode" }, "Show "), this.pnlMode),
        ),
        pnlEl,
      ),
      h(
        "section",
        { class: "card", "aria-labelledby": "delta-title" },
        h(
          "div",
          { class: "card-head" },
          h("h2", { id: "delta-title" }, "Delta over time"),
          h("span", { class: "control" }, h("label", { for: "chart-watch" }, "Show "), this.chartWatchSelect),
        ),
        deltaEl,
      ),
      h(
        "section",
        { class: "card wide", "aria-labelledby": "scenario-title" },
        h(
          "div",
          { class: "card-head" },
          h("h2", { id: "scenario-title" }, "Scenario P&L (price move × volatility shift)"),
          h("button", { type: "button", onclick: () => void app.runScenario(), "data-testid": "run-scenario" }, "Run again"),
        ),
        this.scenarioNote,
        heatEl,
        h("details", {}, h("summary", {}, "Scenario grid as a table"), h("div", { class: "scroll" }, this.scenarioTable)),
      ),
      h(
        "section",
        { class: "card wide", "aria-labelledby": "positions-title" },
        h("h2", { id: "positions-title" }, "Positions: platform model vs dxFeed"),
        h(
          "div",
          { class: "scroll", tabindex: 0, role: "region", "aria-label": "Positions" },
          h(
            "table",
            { class: "num", "data-testid": "positions" },
            headRow(["Symbol", "Qty", "Mark", "IV model", "IV dxFeed", "Δ model", "Δ dxFeed", "Γ model", "Γ dxFeed", "Θ model", "Θ dxFeed", "Vega model", "Vega dxFeed", "Δ $ (position)", "P&L"]),
            this.positionBody,
          ),
        ),
      ),
    );
    this.pnlChart = new TimeChart(pnlEl, "P&L in dollars over time");
    this.deltaChart = new TimeChart(deltaEl, "Watched delta over time with its band");
    this.heatMap = new HeatMap(heatEl);
  }

  showServiceTotals(t: { deltaDollars: number; betaWeightedDelta: number; theta: number; vega: number }, time: string): void {
    const at = time ? new Date(time).toLocaleTimeString() : "";
    setText(
      this.serviceTotals,
      `Portfolio service valuation${at ? ` at ${at}` : ""} (its own pricing, American where it applies): ` +
        `Δ$ ${money(t.deltaDollars)}, β-weighted Δ ${fmt(t.betaWeightedDelta, 1, true)}, ` +
        `Θ ${money(t.theta)}/day, vega ${money(t.vega)}/pt.`,
    );
  }

  notice(text: string): void {
    this.notices.appendChild(h("p", { class: "error" }, text));
  }

  announce(text: string): void {
    setText(this.live, text);
  }

  setAccounts(accounts: Account[], selected: string): void {
    replace(
      this.accountSelect,
      ...accounts.map((a) =>
        h("option", { value: a.accountNumber, selected: a.accountNumber === selected }, `${a.accountNumber} ${a.nickname}`),
      ),
    );
  }

  resetAccount(): void {
    replace(this.totals);
    replace(this.underlyingBody);
    replace(this.positionBody);
    replace(this.notices);
    setText(this.serviceTotals, "");
    setText(this.updated, "Waiting for market data…");
  }

  setTargets(book: Book): void {
    const underlyings = [...new Set(book.positions.map((p) => p.underlying))].sort();
    replace(
      this.targetSelect,
      ...underlyings.map((u) => h("option", { value: u }, `Underlying ${u}`)),
      h("option", { value: "" }, "Whole account"),
    );
  }

  showTotals(t: Totals, book: Book): void {
    const items: [string, string, string, number][] = [
      ["delta-dollars", "Delta $", money(t.deltaDollars), t.deltaDollars],
      ["beta-weighted-delta", `β-weighted Δ (${t.benchmark} shares)`, fmt(t.betaWeightedDelta, 1, true), t.betaWeightedDelta],
      ["beta-weighted-dollars", "β-weighted Δ $", money(t.betaWeightedDeltaDollars), t.betaWeightedDeltaDollars],
      ["gamma", "Gamma (Δ shares per $1)", fmt(t.gamma, 2, true), t.gamma],
      ["theta", "Theta $/day", money(t.theta), t.theta],
      ["vega", "Vega $/vol pt", money(t.vega), t.vega],
      ["pnl", "Unrealized P&L", money(t.unrealizedPnl), t.unrealizedPnl],
    ];
    if (this.totals.childElementCount !== items.length) {
      replace(
        this.totals,
        ...items.map(([id, label]) =>
          h("div", { class: "metric" }, h("dt", {}, label), h("dd", { "data-testid": `total-${id}` })),
        ),
      );
    }
    items.forEach(([, , text, value], i) => {
      const dd = this.totals.children[i].querySelector("dd") as HTMLElement;
      setText(dd, text);
      dd.className = tone(value);
    });
    const age = book.lastUpdate ? new Date(book.lastUpdate).toLocaleTimeString() : "";
    const missing = t.missing ? ` ${t.missing} option position(s) have no Greeks yet and are left out.` : "";
    setText(
      this.updated,
      age ? `Live from the market data streams; last update ${age}.${missing}` : "Waiting for market data…",
    );
  }

  showUnderlyings(rows: UnderlyingRow[]): void {
    replace(
      this.underlyingBody,
      ...rows.map((u) =>
        h(
          "tr",
          { "data-underlying": u.underlying },
          h("th", { scope: "row" }, u.underlying),
          td(fmt(u.price, 2)),
          td(`${fmt(u.beta, 2)}${u.betaSource === "default" ? " (default)" : ""}`),
          td(fmt(u.deltaShares, 1, true)),
          td(money(u.deltaDollars), u.deltaDollars),
          td(fmt(u.betaWeightedDelta, 1, true)),
          td(fmt(u.gamma, 2, true)),
          td(money(u.theta), u.theta),
          td(money(u.vega), u.vega),
          td(money(u.unrealizedPnl), u.unrealizedPnl),
        ),
      ),
    );
  }

  showPositions(rows: PositionRow[]): void {
    replace(
      this.positionBody,
      ...rows.map((r) => {
        const g = r.greeks;
        const p = r.position;
        return h(
          "tr",
          {},
          h("th", { scope: "row" }, p.symbol),
          td(fmt(p.quantity, 0, true)),
          td(fmt(r.mark, 2)),
          td(g ? pct(g.model.iv) : "—"),
          td(g ? pct(g.broker.iv) : "—"),
          td(p.isOption ? `${fmt(g?.model.delta ?? NaN, 3)}${r.source === "dxfeed" ? " (dxFeed used)" : ""}` : "1"),
          td(p.isOption ? fmt(g?.broker.delta ?? NaN, 3) : "1"),
          td(g ? fmt(g.model.gamma, 4) : "—"),
          td(g ? fmt(g.broker.gamma, 4) : "—"),
          td(g ? fmt(g.model.theta, 3) : "—"),
          td(g ? fmt(g.broker.theta, 3) : "—"),
          td(g ? fmt(g.model.vega, 3) : "—"),
          td(g ? fmt(g.broker.vega, 3) : "—"),
          td(money(r.deltaDollars), r.deltaDollars),
          td(money(r.unrealizedPnl), r.unrealizedPnl),
        );
      }),
    );
  }

  // ---- watches ----

  private buildWatchForm(): HTMLFormElement {
    const name = h("input", { id: "watch-name", type: "text", required: true, value: "Delta band", maxlength: 80 });
    const metric = h(
      "select",
      { id: "watch-metric", "data-testid": "watch-metric" },
      ...(Object.keys(METRIC_LABEL) as Metric[]).map((m) => h("option", { value: m }, METRIC_LABEL[m])),
    );
    const lower = h("input", { id: "watch-lower", type: "number", step: "any", required: true, inputmode: "decimal" });
    const upper = h("input", { id: "watch-upper", type: "number", step: "any", required: true, inputmode: "decimal" });
    const hint = h("p", { class: "muted", id: "watch-hint", "data-testid": "watch-hint" });
    const error = h("p", { class: "error", role: "alert", "data-testid": "watch-error" });
    const updateHint = (): void => {
      const book = this.app.currentBook;
      if (!book) return;
      const probe: Watch = {
        watchId: "",
        accountNumber: "",
        displayName: "",
        target: this.targetSelect.value ? { kind: "underlying", symbol: this.targetSelect.value } : { kind: "account" },
        metric: metric.value as Metric,
        benchmark: "SPY",
        lower: -Infinity,
        upper: Infinity,
        adaptive: false,
        state: "",
        serverDelta: NaN,
        serverTimeToBreachSeconds: NaN,
        evaluateTime: "",
      };
      setText(hint, `Current delta of this target: ${fmt(watchView(book, probe).delta, 1, true)}`);
    };
    this.targetSelect.addEventListener("change", updateHint);
    metric.addEventListener("change", updateHint);
    lower.addEventListener("focus", updateHint);
    const form = h(
      "form",
      {
        class: "watch-form",
        "aria-labelledby": "new-watch-title",
        "aria-describedby": "watch-hint",
        onsubmit: async (e: Event) => {
          e.preventDefault();
          setText(error, "");
          const lo = Number(lower.value);
          const hi = Number(upper.value);
          if (!(lo < hi)) {
            setText(error, "The lower bound must be below the upper bound.");
            lower.focus();
            return;
          }
          const message = await this.app.createWatch({
            name: name.value,
            target: this.targetSelect.value,
            metric: metric.value as Metric,
            lower: lo,
            upper: hi,
          });
          setText(error, message);
        },
      },
      h("h3", { id: "new-watch-title" }, "New watch"),
      h(
        "div",
        { class: "fields" },
        field("watch-name", "Name", name),
        field("watch-target", "Target", this.targetSelect),
        field("watch-metric", "Metric", metric),
        field("watch-lower", "Band lower", lower),
        field("watch-upper", "Band upper", upper),
      ),
      hint,
      h("button", { type: "submit", class: "primary", "data-testid": "create-watch" }, "Create watch"),
      error,
    );
    return form as HTMLFormElement;
  }

  renderWatches(): void {
    this.bandNodes.clear();
    const watches = this.app.watchList();
    if (!this.app.hasWatchService) {
      replace(this.watchList, h("li", { class: "muted" }, "Watches need the delta monitor, which this platform does not serve yet."));
      this.watchForm.hidden = true;
    } else {
      this.watchForm.hidden = false;
      replace(
        this.watchList,
        ...(watches.length ? [] : [h("li", { class: "muted" }, "No watches on this account yet.")]),
        ...watches.map((w) => {
          const text = h("span", { class: "delta", "data-testid": "watch-delta" });
          const ttb = h("span", { class: "ttb", "data-testid": "watch-ttb" });
          const band = h("div", { class: "band", role: "img" });
          this.bandNodes.set(w.watchId, { text, ttb, band });
          const target = w.target.kind === "account" ? "whole account" : w.target.symbol;
          return h(
            "li",
            { class: "watch", "data-watch-id": w.watchId, "data-testid": "watch" },
            h(
              "div",
              { class: "watch-head" },
              h("strong", {}, w.displayName || target),
              h("span", { class: "muted" }, ` ${target}, ${METRIC_LABEL[w.metric]}`),
              h("span", { class: `state ${w.state}`, "data-testid": "watch-state" }, stateLabel(w.state)),
            ),
            band,
            h(
              "div",
              { class: "watch-foot" },
              h("span", {}, "Delta ", text, ` in [${fmt(w.lower, 1, true)}, ${fmt(w.upper, 1, true)}]`),
              h("span", {}, "Time to breach: ", ttb),
              h(
                "button",
                {
                  type: "button",
                  class: "small",
                  "aria-label": `Delete watch ${w.displayName || target}`,
                  onclick: () => void this.app.deleteWatch(w.watchId),
                },
                "Delete",
              ),
            ),
          );
        }),
      );
    }
    replace(
      this.chartWatchSelect,
      ...watches.map((w) => h("option", { value: w.watchId, selected: w.watchId === this.app.chartWatch }, w.displayName)),
      h("option", { value: "", selected: !watches.length || this.app.chartWatch === "" }, "β-weighted delta (account)"),
    );
    const book = this.app.currentBook;
    if (book) this.updateWatchBands(book);
  }

  updateWatchBands(book: Book): void {
    for (const w of this.app.watchList()) {
      const nodes = this.bandNodes.get(w.watchId);
      if (!nodes) continue;
      const view = watchView(book, w);
      setText(nodes.text, fmt(view.delta, 1, true));
      nodes.text.className = `delta ${view.inside ? "inside" : "outside"}`;
      setText(nodes.ttb, view.inside ? formatDays(view.timeToBreachDays) : "breached");
      nodes.band.setAttribute(
        "aria-label",
        `Delta ${fmt(view.delta, 1, true)} is ${view.inside ? "inside" : "outside"} the band ${fmt(view.lower, 1, true)} to ${fmt(view.upper, 1, true)}`,
      );
      drawBand(nodes.band, view.delta, view.lower, view.upper);
    }
  }

  // ---- alerts ----

  renderAlerts(available: boolean, focusAlert = ""): void {
    if (!available) {
      setText(this.alertNote, "Alerts need the delta monitor, which this platform does not serve yet.");
      replace(this.alertList);
      return;
    }
    const alerts = this.app.alertList();
    setText(this.alertNote, alerts.length ? "" : "No alerts yet. New ones appear here as they are raised.");
    replace(
      this.alertList,
      ...alerts.map((a) => {
        const acked = a.state === "ALERT_STATE_ACKNOWLEDGED";
        return h(
          "li",
          {
            class: `alert ${a.severity} ${acked ? "acked" : "open"}`,
            "data-alert-id": a.alertId,
            "data-testid": "alert",
            "data-state": a.state,
            "data-raised-ms": Date.parse(a.raiseTime),
            "data-received-ms": a.receivedAt || null,
            tabindex: -1,
          },
          h("span", { class: "severity" }, SEVERITY[a.severity] ?? a.severity),
          h("strong", {}, a.title),
          h("span", { class: "muted" }, ` ${a.accountNumber} · ${new Date(a.raiseTime).toLocaleTimeString()}`),
          h("p", {}, a.message),
          acked
            ? h("span", { class: "acked-label" }, "Acknowledged")
            : h(
                "button",
                {
                  type: "button",
                  class: "small",
                  "data-testid": "ack",
                  "aria-label": `Acknowledge alert: ${a.title}`,
                  onclick: () => void this.app.acknowledge(a.alertId),
                },
                "Acknowledge",
              ),
        );
      }),
    );
    if (focusAlert) (this.alertList.querySelector(`[data-alert-id="${CSS.escape(focusAlert)}"]`) as HTMLElement)?.focus();
  }

  // ---- charts ----

  showCharts(series: Series, watch: Watch | undefined, realized: number[][] | null): void {
    if (realized) {
      const last = realized[realized.length - 1];
      this.pnlChart.show(
        realized,
        "Realized P&L, cumulative ($)",
        false,
        last ? `${realized.length} trading days; latest ${money(last[1])}.` : "No realized P&L recorded.",
      );
    } else {
      const pnl = series.pnl;
      const last = pnl[pnl.length - 1];
      this.pnlChart.show(pnl, "Unrealized P&L ($)", false, last ? `Latest ${money(last[1])}.` : "No data yet.");
    }
    if (watch) {
      const points = series.watches[watch.watchId] ?? [];
      const p = points[points.length - 1];
      this.deltaChart.show(
        points,
        `${watch.displayName} delta`,
        true,
        p ? `Latest ${fmt(p[1], 1)} within band ${fmt(p[2], 1)} to ${fmt(p[3], 1)}.` : "No data yet.",
      );
    } else {
      const points = series.betaWeighted;
      const p = points[points.length - 1];
      this.deltaChart.show(points, "β-weighted delta", false, p ? `Latest ${fmt(p[1], 1)}.` : "No data yet.");
    }
  }

  // ---- scenario ----

  scenarioState(text: string): void {
    setText(this.scenarioNote, text);
  }

  showScenario(moves: string[], shifts: string[], pnl: number[][], baseValue: number): void {
    setText(this.scenarioNote, `P&L against today's value ${money(baseValue)}, all underlyings moved together, today.`);
    this.heatMap.show(moves, shifts, pnl, `Scenario P&L for ${moves.length} price moves by ${shifts.length} volatility shifts.`);
    replace(
      this.scenarioTable,
      h("caption", {}, "P&L in dollars; rows: volatility shift, columns: underlying move"),
      headRow(["Vol shift", ...moves]),
      h(
        "tbody",
        {},
        ...pnl.map((row, i) => h("tr", {}, h("th", { scope: "row" }, shifts[i]), ...row.map((v) => td(money(v), v)))),
      ),
    );
  }
}

function headRow(labels: string[]): HTMLElement {
  return h("thead", {}, h("tr", {}, ...labels.map((l) => h("th", { scope: "col" }, l))));
}

function td(text: string, value?: number): HTMLElement {
  return h("td", { class: value === undefined ? "" : tone(value) }, text);
}

function pct(v: number): string {
  return Number.isFinite(v) ? `${(v * 100).toFixed(1)}%` : "—";
}

function field(id: string, label: string, input: HTMLElement): HTMLElement {
  return h("div", { class: "field" }, h("label", { for: id }, label), input);
}

function stateLabel(state: string): string {
  if (state === "WATCH_STATE_ARMED") return "Armed";
  if (state === "WATCH_STATE_BREACHED") return "Breached";
  return "Not evaluated yet";
}

/** The band as a bar: the band shaded, its bounds marked, the delta as a triangle (inside or outside). */
function drawBand(el: HTMLElement, delta: number, lower: number, upper: number): void {
  const width = 300;
  const span = upper - lower;
  const lo = Math.min(lower - span * 0.5, Number.isFinite(delta) ? delta : lower);
  const hi = Math.max(upper + span * 0.5, Number.isFinite(delta) ? delta : upper);
  const x = (v: number): number => ((v - lo) / (hi - lo || 1)) * width;
  const inside = delta >= lower && delta <= upper;
  const marker = Number.isFinite(delta)
    ? svg("path", {
        d: `M ${x(delta) - 7} 2 L ${x(delta) + 7} 2 L ${x(delta)} 14 Z`,
        fill: inside ? "#0072B2" : "#D55E00",
        stroke: "#000",
        "stroke-width": 1,
      })
    : svg("g", {});
  const picture = svg(
    "svg",
    { viewBox: `-8 0 ${width + 16} 36`, width: "100%", height: 36, "aria-hidden": "true", focusable: "false" },
    svg("rect", { x: 0, y: 16, width, height: 10, fill: "#EEEEEE" }),
    svg("rect", { x: x(lower), y: 16, width: x(upper) - x(lower), height: 10, fill: "#56B4E9" }),
    svg("rect", { x: x(lower) - 1, y: 13, width: 2, height: 16, fill: "#000" }),
    svg("rect", { x: x(upper) - 1, y: 13, width: 2, height: 16, fill: "#000" }),
    marker,
  );
  el.replaceChildren(picture);
}
