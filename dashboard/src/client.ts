/** The gateway client: sign-up, sign-in, token refresh before expiry, sign-out, JSON calls and raw streams. */

import { asStatus, type RpcStatus } from "./wire";

/** An error answer of the gateway: the HTTP status and the google.rpc.Status (or Envoy's local reply). */
export class ApiError extends Error {
  constructor(
    readonly httpStatus: number,
    readonly status: RpcStatus,
  ) {
    super(status.message || `HTTP ${httpStatus}`);
  }

  /** True when the service is not on this platform yet (gRPC UNIMPLEMENTED, HTTP 501). */
  get unimplemented(): boolean {
    return this.httpStatus === 501 || this.status.code === 12;
  }
}

/** The signed-in session as kept in sessionStorage (it survives a reload, not the tab). */
export interface Session {
  userId: string;
  email: string;
  accessToken: string;
  /** When the access token was received (ms): with its expiry, the token's lifetime. */
  accessReceivedAt: number;
  accessExpiresAt: number;
  refreshToken: string;
  refreshExpiresAt: number;
}

interface TokenPair {
  access_token: string;
  access_token_expire_time: string;
  refresh_token: string;
  refresh_token_expire_time: string;
}

const STORAGE_KEY = "tastyplat.session";
// Refresh this long before the access token expires (or at 80 % of its lifetime when that is shorter), so a
// request never leaves with a token about to lapse.
const REFRESH_LEAD_MS = 60_000;

export type SessionListener = (session: Session | null) => void;

/** Talks to the gateway at the page's own origin with relative URLs, so nothing goes anywhere else. */
export class Client {
  private session: Session | null;
  private refreshing: Promise<void> | null = null;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private readonly listeners = new Set<SessionListener>();

  constructor(
    private readonly storage: Storage,
    private readonly fetchFn: typeof fetch = (input, init) => fetch(input, init),
    private readonly now: () => number = () => Date.now(),
  ) {
    this.session = this.load();
    if (this.session) this.schedule();
  }

  /** The current session, or null when signed out. */
  get current(): Session | null {
    return this.session;
  }

  /** Calls `listener` on every sign-in, refresh and sign-out. */
  onSession(listener: SessionListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Creates a user (public route). */
  async signUp(email: string, password: string): Promise<void> {
    await this.send("POST", "/v1/users", { request_id: crypto.randomUUID(), email, password }, false);
  }

  /** Logs in and keeps the token pair. */
  async signIn(email: string, password: string): Promise<void> {
    const body = await this.send<{ tokens: TokenPair; user_id: string }>(
      "POST",
      "/v1/auth:login",
      { email, password },
      false,
    );
    this.store({ ...this.tokenFields(body.tokens), userId: body.user_id, email });
  }

  /** Revokes the refresh token (best effort) and forgets the session. */
  async signOut(): Promise<void> {
    const session = this.session;
    this.store(null);
    if (session) {
      try {
        await this.request("POST", "/v1/auth:logout", { refresh_token: session.refreshToken }, session.accessToken);
      } catch {
        // The session is gone locally either way; a failed revoke only leaves a token that expires.
      }
    }
  }

  /** Exchanges the refresh token for a new pair now; signs out when the refresh token is refused. */
  refresh(): Promise<void> {
    if (!this.refreshing) {
      this.refreshing = this.doRefresh().finally(() => {
        this.refreshing = null;
      });
    }
    return this.refreshing;
  }

  /** A JSON call with the access token; a 401 refreshes once and retries. */
  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    return this.send<T>(method, path, body, true);
  }

  /** Opens a server stream (NDJSON over REST) with the access token; a 401 refreshes once and retries. */
  async openStream(path: string, signal: AbortSignal): Promise<Response> {
    let token = await this.freshToken();
    let response = await this.fetchFn(path, { headers: authHeaders(token), signal, cache: "no-store" });
    if (response.status === 401) {
      await response.body?.cancel();
      await this.refresh();
      token = await this.freshToken();
      response = await this.fetchFn(path, { headers: authHeaders(token), signal, cache: "no-store" });
    }
    return response;
  }

