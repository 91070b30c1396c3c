// A small static file server for the benchmark: no dependencies, correct MIME types
// (browsers refuse wasm streaming and module scripts without them), no HTTP caching, so
// a rebuilt pkg/ is always what the page gets, and the headers the benchmark needs for
// cross-origin isolation. (The demo's end-to-end tests use the reference server, as
// users do: a stand-in server hid that its `Vary` header broke the offline reload.)
//
//   import { startStaticServer } from "./static-server.mjs";
//   const server = await startStaticServer({ mounts: [["/", "www"]] });
//   ... server.url ...
//   await server.close();
//
// Also usable by hand: `node bench/static-server.mjs [dir=www] [port=8080]`.

import { createServer } from "node:http";
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { extname, join, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

const MIME_TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".webmanifest": "application/manifest+json; charset=utf-8",
  ".wasm": "application/wasm",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".map": "application/json; charset=utf-8",
  ".ts": "text/plain; charset=utf-8",
  ".txt": "text/plain; charset=utf-8",
  ".md": "text/plain; charset=utf-8",
};

/**
 * Starts serving. `mounts` maps URL prefixes to directories, longest prefix first wins;
 * `root` is a shorthand for `[["/", root]]`. `port: 0` picks a free port. `headers` are
 * added to every file response (the benchmark uses them for cross-origin isolation).
 */
export async function startStaticServer({ root, mounts, port = 0, host = "127.0.0.1", headers = {} } = {}) {
  const table = (mounts ?? [["/", root ?? "www"]])
    .map(([prefix, dir]) => [prefix.endsWith("/") ? prefix : prefix + "/", resolve(dir)])
    .sort((a, b) => b[0].length - a[0].length);

  const server = createServer((req, res) => {
    serve(table, headers, req, res).catch((err) => {
      if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
      res.end(String(err));
    });
  });
  await new Promise((ok, fail) => {
    server.once("error", fail);
    server.listen(port, host, ok);
  });
  const actualPort = server.address().port;
  return {
    port: actualPort,
    url: `http://${host}:${actualPort}/`,
    /** Stops at once, dropping kept-alive connections (so an "offline" test really is). */
    close() {
      return new Promise((ok) => {
        server.close(() => ok());
        server.closeAllConnections();
      });
    },
  };
}

async function serve(table, headers, req, res) {
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.writeHead(405, { allow: "GET, HEAD" });
    return res.end();
  }
  let pathname;
  try {
    pathname = decodeURIComponent(new URL(req.url, "http://x").pathname);
  } catch {
    res.writeHead(400);
    return res.end();
  }
  const mount = table.find(([prefix]) => pathname.startsWith(prefix) || pathname + "/" === prefix);
  if (!mount) return notFound(res);
  const [prefix, dir] = mount;
  let file = resolve(join(dir, pathname.slice(prefix.length)));
  if (file !== dir && !file.startsWith(dir + sep)) return notFound(res); // no escaping the mount

  let info = await stat(file).catch(() => null);
  if (info?.isDirectory()) {
    if (!pathname.endsWith("/")) {
      res.writeHead(301, { location: pathname + "/" });
      return res.end();
    }
    file = join(file, "index.html");
    info = await stat(file).catch(() => null);
  }
  if (!info?.isFile()) return notFound(res);

  res.writeHead(200, {
    "content-type": MIME_TYPES[extname(file).toLowerCase()] ?? "application/octet-stream",
    "content-length": info.size,
    "cache-control": "no-cache",
    ...headers,
  });
  if (req.method === "HEAD") return res.end();
  createReadStream(file).pipe(res);
}

function notFound(res) {
  res.writeHead(404, { "content-type": "text/plain; charset=utf-8" });
  res.end("not found");
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [dir = "www", port = "8080"] = process.argv.slice(2);
  const server = await startStaticServer({ root: dir, port: Number(port) });
  console.log(`serving ${resolve(dir)} at ${server.url}`);
}
