#!/usr/bin/env bash
# Builds the npm package into pkg/ and copies it into www/pkg/ for the demo.
# The TypeScript API declarations (src/js/tideway.d.ts) reach pkg/tideway.d.ts
# through a typescript_custom_section.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=${1:---release}
rm -rf pkg
wasm-pack build --target web --out-dir pkg --out-name tideway --mode no-install "$profile"
rm -rf www/pkg
cp -r pkg www/pkg
