#!/usr/bin/env bash
# Builds the library for the browser.
#
#   bash scripts/build.sh [--release|--dev]   the npm package into pkg/ (wasm-pack), and a
#                                             copy for the demo app in www/pkg/
#   bash scripts/build.sh demo                only www/pkg/, with cargo and wasm-bindgen
#                                             (the same JS and wasm, without wasm-pack)
#
# The TypeScript API declarations (src/js/tideway.d.ts) reach tideway.d.ts through a
# typescript_custom_section. The package's entry points are plain JS beside the
# generated glue: index.js (the main entry, which loads the wasm module on first use),
# service-worker.js, and the framework adapters of src/frameworks/ (react.js, svelte.js,
# vue.js).
# www/pkg/files.json lists the package's JS and wasm files, which the demo's service
# worker caches when it installs (wasm-bindgen names the directory of the library's
# own JS after a hash of the build).
set -euo pipefail
cd "$(dirname "$0")/.."

target_dir=${CARGO_TARGET_DIR:-target}
# wasm-pack runs the wasm-opt it finds first on PATH: binaryen's from npm (see Cargo.toml).
export PATH="$PWD/node_modules/.bin:$PATH"
if [ "${1:-}" != demo ] && [ "${1:-}" != --dev ] && ! command -v wasm-opt >/dev/null; then
  echo "wasm-opt is missing: run npm install (the binaryen package provides it)" >&2
  exit 1
fi

if [ "${1:-}" = demo ]; then
  cargo build --lib --release --target wasm32-unknown-unknown
  rm -rf www/pkg
  wasm-bindgen --target web --out-dir www/pkg --out-name tideway \
    "$target_dir/wasm32-unknown-unknown/release/tideway.wasm"
  # The entry points, as the package ships them.
  cp src/js/index.js src/js/index.d.ts src/contexts/service-worker.js src/contexts/service-worker.d.ts src/frameworks/* \
    src/inspector/* www/pkg/
else
  profile=${1:---release}
  rm -rf pkg
  wasm-pack build --target web --out-dir pkg --out-name tideway --mode no-install "$profile"
  # The entry points ship beside the glue they import: the main entry, the
  # `tideway/service-worker` subpath, one subpath per framework adapter and
  # the `<tideway-inspector>` element.
  entries=(src/js/index.js src/js/index.d.ts src/contexts/service-worker.js src/contexts/service-worker.d.ts src/frameworks/*
    src/inspector/*)
  cp "${entries[@]}" pkg/
  node -e '
    const fs = require("fs");
    const path = require("path");
    const manifest = JSON.parse(fs.readFileSync("pkg/package.json", "utf8"));
    const entries = process.argv.slice(1).map((file) => path.basename(file));
    manifest.files = [...new Set([...(manifest.files ?? []), ...entries])];
    manifest.main = manifest.module = "index.js";
    manifest.types = "index.d.ts";
    // index.js patches Tideway.open when it runs, and importing the inspector
    // defines <tideway-inspector>: a bundler must never skip either.
    manifest.sideEffects = [...new Set([...(manifest.sideEffects ?? []), "./index.js", "./inspector.js"])];
    const entry = (name) => ({ types: `./${name}.d.ts`, default: `./${name}.js` });
    manifest.exports = {
      ".": entry("index"),
      "./service-worker": entry("service-worker"),
      "./react": entry("react"),
      "./svelte": entry("svelte"),
      "./vue": entry("vue"),
      "./inspector": entry("inspector"),
      "./tideway_bg.wasm": "./tideway_bg.wasm",
    };
    manifest.peerDependencies = { react: ">=18", vue: ">=3.3" };
    manifest.peerDependenciesMeta = { react: { optional: true }, vue: { optional: true } };
    fs.writeFileSync("pkg/package.json", JSON.stringify(manifest, null, 2) + "\n");
  ' "${entries[@]}"
  rm -rf www/pkg
  cp -r pkg www/pkg
fi

node -e '
  const fs = require("fs");
  const files = fs.readdirSync("www/pkg", { recursive: true })
    .map((file) => file.split(require("path").sep).join("/"))
    .filter((file) => /\.(js|wasm)$/.test(file))
    .sort()
    .map((file) => `./pkg/${file}`);
  fs.writeFileSync("www/pkg/files.json", JSON.stringify(files, null, 2) + "\n");
'
