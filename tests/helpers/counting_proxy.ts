/**
 * An HTTP proxy on 127.0.0.1 that forwards every request to `target` (e.g. the GCS emulator) and
 * records it, so a test can count the requests of one client: give each data-parallel rank its
 * own proxy as `STORAGE_EMULATOR_HOST` and each proxy's log holds that rank's requests alone.
 *
 * Bodies are forwarded whole; responses go back uncompressed (`accept-encoding: identity`
 * upstream) so no length or encoding header can disagree with the body.
 *
 * @example
 * ```ts
 * const proxy = startCountingProxy(emu.endpoint);
 * // ... run a client with STORAGE_EMULATOR_HOST=proxy.endpoint ...
 * proxy.requests.filter((r) => r.method === "GET").length;
 * await proxy.stop();
 * ```
 * @module
 */

/** One forwarded request. */
export interface ProxiedRequest {
  method: string;
  /** Path and query, e.g. `/storage/v1/b/bkt/o?prefix=run%2Fckpt-`. */
  path: string;
}

/** A running proxy. */
export interface CountingProxy {
  /** Base URL to hand to clients, e.g. `http://127.0.0.1:41235`. */
  endpoint: string;
  /** Every request received so far, in arrival order. */
  requests: ProxiedRequest[];
  /** Stop listening and wait for open requests to finish. */
  stop(): Promise<void>;
}

/**
 * Start a proxy to `target` (a base URL without trailing slash) on a free port.
 *
 * @example
 * ```ts
 * const p = startCountingProxy("http://127.0.0.1:9199");
 * await p.stop();
 * ```
 */
export function startCountingProxy(target: string): CountingProxy {
  const requests: ProxiedRequest[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req) => {
      const url = new URL(req.url);
      const path = url.pathname + url.search;
      requests.push({ method: req.method, path });
      const headers = new Headers(req.headers);
      headers.delete("host");
      headers.set("accept-encoding", "identity");
      const hasBody = req.method !== "GET" && req.method !== "HEAD";
      const up = await fetch(target + path, {
        method: req.method,
        headers,
        body: hasBody ? await req.arrayBuffer() : undefined,
        redirect: "manual",
      });
      const back = new Headers(up.headers);
      for (const h of ["content-encoding", "content-length", "transfer-encoding"]) back.delete(h);
      return new Response(up.body, { status: up.status, statusText: up.statusText, headers: back });
    },
  );
  return {
    endpoint: `http://127.0.0.1:${server.addr.port}`,
    requests,
    stop: () => server.shutdown(),
  };
}
