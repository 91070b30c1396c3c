#!/usr/bin/env bash
# Builds the library for the browser.
#
#   bash scripts/build.sh [--release|--dev]   the npm package into pkg/ (wasm-pack), and a
#                                             copy for the demo app in www/pkg/
#   bash scripts/build.sh demo                only www/pkg/, with cargo and wasm-bindgen
#                                             (the same JS and wasm, without wasm-pack)
#
# The TypeScript API declarations (src/js/tideway.d.ts) reach tideway.d.ts through a
# typescript_custom_section. www/pkg/files.json lists the package's JS and wasm files,
# which the demo's service worker caches when it installs (wasm-bindgen names the
# directory of the library's own JS after a hash of the build).
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
  # The service-worker entry point, as the package ships it.
  cp src/contexts/service-worker.js src/contexts/service-worker.d.ts www/pkg/
else
  profile=${1:---release}
  rm -rf pkg
  wasm-pack build --target web --out-dir pkg --out-name tideway --mode no-install "$profile"
  # The service-worker entry point ships beside the glue it imports, as the
  # package's `tideway/service-worker` subpath.
  cp src/contexts/service-worker.js src/contexts/service-worker.d.ts pkg/
  node -e '
    const fs = require("fs");
    const manifest = JSON.parse(fs.readFileSync("pkg/package.json", "utf8"));
    manifest.files = [...new Set([...(manifest.files ?? []), "service-worker.js", "service-worker.d.ts"])];
    manifest.exports = {
      ".": { types: "./tideway.d.ts", default: "./tideway.js" },
      "./service-worker": { types: "./service-worker.d.ts", default: "./service-worker.js" },
      "./tideway_bg.wasm": "./tideway_bg.wasm",
    };
    fs.writeFileSync("pkg/package.json", JSON.stringify(manifest, null, 2) + "\n");
  '
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
