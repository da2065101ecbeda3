#!/usr/bin/env bash
# HTTP load benchmark: tiercache vs nginx serving the same two objects (26 KiB and 1 MiB)
# on loopback, measured with wrk in one interleaved run so the numbers are comparable.
#
# Usage: scripts/bench-http.sh
#
# Environment (all optional):
#   BENCH_DURATION     wrk duration of each measured run          (default 10s)
#   BENCH_WARMUP       wrk duration of each untimed warm-up run   (default 2s; 0 = none)
#   BENCH_THREADS      wrk threads                                (default 2)
#   BENCH_CONNECTIONS  wrk connections                            (default 32)
#   BENCH_ROUNDS       interleaved rounds; the median is reported (default 1)
#   BENCH_OUT          where the markdown table is written        (default bench-out/http.md)
#   SKIP_BUILD=1       do not run `cargo build --release -p tiercache`
#   TIERCACHE_BIN      the tiercache binary (default: target/release/tiercache)
#
# Installs wrk and nginx with apt-get if they are missing. Everything listens on 127.0.0.1
# only, and both servers are stopped on exit.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

DURATION="${BENCH_DURATION:-10s}"
WARMUP="${BENCH_WARMUP:-2s}"
THREADS="${BENCH_THREADS:-2}"
CONNECTIONS="${BENCH_CONNECTIONS:-32}"
ROUNDS="${BENCH_ROUNDS:-1}"
OUT="${BENCH_OUT:-$ROOT/bench-out/http.md}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="${TIERCACHE_BIN:-$TARGET_DIR/release/tiercache}"
HOST=127.0.0.1

BENCH_NAME=bench-http
# shellcheck source=scripts/lib/bench-common.sh
source "$ROOT/scripts/lib/bench-common.sh"