  /** Before the browser wakes a throttled timer, a visible page refreshes a token that is close to lapsing. */
  refreshIfDue(): void {
    if (this.session && this.now() >= this.refreshAt(this.session)) void this.refresh().catch(() => undefined);
  }

  private async send<T>(method: string, path: string, body: unknown, auth: boolean): Promise<T> {
    if (!auth) return this.request<T>(method, path, body, null);
    try {
      return await this.request<T>(method, path, body, await this.freshToken());
    } catch (error) {
      if (!(error instanceof ApiError) || error.httpStatus !== 401) throw error;
      await this.refresh();
      return this.request<T>(method, path, body, await this.freshToken());
    }
  }

  private async request<T>(method: string, path: string, body: unknown, token: string | null): Promise<T> {
    const headers: Record<string, string> = token ? authHeaders(token) : {};
    if (body !== undefined) headers["content-type"] = "application/json";
    const response = await this.fetchFn(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
    const text = await response.text();
    const parsed: unknown = text ? JSON.parse(text) : {};
    if (!response.ok) throw new ApiError(response.status, asStatus(parsed) ?? fallbackStatus(response.status, text));
    return parsed as T;
  }

  private async freshToken(): Promise<string> {
    if (!this.session) throw new ApiError(401, { code: 16, message: "signed out", reason: "SIGNED_OUT" });
    if (this.now() >= this.session.accessExpiresAt - 5_000) await this.refresh();
    if (!this.session) throw new ApiError(401, { code: 16, message: "signed out", reason: "SIGNED_OUT" });
    return this.session.accessToken;
  }

  private async doRefresh(): Promise<void> {
    const session = this.session;
    if (!session) return;
    try {
      const body = await this.request<{ tokens: TokenPair }>(
        "POST",
        "/v1/auth:refresh",
        { refresh_token: session.refreshToken },
        null,
      );
      if (this.session !== session) return; // signed out (or in again) meanwhile
      this.store({ ...session, ...this.tokenFields(body.tokens) });
    } catch (error) {
      // A refused refresh token (revoked, expired, reused) ends the session; a network error keeps it and
      // the next attempt (timer, request or visibility change) tries again.
      if (error instanceof ApiError && error.httpStatus >= 400 && error.httpStatus < 500 && this.session === session) {
        this.store(null);
      }
      throw error;
    }
  }

  private refreshAt(session: Session): number {
    const lifetime = session.accessExpiresAt - (session.accessReceivedAt || session.accessExpiresAt - 600_000);
    return session.accessExpiresAt - Math.min(REFRESH_LEAD_MS, Math.max(0, lifetime) * 0.2);
  }

  private tokenFields(tokens: TokenPair): Omit<Session, "userId" | "email"> {
    return {
      accessToken: tokens.access_token,
      accessReceivedAt: this.now(),
      accessExpiresAt: Date.parse(tokens.access_token_expire_time),
      refreshToken: tokens.refresh_token,
      refreshExpiresAt: Date.parse(tokens.refresh_token_expire_time),
    };
  }

  private schedule(): void {
    clearTimeout(this.timer);
    if (!this.session) return;
    const delay = Math.max(1_000, this.refreshAt(this.session) - this.now());
    this.timer = setTimeout(() => {
      this.refresh().catch(() => {
        if (this.session) this.timer = setTimeout(() => this.schedule(), 5_000);
      });
    }, delay);
  }

  private store(session: Session | null): void {
    this.session = session;
    if (session) this.storage.setItem(STORAGE_KEY, JSON.stringify(session));
    else this.storage.removeItem(STORAGE_KEY);
    this.schedule();
    for (const listener of this.listeners) listener(session);
  }

  private load(): Session | null {
    const raw = this.storage.getItem(STORAGE_KEY);
    if (!raw) return null;
    try {
      const session = JSON.parse(raw) as Session;
      if (typeof session.refreshToken !== "string" || session.refreshExpiresAt <= this.now()) return null;
      return session;
    } catch {
      return null;
    }
  }
}

function authHeaders(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}

function fallbackStatus(httpStatus: number, text: string): RpcStatus {
  return { code: 2, message: text.slice(0, 200) || `HTTP ${httpStatus}`, reason: "" };
}
