// A forward HTTP proxy for the browser that runs the wasm suites: it sends every
// request on to its loopback server on a connection of its own, closed once answered.
//
// wasm-bindgen-test-runner's HTTP server (tiny_http, through rouille) serves each
// keep-alive connection as one task of a thread pool, and can queue a new connection
// behind one that stays open: a browser that opens several connections at once (a
// service worker fetching its module imports) then waits for ever on one of them.
// With one request per connection, no task outlives its request, so nothing waits
// longer than the request before it. See docs/compatibility.md.
//
// Usage: node one-request-per-connection.mjs   (prints the port it listens on)
import http from "node:http";

// Loopback hosts: localhost, ::1 and all of 127.0.0.0/8 (WebKit visits the runner
// on 127.0.0.2, see scripts/test.sh).
const isLoopback = (host) => host === "localhost" || host === "[::1]" || /^127(\.\d{1,3}){3}$/.test(host);
const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection"]);

const proxy = http.createServer((request, response) => {
  let target;
  try {
    target = new URL(request.url);
  } catch {
    target = null;
  }
  // Only the test servers on this machine are reached: the browser's own
  // background requests go nowhere, as they would offline.
  if (!target || target.protocol !== "http:" || !isLoopback(target.hostname)) {
    response.destroy();
    return;
  }
  const headers = Object.fromEntries(
    Object.entries(request.headers).filter(([name]) => !HOP_BY_HOP.has(name)),
  );
  const upstream = http.request(
    target,
    { method: request.method, headers: { ...headers, connection: "close" }, agent: false },
    (answer) => {
      const answerHeaders = Object.fromEntries(
        Object.entries(answer.headers).filter(([name]) => !HOP_BY_HOP.has(name)),
      );
      response.writeHead(answer.statusCode, answer.statusMessage, answerHeaders);
      answer.pipe(response);
    },
  );
  // A server that is not there is a failed connection for the browser too.
  upstream.on("error", () => response.destroy());
  response.on("close", () => upstream.destroy());
  request.pipe(upstream);
});

proxy.listen(0, "127.0.0.1", () => console.log(proxy.address().port));
