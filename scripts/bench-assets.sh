#!/usr/bin/env bash
# Static assets benchmark: tiercache vs nginx serving the same built site on loopback, in one
# interleaved run: GET of a 16 KiB content-hashed script, and its 304 revalidation
# (If-None-Match with each server's own ETag), measured with wrk.
#
# Usage: scripts/bench-assets.sh
#
# Environment (all optional):
#   BENCH_DURATION     wrk duration of each measured run          (default 10s)
#   BENCH_WARMUP       wrk duration of each untimed warm-up run   (default 2s; 0 = none)
#   BENCH_THREADS      wrk threads                                (default 2)
#   BENCH_CONNECTIONS  wrk connections                            (default 32)
#   BENCH_ROUNDS       interleaved rounds; the median is reported (default 1)
#   BENCH_OUT          where the markdown table is written        (default bench-out/assets.md)
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
OUT="${BENCH_OUT:-$ROOT/bench-out/assets.md}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="${TIERCACHE_BIN:-$TARGET_DIR/release/tiercache}"
HOST=127.0.0.1

BENCH_NAME=bench-assets
# shellcheck source=scripts/lib/bench-common.sh
source "$ROOT/scripts/lib/bench-common.sh"

[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROUNDS must be a positive integer"
parse_durations

# --- tools and build -----------------------------------------------------------------------

ensure_nginx
build_tiercache

# --- scratch space and cleanup -------------------------------------------------------------

WORK="$(mktemp -d "${TMPDIR:-/tmp}/bench-assets.XXXXXX")"
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

# --- the site ------------------------------------------------------------------------------

ASSET="assets/index-BzT3c9aF.js"
mkdir -p "$WORK/www/assets" "$WORK/data" "$WORK/nginx"
printf '<!doctype html><title>bench</title><script type="module" src="/%s"></script>\n' "$ASSET" >"$WORK/www/index.html"
# 16 KiB of script-like text (base64 of random bytes: it compresses about as well as minified code).
head -c 12288 /dev/urandom | base64 -w 100 | head -c 16384 >"$WORK/www/$ASSET"
chmod 755 "$WORK" "$WORK/www" "$WORK/www/assets"
chmod 644 "$WORK/www/index.html" "$WORK/www/$ASSET"

# --- tiercache: serve, and deploy the site -------------------------------------------------

TC_PORT="$(free_port)"
log "starting tiercache on $HOST:$TC_PORT"
"$BIN" serve --listen "$HOST:$TC_PORT" --data-dir "$WORK/data" >"$WORK/tiercache.log" 2>&1 &
TC_PID=$!
TC="http://$HOST:$TC_PORT"
wait_ok "$TC/healthz" 30 "$TC_PID"
"$BIN" deploy "$WORK/www" --site bench --server "$TC" >&2 || die "tiercache deploy failed"

# --- nginx ---------------------------------------------------------------------------------

NG_PORT="$(free_port)"
while [[ "$NG_PORT" == "$TC_PORT" ]]; do NG_PORT="$(free_port)"; done
start_static_nginx
wait_ok "$NG/$ASSET" 15 "$NGINX_PID"

TC_URL="$TC/assets/bench/$ASSET"
NG_URL="$NG/$ASSET"

# Both must answer with the very bytes of the file, and 304 to their own ETag.
etag_of() { curl -s --max-time 10 -D - -o /dev/null "$1" | tr -d '\r' | awk -F': ' 'tolower($1) == "etag" { print $2 }'; }
for url in "$TC_URL" "$NG_URL"; do
    curl -sf --max-time 10 -o "$WORK/got" "$url" || die "GET $url failed"
    cmp -s "$WORK/got" "$WORK/www/$ASSET" || die "$url returned other bytes"
done
TC_ETAG="$(etag_of "$TC_URL")"
NG_ETAG="$(etag_of "$NG_URL")"
[[ -n "$TC_ETAG" && -n "$NG_ETAG" ]] || die "a server sent no ETag"
for pair in "$TC_URL|$TC_ETAG" "$NG_URL|$NG_ETAG"; do
    code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -H "If-None-Match: ${pair#*|}" "${pair%%|*}")"
    [[ "$code" == 304 ]] || die "${pair%%|*} answered $code to its own ETag, not 304"
