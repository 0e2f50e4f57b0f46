import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ApiError, Client } from "../src/client";

class MemoryStorage implements Storage {
  private map = new Map<string, string>();
  get length(): number {
    return this.map.size;
  }
  clear(): void {
    this.map.clear();
  }
  getItem(key: string): string | null {
    return this.map.get(key) ?? null;
  }
  key(index: number): string | null {
    return [...this.map.keys()][index] ?? null;
  }
  removeItem(key: string): void {
    this.map.delete(key);
  }
  setItem(key: string, value: string): void {
    this.map.set(key, value);
  }
}

const T0 = Date.parse("2026-11-25T12:00:00Z");
const iso = (ms: number): string => new Date(ms).toISOString();

/** A gateway double: logins and refreshes issue numbered tokens valid for ten minutes. */
class Gateway {
  issued = 0;
  refreshes = 0;
  refuseRefresh = false;
  valid = new Set<string>();
  calls: { path: string; auth: string | null }[] = [];

  fetch = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const path = String(input);
    const auth = new Headers(init?.headers).get("authorization");
    this.calls.push({ path, auth });
    if (path === "/v1/auth:login") return this.tokens({ user_id: "u1" });
    if (path === "/v1/auth:refresh") {
      this.refreshes++;
      if (this.refuseRefresh) return json(401, { code: 16, message: "refresh token revoked", details: [{ reason: "REFRESH_TOKEN_INVALID" }] });
      return this.tokens({});
    }
    if (auth && this.valid.has(auth.slice(7))) return json(200, { ok: true });
    return json(401, { code: 401, message: "Jwt is expired", reason: "jwt_authn_access_denied" });
  };

  private tokens(extra: object): Response {
    this.issued++;
    const access = `access-${this.issued}`;
    this.valid.add(access);
    return json(200, {
      ...extra,
      tokens: {
        access_token: access,
        token_type: "Bearer",
        access_token_expire_time: iso(Date.now() + 600_000),
        refresh_token: `refresh-${this.issued}`,
        refresh_token_expire_time: iso(Date.now() + 14 * 86_400_000),
      },
    });
  }
}

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
}

describe("Client", () => {
  let gateway: Gateway;
  let storage: MemoryStorage;

  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(T0);
    gateway = new Gateway();
    storage = new MemoryStorage();
  });

  afterEach(() => {
    vi.useRealTimers();
  });

  it("refreshes the access token a minute before it expires", async () => {
    const client = new Client(storage, gateway.fetch);
    await client.signIn("me@example.com", "pw");
    expect(client.current?.accessToken).toBe("access-1");
    await vi.advanceTimersByTimeAsync(538_000);
    expect(gateway.refreshes).toBe(0);
    await vi.advanceTimersByTimeAsync(3_000);
    expect(gateway.refreshes).toBe(1);
    expect(client.current?.accessToken).toBe("access-2");
    expect(client.current?.refreshToken).toBe("refresh-2");
  });

  it("refreshes a short-lived token at 80 % of its lifetime", async () => {
    const client = new Client(storage, gateway.fetch);
    await client.signIn("me@example.com", "pw");
    const session = client.current!;
    storage.setItem("tastyplat.session", JSON.stringify({ ...session, accessExpiresAt: Date.now() + 30_000 }));
    new Client(storage, gateway.fetch); // a reload with a 30 s token
    await vi.advanceTimersByTimeAsync(23_000);
    expect(gateway.refreshes).toBe(0);
    await vi.advanceTimersByTimeAsync(2_000);
    expect(gateway.refreshes).toBe(1);
  });

  it("keeps the session across a reload through storage", async () => {
    const first = new Client(storage, gateway.fetch);
    await first.signIn("me@example.com", "pw");
    const reloaded = new Client(storage, gateway.fetch);
    expect(reloaded.current?.email).toBe("me@example.com");
    await expect(reloaded.call("GET", "/v1/accounts")).resolves.toEqual({ ok: true });
  });

  it("retries a call once after a 401 with a refreshed token", async () => {
    const client = new Client(storage, gateway.fetch);
    await client.signIn("me@example.com", "pw");
    gateway.valid.clear(); // e.g. the signing key rotated
    await expect(client.call("GET", "/v1/accounts")).resolves.toEqual({ ok: true });
    expect(gateway.calls.map((c) => c.path)).toEqual(["/v1/auth:login", "/v1/accounts", "/v1/auth:refresh", "/v1/accounts"]);
    expect(gateway.calls[3].auth).toBe("Bearer access-2");
  });

  it("shares one refresh between concurrent callers", async () => {
    const client = new Client(storage, gateway.fetch);
    await client.signIn("me@example.com", "pw");
    gateway.valid.clear();
    await Promise.all([client.call("GET", "/a"), client.call("GET", "/b"), client.call("GET", "/c")]);
    expect(gateway.refreshes).toBe(1);
  });

  it("signs out when the refresh token is refused", async () => {
    const client = new Client(storage, gateway.fetch);
    const seen: (string | null)[] = [];
    client.onSession((s) => seen.push(s ? s.accessToken : null));
    await client.signIn("me@example.com", "pw");
    gateway.refuseRefresh = true;
    gateway.valid.clear();
    await expect(client.call("GET", "/v1/accounts")).rejects.toBeInstanceOf(ApiError);
    expect(client.current).toBeNull();
    expect(storage.getItem("tastyplat.session")).toBeNull();
    expect(seen).toEqual(["access-1", null]);
  });

  it("sign-out forgets the session and revokes the refresh token", async () => {
    const client = new Client(storage, gateway.fetch);
    await client.signIn("me@example.com", "pw");
    await client.signOut();
    expect(client.current).toBeNull();
    expect(gateway.calls.at(-1)?.path).toBe("/v1/auth:logout");
    expect(new Client(storage, gateway.fetch).current).toBeNull();
  });

  it("sends every request to a relative path on the page's origin", async () => {
    const client = new Client(storage, gateway.fetch);
    await client.signIn("me@example.com", "pw");
    await client.call("GET", "/v1/accounts");
    expect(gateway.calls.every((c) => c.path.startsWith("/") && !c.path.startsWith("//"))).toBe(true);
  });
});
