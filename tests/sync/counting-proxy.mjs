// A proxy in front of the reference server for tests that must see what reaches the
// server: it records every API request (`/v1/...`) it receives, and can answer them
// itself as a struggling server would (say 503 with `Retry-After`) instead of passing
// them on. Pages load through it, so the API is on their own origin.
//
// For the chaos test it can also break API exchanges on purpose (`proxy.fault`) and
// show each exchange the server answered, bodies included (`proxy.observe`).

import { createServer, request as forward } from "node:http";
import { gunzipSync } from "node:zlib";

/**
 * What `proxy.fault(request)` may return for an API request (`{ method, path, encoding, body }`,
 * `encoding` being its body's `Content-Encoding` or null, `body` its text, decompressed), or
 * null to pass it on untouched:
 * - `{ kind: "dropRequest" }`: the connection is cut before the server sees the request;
 * - `{ kind: "dropResponse" }`: the server answers (and applies the request), then the
 *   connection is cut before the client reads the answer;
 * - `{ kind: "delay", ms }`: passed on after `ms`;
 * - `{ kind: "status", status, retryAfterSeconds? }`: answered by the proxy with that
 *   status and a protocol error body, without reaching the server;
 * - `{ kind: "html" }`: answered 502 with an HTML error page, as a gateway would;
 * - `{ kind: "truncate" }`: the server answers, the client gets its status and half its body;
 * - `{ kind: "answer", status, contentType, headers, body, afterServer }`: the client gets
 *   this answer instead of the server's; with `afterServer`, the server got (and applied) the request;
 * - `{ kind: "rewrite", rewrite }`: the server answers, the client gets `rewrite(answer)` of
 *   the answer's JSON instead, as JSON.
 */
export const FAULT_KINDS = ["dropRequest", "dropResponse", "delay", "status", "html", "truncate", "answer", "rewrite"];

/**
 * Starts a proxy to `targetUrl`. Set `proxy.unavailable = { retryAfterSeconds }` to refuse
 * the API, `proxy.fault` to break some exchanges (see FAULT_KINDS), `proxy.observe` to see
 * `{ method, path, requestBody, status, responseBody }` of each exchange the server answered
 * (a gzipped request body decompressed). `proxy.requests` lists the API requests received:
 * `{ method, path, at, refused, encoding, bytes }`, `bytes` being the body's size as sent
 * where the request was read whole (with `fault` or `observe` set).
 */
export async function startCountingProxy(targetUrl) {
  const target = new URL(targetUrl);
  const proxy = { url: null, requests: [], unavailable: null, fault: null, observe: null };

  /** A request body's text, decompressed where it came gzipped (null where it does not decompress). */
  const bodyText = (body, encoding) => {
    try {
      return (encoding === "gzip" ? gunzipSync(body) : body).toString("utf8");
    } catch {
      return null;
    }
  };

  const passOn = (request, response, body, fault) => {
    const reads = Boolean(fault) || Boolean(proxy.observe && body);
    const asked = { ...request.headers, host: target.host };
    // An answer the proxy reads or cuts is asked for as plain JSON: the server would
    // otherwise compress it for the browser, and half a body would not be half the JSON.
    if (reads) asked["accept-encoding"] = "identity";
    const upstream = forward(
      { host: target.hostname, port: target.port, method: request.method, path: request.url, headers: asked },
      (answer) => {
        if (!reads) {
          response.writeHead(answer.statusCode, answer.headers);
          answer.pipe(response);
          return;
        }
        const chunks = [];
        answer.on("data", (chunk) => chunks.push(chunk));
        answer.on("end", () => {
          const answerBody = Buffer.concat(chunks);
          proxy.observe?.({
            method: request.method,
            path: request.url.split("?")[0],
            requestBody: bodyText(body, request.headers["content-encoding"]),
            status: answer.statusCode,
            responseBody: answerBody.toString("utf8"),
          });
          if (fault?.kind === "dropResponse") return request.socket.destroy();
          if (fault?.kind === "answer") return answerWith(response, fault);
          if (fault?.kind === "rewrite") {
            const body = JSON.stringify(fault.rewrite(JSON.parse(answerBody.toString("utf8"))));
            return answerWith(response, { status: answer.statusCode, body });
          }
          const headers = { ...answer.headers };
          delete headers["content-length"];
          delete headers["transfer-encoding"];
          const sent = fault?.kind === "truncate" ? answerBody.subarray(0, Math.floor(answerBody.length / 2)) : answerBody;
          response.writeHead(answer.statusCode, { ...headers, "content-length": sent.length });
          response.end(sent);
        });
      },
    );
    upstream.on("error", (error) => {
      if (!response.headersSent) response.writeHead(502, { "content-type": "text/plain" });
      response.end(`the proxy could not reach the server: ${error.message}`);
    });
    if (body) upstream.end(body);
    else request.pipe(upstream);
  };

  const answerWith = (response, { status, contentType = "application/json", headers = {}, body }) => {
    response.writeHead(status, { "content-type": contentType, ...headers });
    response.end(body);
  };

  const server = createServer((request, response) => {
    const path = request.url.split("?")[0];
    const api = path.startsWith("/v1/");
    const encoding = request.headers["content-encoding"] ?? null;
    const received = { method: request.method, path, at: Date.now(), refused: Boolean(proxy.unavailable), encoding, bytes: null };
    if (api) proxy.requests.push(received);
    if (api && proxy.unavailable) {
      request.resume();
      response.writeHead(503, {
        "content-type": "application/json",
        "retry-after": String(proxy.unavailable.retryAfterSeconds),
      });
      response.end(JSON.stringify({ error: { code: "unavailable", message: "the proxy plays a server in trouble" } }));
      return;
    }
    if (!api || (!proxy.fault && !proxy.observe)) return passOn(request, response, null, null);
    // Read the whole request first: a fault decides on it, and observers see it.
    const chunks = [];
    request.on("data", (chunk) => chunks.push(chunk));
    request.on("end", () => {
      const body = Buffer.concat(chunks);
      received.bytes = body.length;
      const fault = proxy.fault?.({ method: request.method, path, encoding, body: bodyText(body, encoding) }) ?? null;
      switch (fault?.kind) {
        case undefined:
        case "dropResponse":
        case "truncate":
        case "rewrite":
          return passOn(request, response, body, fault);
        case "answer":
          return fault.afterServer ? passOn(request, response, body, fault) : answerWith(response, fault);
        case "dropRequest":
          return request.socket.destroy();
        case "delay":
          return setTimeout(() => passOn(request, response, body, null), fault.ms);
        case "status": {
          const headers = { "content-type": "application/json" };
          if (fault.retryAfterSeconds !== undefined) headers["retry-after"] = String(fault.retryAfterSeconds);
          response.writeHead(fault.status, headers);
          const code = { 429: "too_many_requests", 500: "internal" }[fault.status] ?? "unavailable";
          return response.end(JSON.stringify({ error: { code, message: `the proxy answers ${fault.status}` } }));
        }
        case "html":
          response.writeHead(502, { "content-type": "text/html" });
          return response.end("<!doctype html><title>502 Bad Gateway</title><h1>Bad Gateway</h1>");
        default:
          throw new Error(`unknown fault ${JSON.stringify(fault)}`);
      }
    });
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