done
TC_CC="$(curl -s --max-time 10 -D - -o /dev/null "$TC_URL" | tr -d '\r' | awk -F': ' 'tolower($1) == "cache-control" { print $2 }')"
log "tiercache: ETag $TC_ETAG, Cache-Control: $TC_CC"

# --- load ----------------------------------------------------------------------------------

# Runs wrk for duration $1 against $2, with an optional If-None-Match $3; prints its report.
run_wrk() {
    local dur="$1" url="$2" inm="${3:-}" secs
    secs="$(seconds_of "$dur")"
    if [[ -n "$inm" ]]; then
        timeout $((secs + 60)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"$dur" --latency -H "If-None-Match: $inm" "$url"
    else
        timeout $((secs + 60)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"$dur" --latency "$url"
    fi
}

# Runs case $1 (get | 304) against server $2 for duration $3.
run_case() {
    local case="$1" server="$2" dur="$3" url inm=""
    if [[ "$server" == tiercache ]]; then url="$TC_URL"; else url="$NG_URL"; fi
    if [[ "$case" == 304 ]]; then
        if [[ "$server" == tiercache ]]; then inm="$TC_ETAG"; else inm="$NG_ETAG"; fi
    fi
    run_wrk "$dur" "$url" "$inm"
}

# Results: one line per run, "case server rps mibs errors p99 requests".
RESULTS="$WORK/results"
: >"$RESULTS"
if ((WARMUP_S > 0)); then
    log "warming up (${WARMUP} per target)"
    for case in get 304; do
        for server in tiercache nginx; do run_case "$case" "$server" "$WARMUP" >/dev/null; done
    done
fi
for round in $(seq "$ROUNDS"); do
    for case in get 304; do
        for server in tiercache nginx; do
            log "round $round/$ROUNDS: $server $case (wrk -t$THREADS -c$CONNECTIONS -d$DURATION)"
            report="$(run_case "$case" "$server" "$DURATION")"
            echo "$case $server $(printf '%s\n' "$report" | parse_wrk)" >>"$RESULTS"
        done
    done
done

# The median over rounds of column $3 (3 = requests/s) for case $1, server $2.
median() {
    awk -v o="$1" -v s="$2" -v c="$3" '$1 == o && $2 == s { print $c }' "$RESULTS" |
        sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
errors_of() { awk -v o="$1" -v s="$2" '$1 == o && $2 == s { e += $5 } END { print e + 0 }' "$RESULTS"; }
p99_of() { awk -v o="$1" -v s="$2" '$1 == o && $2 == s { p = $6 } END { print p }' "$RESULTS"; }

# --- report --------------------------------------------------------------------------------

mkdir -p "$(dirname "$OUT")"
commit="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
{
    echo "# Static assets benchmark: tiercache vs nginx"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'), commit: $commit"
    echo "- machine: $(nproc) cores; wrk, tiercache and nginx share them; compilers running at the start: $(builds)"
    echo "- wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $ROUNDS interleaved round(s) (median shown), warm-up $WARMUP per target"
    echo "- nginx $("$NGINX" -v 2>&1 | sed 's/^nginx version: //'): worker_processes 2, sendfile on, access_log off"
    echo "- file: 16 KiB $ASSET; tiercache: GET /assets/bench/$ASSET (Cache-Control: $TC_CC); 304: If-None-Match with each server's ETag"
    echo
    echo "| case | server | requests/s | p99 latency (last round) | errors (all rounds) | tiercache/nginx |"
    echo "| --- | --- | ---: | ---: | ---: | ---: |"
    for case in get 304; do
        tc="$(printf '%.0f' "$(median "$case" tiercache 3)")"
        ng="$(printf '%.0f' "$(median "$case" nginx 3)")"
        ratio="$(awk -v a="$tc" -v b="$ng" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')"
        echo "| $case | tiercache | $tc | $(p99_of "$case" tiercache) | $(errors_of "$case" tiercache) | $ratio |"
        echo "| $case | nginx | $ng | $(p99_of "$case" nginx) | $(errors_of "$case" nginx) | |"
        eval "ratio_$case=$ratio"
    done
    echo
    for case in get 304; do
        r="$(eval "echo \$ratio_$case")"
        met="$(awk -v r="$r" 'BEGIN { print (r != "-" && r >= 0.6) ? "met" : "NOT met" }')"
        echo "Target (tiercache >= 0.6x nginx requests/s, $case): $met (${r}x)."
    done
} >"$OUT"

cat "$OUT"
log "written to $OUT"
