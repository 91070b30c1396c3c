#!/usr/bin/env bash
# Builds the library for the browser.
#
#   bash scripts/build.sh [--release|--dev]   the npm package into pkg/ (wasm-pack), and a
#                                             copy for the demo app in www/pkg/
#   bash scripts/build.sh demo                only www/pkg/, with cargo and wasm-bindgen
#                                             (the same JS and wasm, without wasm-pack)
#   bash scripts/build.sh faults              the package with the test hooks of the
#                                             fault-injection feature, unoptimised, into
#                                             target/pkg-faults/ (for the tests only)
#
# The TypeScript API declarations (src/js/tideway.d.ts) reach tideway.d.ts through a
# typescript_custom_section. The package's entry points are plain JS beside the
# generated glue: index.js (the main entry, which loads the wasm module on first use),
# service-worker.js, and the framework adapters of src/frameworks/ (react.js, svelte.js,
# vue.js).
# www/pkg/files.json lists the package's JS and wasm files, which the demo's service
# worker caches when it installs (wasm-bindgen names the directory of the library's
# own JS after a hash of the build). Beside the wasm module go its brotli and gzip
# forms, which the reference server sends in its place (`--static`) to browsers
# that accept them.
set -euo pipefail
cd "$(dirname "$0")/.."

target_dir=${CARGO_TARGET_DIR:-target}
# wasm-pack runs the wasm-opt it finds first on PATH: binaryen's from npm (see Cargo.toml).
export PATH="$PWD/node_modules/.bin:$PATH"
case "${1:-}" in demo | --dev | faults) ;; *) needs_wasm_opt=1 ;; esac
if [ -n "${needs_wasm_opt:-}" ] && ! command -v wasm-opt >/dev/null; then
  echo "wasm-opt is missing: run npm install (the binaryen package provides it)" >&2
  exit 1
fi

# The demo's copy of the package lists its JS and wasm files in www/pkg/files.json.
list_demo_files() {
  node -e '
    const fs = require("fs");
    const files = fs.readdirSync("www/pkg", { recursive: true })
      .map((file) => file.split(require("path").sep).join("/"))
      .filter((file) => /\.(js|wasm)$/.test(file))
      .sort()
      .map((file) => `./pkg/${file}`);
    fs.writeFileSync("www/pkg/files.json", JSON.stringify(files, null, 2) + "\n");
  '
}

# The demo's wasm module compressed once at the best quality, as FILE.br and FILE.gz.
precompress_demo_module() {
  node -e '
    const fs = require("fs");
    const zlib = require("zlib");
    const file = "www/pkg/tideway_bg.wasm";
    const bytes = fs.readFileSync(file);
    const { BROTLI_PARAM_QUALITY, BROTLI_MAX_QUALITY, BROTLI_PARAM_SIZE_HINT } = zlib.constants;
    const params = { [BROTLI_PARAM_QUALITY]: BROTLI_MAX_QUALITY, [BROTLI_PARAM_SIZE_HINT]: bytes.length };
    fs.writeFileSync(`${file}.br`, zlib.brotliCompressSync(bytes, { params }));
    fs.writeFileSync(`${file}.gz`, zlib.gzipSync(bytes, { level: 9 }));
  '
}

if [ "${1:-}" = demo ]; then
  cargo build --lib --release --target wasm32-unknown-unknown
  rm -rf www/pkg
  wasm-bindgen --target web --out-dir www/pkg --out-name tideway \
    "$target_dir/wasm32-unknown-unknown/release/tideway.wasm"
  # The entry points, as the package ships them.
  cp src/js/index.js src/js/index.d.ts src/contexts/service-worker.js src/contexts/service-worker.d.ts src/frameworks/* \
    src/inspector/* www/pkg/
  list_demo_files
  precompress_demo_module
  exit 0
fi

# package DIR WASM-PACK-ARGS...: the npm package, built into DIR.
package() {
  local dir=$1
  shift
  rm -rf "$dir"
  wasm-pack build --target web --out-dir "$dir" --out-name tideway --mode no-install "$@"
  # The entry points ship beside the glue they import: the main entry, the
  # `tideway/service-worker` subpath, one subpath per framework adapter and
  # the `<tideway-inspector>` element.
  local entries=(src/js/index.js src/js/index.d.ts src/contexts/service-worker.js src/contexts/service-worker.d.ts
    src/frameworks/* src/inspector/*)
  cp "${entries[@]}" "$dir/"
  node -e '
    const fs = require("fs");
    const path = require("path");
    const file = path.join(process.argv[1], "package.json");
    const manifest = JSON.parse(fs.readFileSync(file, "utf8"));
    const entries = process.argv.slice(2).map((file) => path.basename(file));
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
    fs.writeFileSync(file, JSON.stringify(manifest, null, 2) + "\n");
  ' "$dir" "${entries[@]}"
}

if [ "${1:-}" = faults ]; then
  case $target_dir in /*) ;; *) target_dir=$PWD/$target_dir ;; esac
  package "$target_dir/pkg-faults" --dev -- --features fault-injection
  exit 0
fi
package pkg "${1:---release}"
rm -rf www/pkg
cp -r pkg www/pkg
list_demo_files
precompress_demo_module
