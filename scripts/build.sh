#!/usr/bin/env bash
# Builds the npm package into pkg/ and copies it into www/pkg/ for the demo.
# The TypeScript API declarations (src/js/tideway.d.ts) reach pkg/tideway.d.ts
# through a typescript_custom_section.
set -euo pipefail
cd "$(dirname "$0")/.."

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
