// A proxy in front of the reference server for tests that must see what reaches the
// server: it records every API request (`/v1/...`) it receives, and can answer them
// itself as a struggling server would (say 503 with `Retry-After`) instead of passing
// them on. Pages load through it, so the API is on their own origin.

import { createServer, request as forward } from "node:http";

/** Starts a proxy to `targetUrl`. Set `proxy.unavailable = { retryAfterSeconds }` to refuse the API. */
export async function startCountingProxy(targetUrl) {
  const target = new URL(targetUrl);
  const proxy = { url: null, requests: [], unavailable: null };

  const server = createServer((request, response) => {
    const path = request.url.split("?")[0];
    const api = path.startsWith("/v1/");
    if (api) proxy.requests.push({ method: request.method, path, at: Date.now(), refused: Boolean(proxy.unavailable) });
    if (api && proxy.unavailable) {
      request.resume();
      response.writeHead(503, {
        "content-type": "application/json",
        "retry-after": String(proxy.unavailable.retryAfterSeconds),
      });
      response.end(JSON.stringify({ error: { code: "unavailable", message: "the proxy plays a server in trouble" } }));
      return;
    }
    const upstream = forward(
      { host: target.hostname, port: target.port, method: request.method, path: request.url, headers: { ...request.headers, host: target.host } },
      (answer) => {
        response.writeHead(answer.statusCode, answer.headers);
        answer.pipe(response);
      },
    );
    upstream.on("error", (error) => {
      if (!response.headersSent) response.writeHead(502, { "content-type": "text/plain" });
      response.end(`the proxy could not reach the server: ${error.message}`);
    });
    request.pipe(upstream);
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  proxy.url = `http://127.0.0.1:${server.address().port}`;

  /** API requests received since `since` (a time from `Date.now()`), by path. */
  proxy.apiRequestsSince = (since) => proxy.requests.filter((r) => r.at >= since);
  proxy.close = () =>
    new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  return proxy;
}
