# shellcheck shell=bash
# Helpers shared by the benchmark scripts (scripts/bench-*.sh). Sourced, never run.
#
# The sourcing script sets, before sourcing:
#   BENCH_NAME  the prefix of its log lines, e.g. bench-http
# and may set, before calling the helpers that read them:
#   HOST            the address servers listen on (port_open, free_port)
#   BIN             the tiercache binary (build_tiercache)
#   PORT_LO, PORT_SPAN  free_port's range: PORT_LO .. PORT_LO + PORT_SPAN - 1 (20000, 40000)
#   WAIT_OK_CURL_ARGS   extra curl arguments of wait_ok's GET, e.g. (-H "Authorization: ...")
#   BENCH_COMPILERS     the process names `builds` counts (an awk regex alternation)

log() { printf '[%s] %s\n' "$BENCH_NAME" "$*" >&2; }
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

# Sets DURATION_S and WARMUP_S from the script's DURATION and WARMUP (BENCH_DURATION,
# BENCH_WARMUP), or dies.
# shellcheck disable=SC2153 # DURATION and WARMUP are set by the sourcing script
parse_durations() {
    DURATION_S="$(seconds_of "$DURATION")"
    WARMUP_S="$(seconds_of "$WARMUP")"
    [[ "$DURATION_S" =~ ^[1-9][0-9]*$ ]] || die "BENCH_DURATION must be like 10s, 2m"
    [[ "$WARMUP_S" =~ ^[0-9]+$ ]] || die "BENCH_WARMUP must be like 2s, or 0"
}

# --- tools ---------------------------------------------------------------------------------

# Installs with apt-get what is missing of "$@", each COMMAND[:PACKAGE[:PATH]]: PACKAGE
# (default COMMAND) is installed unless COMMAND is on PATH or PATH is an executable. The
# packages' own services are kept from starting (nginx would listen on *:80, redis on :6379);
# where nginx-light is not packaged, nginx is installed instead.
apt_ensure() {
    local pkgs=() spec cmd pkg path
    for spec in "$@"; do
        IFS=: read -r cmd pkg path <<<"$spec"
        command -v "$cmd" >/dev/null 2>&1 && continue
        [[ -n "$path" && -x "$path" ]] && continue
        pkgs+=("${pkg:-$cmd}")
    done
    ((${#pkgs[@]} == 0)) && return 0
    local sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null 2>&1 || die "need root or sudo to install: ${pkgs[*]}"
        sudo=(sudo)
    fi
    log "installing ${pkgs[*]}"
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

# Installs wrk, nginx and curl (and what "$@" adds, as apt_ensure reads it) where missing;
# sets NGINX to the nginx binary.
# shellcheck disable=SC2034,SC2120 # NGINX is read by the sourcing script; "$@" may be empty
ensure_nginx() {
    apt_ensure wrk nginx:nginx-light:/usr/sbin/nginx curl "$@"
    NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
    [[ -x "$NGINX" ]] || die "nginx not found after install"
}

# The major version of node binary $1.
node_major() { "$1" --version 2>/dev/null | sed -E 's/^v([0-9]+).*/\1/'; }

# Builds tiercache (release) unless SKIP_BUILD=1; dies if there is no binary at $BIN.
build_tiercache() {
    if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
        log "building tiercache (release)"
        timeout 3600 cargo build --release -p tiercache >&2
    fi
    [[ -x "$BIN" ]] || die "no tiercache binary at $BIN"
}

# --- processes -----------------------------------------------------------------------------

# Stops process $1 (if any): TERM, up to 5 s, then KILL.
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

# Logs the last lines of each of the files "$@" that is not empty.
show_logs() {
    local f
    for f in "$@"; do
        [[ -s "$f" ]] && {
            log "last lines of $f:"
            tail -n 20 "$f" >&2
        }
    done
}

# Runs the script's `cleanup` on exit, and exits 130 / 143 on SIGINT / SIGTERM.
trap_cleanup() {
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# --- ports and readiness -------------------------------------------------------------------

# Whether something accepts connections on 127.0.0.1:$1.
port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

free_port() {
    local p _
    for _ in $(seq 100); do
        p=$((${PORT_LO:-20000} + RANDOM % ${PORT_SPAN:-40000}))
        port_open "$p" || {
            echo "$p"
            return 0
        }
    done
    die "no free port found"
}

# Waits until GET $1 (with WAIT_OK_CURL_ARGS) answers 200, for at most $2 seconds, while
# process $3 lives.
WAIT_OK_CURL_ARGS=()
wait_ok() {
    local url="$1" limit="$2" pid="$3" _
    for _ in $(seq $((limit * 10))); do
        kill -0 "$pid" 2>/dev/null || die "server (pid $pid) exited before $url answered"
        [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "${WAIT_OK_CURL_ARGS[@]}" "$url" || true)" == 200 ]] && return 0
        sleep 0.1
    done
    die "$url did not answer 200 within ${limit}s"
}

# --- nginx ---------------------------------------------------------------------------------

# Starts nginx ($NGINX) on $HOST:$NG_PORT serving $WORK/www as static files (config, logs and
# temp files in $WORK/nginx); sets NGINX_PID and NG, its base URL.
# shellcheck disable=SC2034 # NGINX_PID and NG are read by the sourcing script
start_static_nginx() {
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
}

# --- CPU time and machine load -------------------------------------------------------------

HZ="$(getconf CLK_TCK)"
TIMEFORMAT='%R %U %S' # `time`: wall, user and system seconds of the timed command and its children

# CPU seconds used so far by the whole machine (all cores).
machine_cpu() {
    awk -v hz="$HZ" '/^cpu / { printf "%.2f", ($2 + $3 + $4 + $7 + $8 + $9) / hz }' /proc/stat
}

# Waits (at most $2 seconds) until the servers use no CPU: fields 2 to $1 + 1 of the
# script's `snapshot` are its servers' CPU seconds. Node goes on answering the requests wrk
# had queued when it stopped, and background work may run on: neither must run into the
# next measurement.
settle() {
    local fields="$1" limit="$2" a b _
    a="$(snapshot)"
    for _ in $(seq $((limit * 2))); do
        sleep 0.5
        b="$(snapshot)"
        if awk -v a="$a" -v b="$b" -v n="$fields" 'BEGIN { split(a, x, " "); split(b, y, " "); d = 0; for (i = 2; i <= n + 1; i++) d += y[i] - x[i]; exit !(d < 0.03) }'; then
            return 0
        fi
        a="$b"
    done
    log "warning: the servers were still busy after $limit s"
}

# Compilers and linkers running now: another build on the machine.
BENCH_COMPILERS='rustc|cargo|cc1|cc1plus|cc|gcc|clang|ld|ld\.lld|lld|ld\.gold'
builds() {
    ps -eo comm= | awk '$1 ~ /^('"$BENCH_COMPILERS"')$/ { n++ } END { print n + 0 }'
}

# --- wrk -----------------------------------------------------------------------------------

# Requests/s, transfer/s in MiB/s, errors, p99 latency and requests from a wrk report on stdin.
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
        /requests in/ { reqs = $1 }
        /Non-2xx or 3xx responses:/ { errs += $NF }
        /Socket errors:/ { for (i = 3; i <= NF; i += 2) { gsub(/,/, "", $(i + 1)); errs += $(i + 1) } }
        /^ +99%/ { p99 = $2 }
        END { printf "%.1f %.1f %d %s %d\n", rps, mibs, errs, (p99 == "" ? "-" : p99), reqs }
    '
}
