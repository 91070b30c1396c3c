// The reference server (`tideway-server`, as `cargo build -p tideway-server` builds it)
// as a child process of a test: a free port, a SQLite database of its own, the tokens
// given and, optionally, a directory of static files served as the demo is served.
// Shared by the sync tests and the demo's end-to-end tests.

import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const SERVER_BIN =
  process.env.TIDEWAY_SERVER_BIN ?? join(process.env.CARGO_TARGET_DIR ?? join(REPO_ROOT, "target"), "debug/tideway-server");

/** How long a starting server may take to say where it listens. */
const STARTUP_LIMIT_MS = 30_000;

/**
 * Starts a server. `tokens` are `TOKEN:USER` pairs, `staticDir` is served under `/`,
 * `bin` is the server binary (the debug build by default), `flags` more of its flags.
 * `restart()` keeps the database and the port; `close()` also deletes the database.
 */
export async function startReferenceServer({
  tokens,
  staticDir,
  dir = mkdtempSync(join(tmpdir(), "tideway-server-")),
  bin = SERVER_BIN,
  flags = [],
}) {
  if (!existsSync(bin)) throw new Error(`${bin} is missing: build the server first (cargo build -p tideway-server)`);
  const args = ["--db", `sqlite://${join(dir, "server.db")}`, ...tokens.flatMap((token) => ["--token", token]), ...flags];
  if (staticDir) args.push("--static", staticDir);
  const server = { dir, url: null, process: null };

  server.start = async (listen = "127.0.0.1:0") => {
    const child = spawn(bin, ["--listen", listen, ...args], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, RUST_LOG: "warn" },
    });
    let stderr = "";
    child.stderr.on("data", (chunk) => (stderr += chunk));
    let timer;
    try {
      server.url = await new Promise((resolve, reject) => {
        let stdout = "";
        child.stdout.on("data", (chunk) => {
          stdout += chunk;
          const match = stdout.match(/listening on (http:\/\/\S+)/);
          if (match) resolve(match[1]);
        });
        child.on("exit", (code) => reject(new Error(`the server exited with ${code}: ${stderr}`)));
        timer = setTimeout(() => {
          child.kill("SIGKILL");
          reject(new Error(`the server did not say where it listens within ${STARTUP_LIMIT_MS} ms: ${stderr}`));
        }, STARTUP_LIMIT_MS);
      });
    } finally {
      clearTimeout(timer);
    }
    server.process = child;
  };
  server.stop = () =>
    new Promise((resolve) => {
      const child = server.process;
      if (!child || child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once("exit", resolve);
      child.kill("SIGKILL");
    });
  server.restart = async () => {
    const listen = new URL(server.url).host;
    await server.stop();
    await server.start(listen);
  };
  server.close = async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  /** Everything the server holds for `token`, pulled from the start as a fresh client would. */
  server.pullAll = async (token) => {
    const entities = [];
    let cursor = "";
    for (;;) {
      const response = await fetch(`${server.url}/v1/pull?limit=1000&cursor=${encodeURIComponent(cursor)}`, {
        headers: { authorization: `Bearer ${token}` },
      });
      if (!response.ok) throw new Error(`pull answered ${response.status}`);
      const page = await response.json();
      entities.push(...page.changes);
      cursor = page.cursor;
      if (!page.hasMore) return entities;
    }
  };
  await server.start();
  return server;
}
