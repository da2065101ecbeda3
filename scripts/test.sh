#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need, checks
# formatting and lints, then runs every test (unit, store, and end-to-end against the
# real binary on 127.0.0.1).
set -euo pipefail
cd "$(dirname "$0")/.."

# Toolchain components the checks use.
cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
cargo clippy --version >/dev/null 2>&1 || rustup component add clippy

# The npm proxy's end-to-end tests drive the real clients: npm (with Node.js) and pnpm.
if ! command -v npm >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq nodejs npm
fi
if ! command -v pnpm >/dev/null 2>&1; then
  npm install --global --no-audit --no-fund pnpm@10
fi
# The build cache's end-to-end tests drive the real turbo (and turbo hashes git-tracked files).
if ! command -v turbo >/dev/null 2>&1; then
  npm install --global --no-audit --no-fund turbo@2
fi
command -v git >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq git; }
# The shared tier's tests run a real Redis (Debian's redis-server) and a real S3-compatible
# server (moto, from PyPI, in a git-ignored virtualenv unless one is on PATH already).
command -v redis-server >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq redis-server; }
# The CDN purge tests put a real Varnish (Debian's varnish; varnishd lives in /usr/sbin) in
# front of the server and purge through it.
PATH="$PATH:/usr/sbin"
command -v varnishd >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq varnish; }
if [[ -z "${TIERCACHE_MOTO_SERVER:-}" ]]; then
  if command -v moto_server >/dev/null 2>&1; then
    TIERCACHE_MOTO_SERVER="$(command -v moto_server)"
  else
    [[ -x .tools/s3-venv/bin/moto_server ]] || {
      python3 -m venv .tools/s3-venv
      .tools/s3-venv/bin/pip install -q 'moto[server]==5.2.5'
    }
    TIERCACHE_MOTO_SERVER="$PWD/.tools/s3-venv/bin/moto_server"
  fi
  export TIERCACHE_MOTO_SERVER
fi
# The secret detector's accuracy test scans real npm tarballs (a fixed list, exact versions),
# fetched once with the npm client's own configured registry into a git-ignored directory.
corpus=.tools/npm-corpus
mkdir -p "$corpus"
missing=()
while read -r spec; do
  [[ -z "$spec" || "$spec" == \#* ]] && continue
  name="${spec%@*}"
  name="${name#@}"
  [[ -f "$corpus/${name//\//-}-${spec##*@}.tgz" ]] || missing+=("$spec")
done < crates/scan/tests/corpus-packages.txt
if (( ${#missing[@]} )); then
  (cd "$corpus" && npm pack --silent "${missing[@]}" >/dev/null)
fi
export TIERCACHE_SCAN_CORPUS="$PWD/$corpus"

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