[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROUNDS must be a positive integer"
parse_durations

# --- tools ---------------------------------------------------------------------------------

ensure_nginx

# --- build ---------------------------------------------------------------------------------

build_tiercache

# --- scratch space and cleanup -------------------------------------------------------------

WORK="$(mktemp -d "${TMPDIR:-/tmp}/bench-http.XXXXXX")"
TC_PID=""
NGINX_PID=""

cleanup() {
    local rc=$?
    stop "$TC_PID"
    stop "$NGINX_PID"
    if ((rc != 0)); then
        show_logs "$WORK/tiercache.log" "$WORK/nginx/error.log"
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap_cleanup

# --- payloads ------------------------------------------------------------------------------

mkdir -p "$WORK/www" "$WORK/data" "$WORK/nginx"
head -c $((26 * 1024)) /dev/urandom >"$WORK/www/bench-26k"
head -c $((1024 * 1024)) /dev/urandom >"$WORK/www/bench-1m"
# nginx's workers may drop to an unprivileged user: let them read the files.
chmod 755 "$WORK" "$WORK/www"
chmod 644 "$WORK/www/bench-26k" "$WORK/www/bench-1m"

# --- tiercache -----------------------------------------------------------------------------

TC_PORT="$(free_port)"
log "starting tiercache on $HOST:$TC_PORT"
"$BIN" serve --listen "$HOST:$TC_PORT" --data-dir "$WORK/data" >"$WORK/tiercache.log" 2>&1 &
TC_PID=$!
TC="http://$HOST:$TC_PORT"
wait_ok "$TC/healthz" 30 "$TC_PID"

for obj in bench-26k bench-1m; do
    code="$(curl -s -o "$WORK/put.out" -w '%{http_code}' --max-time 30 \
        -X PUT -H 'Content-Type: application/octet-stream' \
        --data-binary "@$WORK/www/$obj" "$TC/objects/global/object/$obj")"
    [[ "$code" == 2?? ]] || die "PUT $obj answered $code: $(head -c 300 "$WORK/put.out")"
done

# --- nginx ---------------------------------------------------------------------------------

NG_PORT="$(free_port)"
while [[ "$NG_PORT" == "$TC_PORT" ]]; do NG_PORT="$(free_port)"; done
start_static_nginx
wait_ok "$NG/bench-26k" 15 "$NGINX_PID"

# Both servers must answer with the very bytes that were stored.
declare -A TIER
for obj in bench-26k bench-1m; do
    curl -sf --max-time 30 -o "$WORK/got-tc" "$TC/objects/global/object/$obj" || die "GET $obj from tiercache failed"
    curl -sf --max-time 30 -o "$WORK/got-ng" "$NG/$obj" || die "GET $obj from nginx failed"
    cmp -s "$WORK/got-tc" "$WORK/www/$obj" || die "tiercache returned other bytes for $obj"
    cmp -s "$WORK/got-ng" "$WORK/www/$obj" || die "nginx returned other bytes for $obj"
    tier="$(curl -s --max-time 30 -D - -o /dev/null "$TC/objects/global/object/$obj" |
        tr -d '\r' | awk -F': ' 'tolower($1) == "x-tiercache-tier" { print $2 }')"
    TIER[$obj]="${tier:-unknown}"
    log "tiercache serves $obj from tier: ${TIER[$obj]}"
done

# --- load ----------------------------------------------------------------------------------

# Runs wrk against $2 for duration $1; prints wrk's report.
run_wrk() {
    local dur="$1" url="$2" secs
    secs="$(seconds_of "$dur")"
    timeout $((secs + 60)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"$dur" --latency "$url"
}

# Results: one line per run, "object server rps mibs errors p99 requests" (parse_wrk).
RESULTS="$WORK/results"
: >"$RESULTS"

if ((WARMUP_S > 0)); then
    log "warming up (${WARMUP} per target)"
    for obj in bench-26k bench-1m; do
        run_wrk "$WARMUP" "$TC/objects/global/object/$obj" >/dev/null
        run_wrk "$WARMUP" "$NG/$obj" >/dev/null
    done
fi

for round in $(seq "$ROUNDS"); do
    for obj in bench-26k bench-1m; do
        for server in tiercache nginx; do
            if [[ "$server" == tiercache ]]; then
                url="$TC/objects/global/object/$obj"
            else
                url="$NG/$obj"
            fi
            log "round $round/$ROUNDS: $server $obj (wrk -t$THREADS -c$CONNECTIONS -d$DURATION)"
            report="$(run_wrk "$DURATION" "$url")"
            printf '%s\n' "$report" >"$WORK/wrk-$round-$server-$obj.txt"
            echo "$obj $server $(printf '%s\n' "$report" | parse_wrk)" >>"$RESULTS"
        done
    done
done

# The median over rounds of column $3 (3 = requests/s, 4 = MiB/s) for object $1, server $2.
median() {
    awk -v o="$1" -v s="$2" -v c="$3" '$1 == o && $2 == s { print $c }' "$RESULTS" |
        sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
errors_of() {
    awk -v o="$1" -v s="$2" '$1 == o && $2 == s { e += $5 } END { print e + 0 }' "$RESULTS"
}
p99_of() {
    awk -v o="$1" -v s="$2" '$1 == o && $2 == s { p = $6 } END { print p }' "$RESULTS"
}

# --- report --------------------------------------------------------------------------------

mkdir -p "$(dirname "$OUT")"
commit="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
ratio_26k=""
{
    echo "# HTTP benchmark: tiercache vs nginx"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'), commit: $commit"
    echo "- machine: $(nproc) cores; wrk, tiercache and nginx share them"
    echo "- wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $ROUNDS interleaved round(s) (median shown), warm-up $WARMUP per target"
    echo "- nginx $("$NGINX" -v 2>&1 | sed 's/^nginx version: //'): worker_processes 2, sendfile on, access_log off"
    echo "- tiercache: GET /objects/global/object/NAME; tier answering before the load (x-tiercache-tier): 26k ${TIER[bench-26k]}, 1m ${TIER[bench-1m]}"
    echo
    echo "| object | server | requests/s | transfer/s (MiB/s) | p99 latency (last round) | errors (all rounds) | tiercache/nginx (req/s) |"
    echo "| --- | --- | ---: | ---: | ---: | ---: | ---: |"
    for obj in bench-26k bench-1m; do
        tc_rps="$(printf '%.0f' "$(median "$obj" tiercache 3)")"
        ng_rps="$(printf '%.0f' "$(median "$obj" nginx 3)")"
        ratio="$(awk -v a="$tc_rps" -v b="$ng_rps" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')"
        [[ "$obj" == bench-26k ]] && ratio_26k="$ratio"
        label="${obj#bench-}"
        echo "| $label | tiercache | $tc_rps | $(median "$obj" tiercache 4) | $(p99_of "$obj" tiercache) | $(errors_of "$obj" tiercache) | $ratio |"
        echo "| $label | nginx | $ng_rps | $(median "$obj" nginx 4) | $(p99_of "$obj" nginx) | $(errors_of "$obj" nginx) | |"
    done
    if ((ROUNDS > 1)); then
        echo
        echo "Per round (requests/s):"
        echo
        for obj in bench-26k bench-1m; do
            for server in tiercache nginx; do
                echo "- ${obj#bench-} $server: $(awk -v o="$obj" -v s="$server" '$1 == o && $2 == s { printf "%s%s", sep, $3; sep = ", " }' "$RESULTS")"
            done
        done
    fi
    echo
    met="$(awk -v r="$ratio_26k" 'BEGIN { print (r != "-" && r >= 0.6) ? "met" : "NOT met" }')"
    echo "Target (tiercache >= 0.6x nginx requests/s for the 26 KiB object from L1): $met (${ratio_26k}x)."
} >"$OUT"

cat "$OUT"
log "written to $OUT"
