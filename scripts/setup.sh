#!/usr/bin/env bash
# Installs what building and testing Tideway needs, skipping whatever is already there.
#
#   bash scripts/setup.sh demo   what the demo needs: the wasm32 target and wasm-bindgen-cli
#                                (at the exact version in Cargo.lock)
#   bash scripts/setup.sh test   (the default) all of that, plus what the test suites and
#                                the npm package need: wasm-pack, geckodriver, Chromium,
#                                Firefox ESR and WebKitGTK with their drivers, Xvfb,
#                                PostgreSQL, the npm packages
set -euo pipefail
cd "$(dirname "$0")/.."

purpose=${1:-test}
case $purpose in
  demo | test) ;;
  *) echo "usage: bash scripts/setup.sh [demo|test]" >&2; exit 2 ;;
esac

say() { printf '\n==> %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

# wasm-bindgen-cli must match the wasm-bindgen crate exactly: the generated JS and the
# wasm module's imports change between versions.
bindgen_version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$bindgen_version" ]; then
  say "installing wasm-bindgen-cli $bindgen_version (about 5 minutes)"
  cargo install wasm-bindgen-cli --version "$bindgen_version"
fi

[ "$purpose" = demo ] && exit 0

if ! command -v wasm-pack >/dev/null; then
  say "installing wasm-pack (about 4 minutes)"
  cargo install wasm-pack
fi

if ! command -v geckodriver >/dev/null && [ ! -x "$HOME/.cargo/bin/geckodriver" ]; then
  say "installing geckodriver (about 3 minutes)"
  cargo install geckodriver
fi

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
[ -x /usr/bin/firefox-esr ] || missing+=(firefox-esr)
[ -x /usr/bin/WebKitWebDriver ] || missing+=(webkit2gtk-driver)
command -v xvfb-run >/dev/null || missing+=(xvfb)
[ -x /usr/lib/postgresql/15/bin/initdb ] || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]} from Debian packages"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm packages"
  npm ci --no-audit --no-fund
fi
