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

log() { printf '[bench-http] %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# Seconds in a wrk duration such as 10s, 2m or 1h (a bare number is seconds).
seconds_of() {
    local d="$1"
    case "$d" in
    *h) echo $((${d%h} * 3600)) ;;
    *m) echo $((${d%m} * 60)) ;;
    *s) echo "${d%s}" ;;
    *) echo "$d" ;;
    esac
}

[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROUNDS must be a positive integer"
DURATION_S="$(seconds_of "$DURATION")"
WARMUP_S="$(seconds_of "$WARMUP")"
[[ "$DURATION_S" =~ ^[1-9][0-9]*$ ]] || die "BENCH_DURATION must be like 10s, 2m"
[[ "$WARMUP_S" =~ ^[0-9]+$ ]] || die "BENCH_WARMUP must be like 2s, or 0"

# --- tools ---------------------------------------------------------------------------------

install_missing() {
    local pkgs=()
    command -v wrk >/dev/null 2>&1 || pkgs+=(wrk)
    command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || pkgs+=(nginx-light)
    command -v curl >/dev/null 2>&1 || pkgs+=(curl)
    ((${#pkgs[@]} == 0)) && return 0
    local sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null 2>&1 || die "need root or sudo to install: ${pkgs[*]}"
        sudo=(sudo)
    fi
    log "installing ${pkgs[*]}"
    # Keep the package's own nginx service from starting (it would listen on *:80).
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [[ ! -e "$policy" ]]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
        "${sudo[@]}" chmod +x "$policy"
        made_policy=1
    fi
    local rc=0
    timeout 300 "${sudo[@]}" apt-get update -qq || rc=$?
    if ((rc == 0)); then
        # nginx-light is the small build; fall back to nginx where it is not packaged.
        if ! DEBIAN_FRONTEND=noninteractive timeout 600 "${sudo[@]}" apt-get install -y -qq "${pkgs[@]}" >/dev/null; then
            pkgs=("${pkgs[@]/nginx-light/nginx}")
            DEBIAN_FRONTEND=noninteractive timeout 600 "${sudo[@]}" apt-get install -y -qq "${pkgs[@]}" >/dev/null || rc=$?
        fi
    fi
    ((made_policy)) && "${sudo[@]}" rm -f "$policy"
    ((rc == 0)) || die "apt-get failed"
}

install_missing
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
[[ -x "$NGINX" ]] || die "nginx not found after install"

# --- build ---------------------------------------------------------------------------------

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    log "building tiercache (release)"
    timeout 3600 cargo build --release -p tiercache >&2
fi
[[ -x "$BIN" ]] || die "no tiercache binary at $BIN"

# --- scratch space and cleanup -------------------------------------------------------------

WORK="$(mktemp -d "${TMPDIR:-/tmp}/bench-http.XXXXXX")"
TC_PID=""
NGINX_PID=""

stop() {
    local pid="$1"
    [[ -n "$pid" ]] || return 0
    kill "$pid" 2>/dev/null || return 0
    local _
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    stop "$TC_PID"
    stop "$NGINX_PID"
    if ((rc != 0)); then
        for f in "$WORK/tiercache.log" "$WORK/nginx/error.log"; do
            [[ -s "$f" ]] && {
                log "last lines of $f:"
                tail -n 20 "$f" >&2
            }
        done
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Whether something accepts connections on 127.0.0.1:$1.
port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

free_port() {
    local p _
    for _ in $(seq 100); do
        p=$((20000 + RANDOM % 40000))
        port_open "$p" || {
            echo "$p"
            return 0
        }
    done
    die "no free port found"
}

# Waits until GET $1 answers 200, for at most $2 seconds, while process $3 lives.
wait_ok() {
    local url="$1" limit="$2" pid="$3" _
    for _ in $(seq $((limit * 10))); do
        kill -0 "$pid" 2>/dev/null || die "server (pid $pid) exited before $url answered"
        [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" || true)" == 200 ]] && return 0
        sleep 0.1
    done
    die "$url did not answer 200 within ${limit}s"
}

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
cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes 2;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events {
    worker_connections 1024;
}
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    default_type application/octet-stream;
    client_body_temp_path $WORK/nginx/client_body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    server {
        listen $HOST:$NG_PORT;
        root $WORK/www;
        location / { }
    }
}
EOF
log "starting nginx on $HOST:$NG_PORT"
"$NGINX" -p "$WORK/nginx/" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" &
NGINX_PID=$!
NG="http://$HOST:$NG_PORT"
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

# Requests/s, transfer/s in MiB/s, errors and p99 latency from a wrk report on stdin.
parse_wrk() {
    awk '
        function mib(v,   n, u) {
            n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
            if (u == "GB") return n * 1024
            if (u == "MB") return n
            if (u == "KB") return n / 1024
            return n / 1048576
        }
        /^Requests\/sec:/ { rps = $2 }
        /^Transfer\/sec:/ { mibs = mib($2) }
        /Non-2xx or 3xx responses:/ { errs += $NF }
        /Socket errors:/ { for (i = 3; i <= NF; i += 2) { gsub(/,/, "", $(i + 1)); errs += $(i + 1) } }
        /^ +99%/ { p99 = $2 }
        END { printf "%.0f %.1f %d %s\n", rps, mibs, errs, (p99 == "" ? "-" : p99) }
    '
}

# Results: one line per run, "object server rps mibs errors p99".
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
