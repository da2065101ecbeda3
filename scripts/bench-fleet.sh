#!/usr/bin/env bash
# Shared tier and fleet benchmark (issue 5): "GET latency and throughput of the same 1 MiB
# entry as an L1 hit, an L2 hit, an L3 hit (cold node), and an origin fetch; and the origin
# requests saved across a 3-node fleet installing the same project." In one run, everything
# on 127.0.0.1: moto (S3-compatible, the L3 bucket), redis-server, nginx as the npm origin
# (a static directory laid out as a registry, with generated packages), and several
# `tiercache serve` nodes.
#
#   1. Tiers, sequential: BENCH_N iterations; each GETs, in a rotating order and with one
#      curl each (new connection, body to /dev/null):
#        - L1:  the same 1 MiB entry from node A (defaults: L1 on);
#        - L2:  the same entry from node B (--l1-budget 0: every GET reads L2);
#        - L3:  a different 1 MiB entry (other random bytes of the same size) from node C, a
#               fresh node on the same bucket: an L3 hit, verified, then promoted;
#        - origin: a different ~1 MiB npm tarball from node D (no L3, no Redis; packuments
#               fetched beforehand), fetched from nginx and checked against dist.integrity;
#        - origin on a fleet node: the same from node E (with L3 + Redis: L3 miss, fleet
#               lock, origin; its background upload is waited for outside the timing);
#        - references: nginx sending D's tarball directly; moto sending C's entry document
#               and blob (one signed GET each); dd writing and fsyncing 1 MiB.
#      Median and p90 of curl's time_total, and what x-tiercache-tier / X-Cache said.
#   2. L3 and origin in parallel: BENCH_N GETs, BENCH_PARALLEL at once (one curl --parallel),
#      from fresh node C2 (L3 hits) and fresh node D2 (origin fetches): MB/s. (L1 and L2
#      throughput is step 3's wrk: at 1 MiB per GET, a curl process's own start-up would
#      weigh on their numbers.)
#   3. wrk on the 1 MiB entry: A (L1), B (L2) and nginx serving the same bytes (req/s, p50,
#      p99), BENCH_ROUNDS interleaved rounds, median shown.
#   4. Fleet: a generated project (BENCH_FLEET_PACKAGES packages, half of them direct
#      dependencies, each depending on two of the others) installed with the real npm client
#      (fresh project and --cache every time) through 3 independent nodes (no L3, no Redis)
#      and through the 3 nodes of a fleet (shared bucket + Redis; the upload queues are
#      drained between installs), interleaved: independent 1, fleet 1, independent 2, ...
#      Then 3 more fleet nodes (another bucket prefix and Redis key prefix) install it at
#      the same moment. Origin requests are counted from nginx's access log.
#
# Usage: scripts/bench-fleet.sh
#
# Environment (all optional):
#   BENCH_N               entries / tarballs per tier in steps 1 and 2   (default 100)
#   BENCH_PARALLEL        concurrent GETs in step 2                        (default 8)
#   BENCH_DURATION        wrk duration of each measured run                (default 10s)
#   BENCH_WARMUP          wrk duration of each untimed warm-up run         (default 2s; 0 = none)
#   BENCH_THREADS         wrk threads                                      (default 2)
#   BENCH_CONNECTIONS     wrk connections                                  (default 16)
#   BENCH_ROUNDS          interleaved wrk rounds; the median is shown      (default 1)
#   BENCH_FLEET_PACKAGES  packages in the fleet project (even, >= 4)        (default 24)
#   BENCH_FLEET_KIB       size of each fleet package's tarball, KiB        (default 256)
#   BENCH_SIMULTANEOUS=0  skip the 3 simultaneous fleet installs
#   BENCH_NPM_TIMEOUT     seconds allowed for one npm install              (default 300)
#   BENCH_TMP             where data, registry and npm projects go        (default $TMPDIR or /tmp)
#   BENCH_OUT             where the markdown table is written             (default bench-out/fleet.md)
#   SKIP_BUILD=1          do not run `cargo build --release -p tiercache`
#   TIERCACHE_BIN         the tiercache binary (default: target/release/tiercache)
#   TIERCACHE_MOTO_SERVER the moto_server binary (default: moto_server on PATH, else
#                         moto[server] 5.2.5 installed into .tools/s3-venv as scripts/test.sh does)
#
# Installs wrk, nginx, redis-server, curl, jq and openssl with apt-get if they are missing;
# needs npm and python3 (for moto). No public registry is involved: the npm origin is the
# local nginx, and npm runs with empty user and global config files. Everything listens on
# 127.0.0.1 only; every server is stopped on exit.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

N="${BENCH_N:-100}"
PARALLEL="${BENCH_PARALLEL:-8}"
DURATION="${BENCH_DURATION:-10s}"
WARMUP="${BENCH_WARMUP:-2s}"
THREADS="${BENCH_THREADS:-2}"
CONNECTIONS="${BENCH_CONNECTIONS:-16}"
ROUNDS="${BENCH_ROUNDS:-1}"
FLEET_PACKAGES="${BENCH_FLEET_PACKAGES:-24}"
FLEET_KIB="${BENCH_FLEET_KIB:-256}"
SIMULTANEOUS="${BENCH_SIMULTANEOUS:-1}"
NPM_TIMEOUT="${BENCH_NPM_TIMEOUT:-300}"
TMP_BASE="${BENCH_TMP:-${TMPDIR:-/tmp}}"
OUT="${BENCH_OUT:-$ROOT/bench-out/fleet.md}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="${TIERCACHE_BIN:-$TARGET_DIR/release/tiercache}"
HOST=127.0.0.1
BUCKET=bench-fleet
MIB=$((1024 * 1024))

BENCH_NAME=bench-fleet
# shellcheck source=scripts/lib/bench-common.sh
source "$ROOT/scripts/lib/bench-common.sh"

[[ "$N" =~ ^[1-9][0-9]*$ ]] || die "BENCH_N must be a positive integer"
[[ "$PARALLEL" =~ ^[1-9][0-9]*$ ]] || die "BENCH_PARALLEL must be a positive integer"
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROUNDS must be a positive integer"
[[ "$THREADS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_THREADS must be a positive integer"
[[ "$CONNECTIONS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_CONNECTIONS must be a positive integer"
if ! [[ "$FLEET_PACKAGES" =~ ^[0-9]+$ ]] || ((FLEET_PACKAGES < 4 || FLEET_PACKAGES % 2)); then
    die "BENCH_FLEET_PACKAGES must be an even number >= 4"
fi
[[ "$FLEET_KIB" =~ ^[1-9][0-9]*$ ]] || die "BENCH_FLEET_KIB must be a positive integer"
[[ "$NPM_TIMEOUT" =~ ^[1-9][0-9]*$ ]] || die "BENCH_NPM_TIMEOUT must be a number of seconds"
parse_durations

# --- tools ---------------------------------------------------------------------------------

ensure_nginx redis-server jq openssl
REDIS_SERVER="$(command -v redis-server || echo /usr/bin/redis-server)"
[[ -x "$REDIS_SERVER" ]] || die "redis-server not found after install"
command -v npm >/dev/null 2>&1 || die "npm is needed (the fleet part installs a project with it)"
command -v node >/dev/null 2>&1 || die "node is needed"

# moto: TIERCACHE_MOTO_SERVER, else moto_server on PATH, else the git-ignored virtualenv that
# scripts/test.sh uses.
MOTO="${TIERCACHE_MOTO_SERVER:-}"
if [[ -z "$MOTO" ]]; then
    if command -v moto_server >/dev/null 2>&1; then
        MOTO="$(command -v moto_server)"
    else
        if [[ ! -x .tools/s3-venv/bin/moto_server ]]; then
            command -v python3 >/dev/null 2>&1 || die "python3 is needed to install moto"
            log "installing moto[server]==5.2.5 into .tools/s3-venv"
            python3 -m venv .tools/s3-venv
            timeout 600 .tools/s3-venv/bin/pip install -q 'moto[server]==5.2.5' >&2 || die "pip install moto failed"
        fi
        MOTO="$PWD/.tools/s3-venv/bin/moto_server"
    fi
fi
[[ -x "$MOTO" ]] || die "no moto_server at $MOTO"

# --- build ---------------------------------------------------------------------------------

build_tiercache
# The commit the binary was built from (when this script built it), taken now: others may
# commit while the benchmark runs.
commit="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
dirty=""
if git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null | grep -q .; then
    dirty=" (work tree has uncommitted changes)"
fi
[[ "${SKIP_BUILD:-0}" == 1 ]] && dirty+=" (SKIP_BUILD=1: the binary may be older)"

# --- scratch space and cleanup -------------------------------------------------------------

WORK="$(mktemp -d "$TMP_BASE/bench-fleet.XXXXXX")"
MOTO_PID=""
REDIS_PID=""
NGINX_PID=""
declare -A PID_OF=()
declare -A URL_OF=()
NODES=() # every tiercache node started, in order

stop_node() {
    stop "${PID_OF[$1]:-}"
    PID_OF[$1]=""
    refresh_pids
}

cleanup() {
    local rc=$? n
    for n in "${NODES[@]}"; do
        stop "${PID_OF[$n]:-}"
    done
    stop "$NGINX_PID"
    stop "$REDIS_PID"
    stop "$MOTO_PID"
    if ((rc != 0)); then
        show_logs "$WORK"/nodes/*/log "$WORK/moto.log" "$WORK/redis.log" "$WORK/nginx/error.log" "$WORK/last-npm.log"
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap_cleanup

# Every node runs this copy: a build elsewhere in the meantime cannot change the binary
# between the first node and the last.
cp "$BIN" "$WORK/tiercache"
BIN="$WORK/tiercache"

# Ports are taken below the kernel's ephemeral range: thousands of client connections (and
# the nodes' pooled ones) use ports in that range, and one of those would make a bind fail.
# (free_port draws from PORT_LO .. PORT_LO + PORT_SPAN - 1.)
EPHEMERAL_LO="$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)"
if ((EPHEMERAL_LO > 12000)); then PORT_LO=10000 PORT_SPAN=$((EPHEMERAL_LO - 10000)); else PORT_LO=20000 PORT_SPAN=40000; fi

# The processes whose CPU time is the servers': tiercache nodes, moto, and the rest (Redis,
# nginx and its workers). Refreshed whenever a server starts or stops.
SNAP_TC=" "
SNAP_MOTO=" "
SNAP_OTHER=" "
refresh_pids() {
    local n
    SNAP_TC=" "
    for n in "${NODES[@]}"; do
        [[ -n "${PID_OF[$n]:-}" ]] && SNAP_TC+="${PID_OF[$n]} "
    done
    SNAP_MOTO=" $MOTO_PID "
    SNAP_OTHER=" $REDIS_PID "
    if [[ -n "$NGINX_PID" ]]; then
        SNAP_OTHER+="$NGINX_PID $(pgrep -P "$NGINX_PID" 2>/dev/null | tr '\n' ' ')"
    fi
}

# "machine_busy_cpu_s servers_cpu_s tiercache_cpu_s moto_cpu_s" now, in one cheap read (a
# costly snapshot would show up as other load in short measurements).
snapshot() {
    local files=() p
    # shellcheck disable=SC2086
    for p in $SNAP_TC $SNAP_MOTO $SNAP_OTHER; do
        [[ -r "/proc/$p/stat" ]] && files+=("/proc/$p/stat")
    done
    awk -v hz="$HZ" -v tc="$SNAP_TC" -v mo="$SNAP_MOTO" '
        FILENAME == "/proc/stat" { if ($1 == "cpu") m = ($2 + $3 + $4 + $7 + $8 + $9) / hz; next }
        {
            pid = $1; line = $0; sub(/^.*\) /, "", line); split(line, f, " ")
            c = (f[12] + f[13]) / hz; all += c
            if (index(tc, " " pid " ")) t += c
            else if (index(mo, " " pid " ")) o += c
        }
        END { printf "%.2f %.2f %.2f %.2f\n", m, all, t, o }
    ' /proc/stat "${files[@]}" 2>/dev/null
}

# What else used the CPU during a measurement: the machine's busy time between snapshots
# $2 and $3 less the servers' and the client's own CPU seconds $4, over the wall time $5, in
# cores. Appends a line for label $1 (with $6 compilers running at the start) to NOISE_LOG.
NOISE_LOG="$WORK/noise"
: >"$NOISE_LOG"
record_noise() {
    local label="$1" s0="$2" s1="$3" client="$4" wall="$5" nbuilds="$6"
    awk -v l="$label" -v c="$client" -v w="$wall" -v nb="$nbuilds" -v a="$s0" -v b="$s1" 'BEGIN {
        split(a, x, " "); split(b, y, " ")
        busy = y[1] - x[1]; sv = y[2] - x[2]; tc = y[3] - x[3]; mo = y[4] - x[4]
        other = busy - sv - c; if (other < 0) other = 0
        if (w < 0.5) {
            printf "%s: %.2f s, too short to tell (tiercache %.2f, moto %.2f, all servers %.2f, client %.2f CPU-s); compilers running at the start: %d\n",
                l, w, tc, mo, sv, c, nb
            exit
        }
        printf "%s: other processes %.2f cores (machine %.2f cores busy; tiercache %.2f, moto %.2f, all servers %.2f, client %.2f CPU-s in %.1f s); compilers running at the start: %d\n",
            l, other / w, busy / w, tc, mo, sv, c, w, nb
    }' >>"$NOISE_LOG"
}

# Runs "$@" (a shell function or command) timed; records its noise under label $1 (the
# command starts at $2). Sets LAST_WALL.
LAST_WALL=0
measured() {
    local label="$1" nb s0 s1 wall cu cs rc=0
    shift
    nb="$(builds)"
    s0="$(snapshot)"
    { time "$@" 2>&3; } 3>&2 2>"$WORK/time" || rc=$?
    s1="$(snapshot)"
    read -r wall cu cs < <(tail -n 1 "$WORK/time")
    record_noise "$label" "$s0" "$s1" "$(awk -v u="$cu" -v s="$cs" 'BEGIN { print u + s }')" "$wall" "$nb"
    LAST_WALL="$wall"
    return "$rc"
}

# --- moto, Redis --------------------------------------------------------------------------

MOTO_PORT="$(free_port)"
log "starting moto ($MOTO) on $HOST:$MOTO_PORT"
"$MOTO" -H "$HOST" -p "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
MOTO_PID=$!
S3="http://$HOST:$MOTO_PORT"
for _ in $(seq 300); do
    kill -0 "$MOTO_PID" 2>/dev/null || die "moto exited"
    port_open "$MOTO_PORT" && break
    sleep 0.1
done
port_open "$MOTO_PORT" || die "moto did not listen within 30 s"
code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X PUT "$S3/$BUCKET" || true)"
[[ "$code" == 200 ]] || die "creating bucket $BUCKET on moto answered $code"
MOTO_VERSION="$("$(dirname "$(readlink -f "$MOTO")")/python" -c 'import moto; print(moto.__version__)' 2>/dev/null ||
    python3 -c 'import moto; print(moto.__version__)' 2>/dev/null || echo unknown)"

REDIS_PORT="$(free_port)"
log "starting redis-server on $HOST:$REDIS_PORT"
"$REDIS_SERVER" --port "$REDIS_PORT" --bind "$HOST" --save '' --appendonly no --daemonize no \
    >"$WORK/redis.log" 2>&1 &
REDIS_PID=$!
REDIS="redis://$HOST:$REDIS_PORT"
for _ in $(seq 100); do
    kill -0 "$REDIS_PID" 2>/dev/null || die "redis-server exited"
    port_open "$REDIS_PORT" && break
    sleep 0.1
done
port_open "$REDIS_PORT" || die "redis-server did not listen within 10 s"
REDIS_VERSION="$("$REDIS_SERVER" --version | sed -nE 's/.*v=([0-9.]+).*/\1/p')"

# --- the npm origin: a static registry served by nginx -------------------------------------

REG="$WORK/registry"
mkdir -p "$REG/objects" "$WORK/nginx" "$WORK/pkg"
NG_PORT="$(free_port)"
ORIGIN="http://$HOST:$NG_PORT"
NOW="$(date -u +%Y-%m-%dT%H:%M:%S.000Z)"

# The tarball file of package $1 (version 1.0.0), and its URL on the origin.
tgz_path() { echo "$REG/$1/-/$1-1.0.0.tgz"; }
tgz_url() { echo "$ORIGIN/$1/-/$1-1.0.0.tgz"; }

# Publishes package $1@1.0.0 to the origin directory: a real gzip'd tar with
# package/package.json and $2 bytes of random filler, and its packument (with the dependencies
# given as further arguments, each "^1.0.0") at $REG/$1/index.json.
publish() {
    local name="$1" filler="$2" deps dir tgz integrity shasum
    shift 2
    deps="$(jq -n --args '$ARGS.positional | map({(.): "^1.0.0"}) | add // {}' "$@")"
    dir="$WORK/pkg/$name"
    mkdir -p "$dir/package" "$REG/$name/-"
    jq -n --arg n "$name" --argjson d "$deps" \
        '{name: $n, version: "1.0.0", description: "generated by scripts/bench-fleet.sh", license: "MIT", dependencies: $d}' \
        >"$dir/package/package.json"
    head -c "$filler" /dev/urandom >"$dir/package/filler.bin"
    tgz="$(tgz_path "$name")"
    tar -C "$dir" --owner=0 --group=0 --numeric-owner --mtime='2020-01-01 00:00:00' -cf - package | gzip -1 -n >"$tgz"
    rm -rf "$dir"
    integrity="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
    shasum="$(sha1sum "$tgz" | cut -d' ' -f1)"
    jq -n --arg n "$name" --argjson d "$deps" --arg t "$(tgz_url "$name")" --arg i "$integrity" \
        --arg s "$shasum" --arg now "$NOW" '{
            _id: $n, name: $n, "dist-tags": {latest: "1.0.0"},
            versions: {"1.0.0": {name: $n, version: "1.0.0", _id: ($n + "@1.0.0"), license: "MIT",
                dependencies: $d, dist: {tarball: $t, integrity: $i, shasum: $s}}},
            time: {created: $now, modified: $now, "1.0.0": $now}
        }' >"$REG/$name/index.json"
}

# Step 1/2 packages: ~1 MiB tarballs, N for node D (also fetched by D2 and served by nginx
# directly), N for node E.
log "generating 2 x $N packages with ~1 MiB tarballs and $FLEET_PACKAGES fleet packages of ~$FLEET_KIB KiB"
ORIGIN_D=()
ORIGIN_E=()
for i in $(seq -w 1 "$N"); do
    ORIGIN_D+=("bench-origin-d$i")
    ORIGIN_E+=("bench-origin-e$i")
done
for name in "${ORIGIN_D[@]}" "${ORIGIN_E[@]}"; do
    publish "$name" $((MIB - 1024))
done
TGZ_BYTES="$(for name in "${ORIGIN_D[@]}"; do stat -c %s "$(tgz_path "$name")"; done | awk '{ s += $1 } END { printf "%.0f", s / NR }')"

# The fleet project's packages: fleet-pkg-01 .. fleet-pkg-<P>; the first half are the
# project's direct dependencies, and the direct dependency i depends on half + i and on
# half + (i mod half) + 1, so every package of the second half is needed twice.
FLEET_NAMES=()
for i in $(seq -w 1 "$FLEET_PACKAGES"); do FLEET_NAMES+=("fleet-pkg-$i"); done
HALF=$((FLEET_PACKAGES / 2))
for i in $(seq 1 "$FLEET_PACKAGES"); do
    if ((i <= HALF)); then
        publish "${FLEET_NAMES[$((i - 1))]}" $((FLEET_KIB * 1024 - 1024)) \
            "${FLEET_NAMES[$((HALF + i - 1))]}" "${FLEET_NAMES[$((HALF + i % HALF))]}"
    else
        publish "${FLEET_NAMES[$((i - 1))]}" $((FLEET_KIB * 1024 - 1024))
    fi
done
jq -n --args '{name: "bench-fleet-project", version: "1.0.0", private: true,
    dependencies: ($ARGS.positional | map({(.): "^1.0.0"}) | add)}' \
    "${FLEET_NAMES[@]:0:$HALF}" >"$WORK/package.json"

# The 1 MiB entry of steps 1-3 (nginx serves the same bytes at /objects/bench-1m).
head -c "$MIB" /dev/urandom >"$REG/objects/bench-1m"

cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes 2;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events {
    worker_connections 1024;
}
http {
    log_format origin '\$request_method \$request_uri \$status \$body_bytes_sent';
    access_log $WORK/nginx/access.log origin;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    types {
        application/json json;
        application/octet-stream tgz;
    }
    default_type application/octet-stream;
    client_body_temp_path $WORK/nginx/client_body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    server {
        listen $HOST:$NG_PORT;
        root $REG;
        # /<name> is the packument (<name>/index.json); anything else is a file.
        location / {
            try_files \$uri/index.json \$uri =404;
        }
    }
}
EOF
# nginx's workers run as an unprivileged user when it is started as root: let them read.
chmod 755 "$WORK"
chmod -R a+rX "$REG"
log "starting nginx (the npm origin) on $HOST:$NG_PORT"
"$NGINX" -p "$WORK/nginx/" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" &
NGINX_PID=$!
wait_ok "$ORIGIN/${ORIGIN_D[0]}" 15 "$NGINX_PID"
[[ "$(curl -s --max-time 10 "$ORIGIN/${ORIGIN_D[0]}" | jq -r '.versions["1.0.0"].dist.tarball')" == "$(tgz_url "${ORIGIN_D[0]}")" ]] ||
    die "the origin does not serve the generated packument"
ACCESS_LOG="$WORK/nginx/access.log"
refresh_pids

# Origin requests logged so far (lines of nginx's access log).
origin_lines() { wc -l <"$ACCESS_LOG" | tr -d ' '; }

# --- tiercache nodes -----------------------------------------------------------------------

# Packuments stay fresh for the whole run, so no install revalidates one because time passed.
printf '[npm]\nfresh_for = "1h"\n' >"$WORK/tiercache.toml"
printf '[npm]\nfresh_for = "1h"\n[redis]\nkey_prefix = "bench-sim:"\n' >"$WORK/tiercache-sim.toml"
fleet_args() { echo "--l3-endpoint $S3 --l3-bucket $BUCKET --l3-prefix $1 --redis-url $REDIS"; }

# Starts node $1 with config $2 and further flags; every node proxies npm to the local origin.
# Tries another port if the one picked was taken in the meantime.
start_node() {
    local name="$1" config="$2" port attempt _
    shift 2
    mkdir -p "$WORK/nodes/$name"
    NODES+=("$name")
    for attempt in 1 2 3; do
        port="$(free_port)"
        AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench \
            "$BIN" serve --listen "$HOST:$port" --data-dir "$WORK/nodes/$name/data" --config "$config" \
            --npm-upstream "$ORIGIN/" "$@" >"$WORK/nodes/$name/log" 2>&1 &
        PID_OF[$name]=$!
        URL_OF[$name]="http://$HOST:$port"
        refresh_pids
        for _ in $(seq 300); do
            [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "${URL_OF[$name]}/healthz" || true)" == 200 ]] && return 0
            kill -0 "${PID_OF[$name]}" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "${PID_OF[$name]}" 2>/dev/null; then
            die "node $name did not answer on ${URL_OF[$name]}/healthz within 30 s"
        fi
        wait "${PID_OF[$name]}" 2>/dev/null || true
        grep -q 'Address already in use' "$WORK/nodes/$name/log" || die "node $name exited at start-up"
        log "node $name: port $port was taken; trying another (attempt $attempt)"
    done
    die "node $name could not find a free port"
}

# Sum of node $1's metric samples whose line matches $2.
metric() {
    curl -s --max-time 10 "${URL_OF[$1]}/metrics" | awk -v re="$2" '$0 ~ re { s += $NF } END { printf "%.0f\n", s }'
}
# "l1 l2 l3 origin" hits of node $1 so far.
hits() {
    local body
    body="$(curl -s --max-time 10 "${URL_OF[$1]}/metrics")"
    awk '
        /^tiercache_hits_total\{/ {
            t = $0; sub(/.*tier="/, "", t); sub(/".*/, "", t); h[t] += $NF
        }
        END { printf "%d %d %d %d\n", h["l1"], h["l2"], h["l3"], h["origin"] }
    ' <<<"$body"
}
# "a b c d" minus "e f g h", as "l1 x, l2 y, l3 z, origin w".
hits_delta() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        split(a, x, " "); split(b, y, " ")
        printf "L1 %d, L2 %d, L3 %d, origin %d", y[1] - x[1], y[2] - x[2], y[3] - x[3], y[4] - x[4]
    }'
}

# Waits until node $1's L3 upload queue is empty and it has uploaded at least $2 entries
# in all (at most 120 s); dies on failed or dropped uploads.
drain() {
    local node="$1" want="${2:-0}" depth up fail drop _
    for _ in $(seq 1200); do
        depth="$(metric "$node" '^tiercache_l3_queue_depth')"
        up="$(metric "$node" '^tiercache_l3_uploads_total')"
        ((depth == 0 && up >= want)) && break
        sleep 0.1
    done
    ((depth == 0 && up >= want)) || die "node $node: L3 queue depth $depth, $up uploads (want $want) after 120 s"
    fail="$(metric "$node" '^tiercache_l3_upload_failures_total')"
    drop="$(metric "$node" '^tiercache_l3_upload_dropped_total')"
    ((fail == 0 && drop == 0)) || log "warning: node $node: $fail failed and $drop dropped L3 uploads"
    echo "$up"
}

# Waits (at most 30 s) until the L3 entry of package $2's tarball exists under bucket prefix
# $1 (a signed HEAD on moto, at <prefix>/entries/<scope>/<kind>/<name>). A fill through the
# fleet lock is uploaded by its holder directly, not through the upload queue, so neither
# tiercache_l3_queue_depth nor tiercache_l3_uploads_total shows it.
wait_l3_tgz() {
    local url="$S3/$BUCKET/$1/entries/global/npm-tgz/$2~$2-1.0.0.tgz" _
    for _ in $(seq 300); do
        [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -I --aws-sigv4 aws:amz:us-east-1:s3 \
            --user bench:bench "$url" || true)" == 200 ]] && return 0
        sleep 0.1
    done
    die "the L3 entry of $2's tarball did not appear under $1/ within 30 s"
}

EXPECT_LOG="$WORK/expect"
: >"$EXPECT_LOG"
# Notes a tier header that is not the one expected.
expect_tier() {
    local what="$1" want="$2" got="$3"
    [[ "$got" == "$want" ]] || echo "$what: x-tiercache-tier '${got:-none}', expected '$want'" >>"$EXPECT_LOG"
}

# One GET of $1 with curl (into file $2, else nowhere; signed when it is moto's); prints
# "code time_total time_starttransfer bytes tier xcache".
get_one() {
    local out sign=()
    [[ "$1" == "http://$HOST:"* ]] || die "refusing to GET $1: not $HOST"
    [[ "$1" == "$S3/"* ]] && sign=(--aws-sigv4 aws:amz:us-east-1:s3 --user bench:bench)
    out="$(curl -s "${sign[@]}" -o "${2:-/dev/null}" --max-time 120 \
        -w '%{http_code} %{time_total} %{time_starttransfer} %{size_download} [%header{x-tiercache-tier}] [%header{x-cache}]' \
        "$1" || true)"
    awk '{ t = $5; c = $6; gsub(/[][]/, "", t); gsub(/[][]/, "", c); printf "%s %s %s %s %s %s\n", $1, $2, $3, $4, (t == "" ? "-" : t), (c == "" ? "-" : c) }' <<<"$out"
}

log "starting tiercache nodes A (L1), B (--l1-budget 0), C (cold), D (no L3), E (L3, origin)"
# shellcheck disable=SC2046
start_node A "$WORK/tiercache.toml" $(fleet_args tiers)
# shellcheck disable=SC2046
start_node B "$WORK/tiercache.toml" --l1-budget 0 $(fleet_args tiers)
# shellcheck disable=SC2046
start_node C "$WORK/tiercache.toml" $(fleet_args tiers)
start_node D "$WORK/tiercache.toml"
# shellcheck disable=SC2046
start_node E "$WORK/tiercache.toml" $(fleet_args tiers)
curl -s --max-time 10 "${URL_OF[C]}/healthz" | jq -e '.status == "ok"' >/dev/null ||
    die "node C is not healthy with L3 and Redis: $(curl -s --max-time 10 "${URL_OF[C]}/healthz")"

obj_url() { echo "${URL_OF[$1]}/objects/global/object/$2"; }
npm_tgz_url() { echo "${URL_OF[$1]}/npm/$2/-/$2-1.0.0.tgz"; }

# The 1 MiB entry: PUT through A, uploaded, read once by B (from L3, into its L2).
code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 60 -X PUT -H 'Expect:' \
    -H 'content-type: application/octet-stream' --data-binary "@$REG/objects/bench-1m" "$(obj_url A bench-1m)")"
[[ "$code" == 201 || "$code" == 200 ]] || die "PUT bench-1m to A answered $code"
UP_A="$(drain A 1)"
read -r code _ _ bytes tier _ < <(get_one "$(obj_url B bench-1m)" "$WORK/got")
[[ "$code" == 200 ]] || die "GET bench-1m from B answered $code"
cmp -s "$WORK/got" "$REG/objects/bench-1m" || die "B returned other bytes for bench-1m"
expect_tier "first GET of bench-1m on B (written by A)" l3 "$tier"
B_FIRST_TIER="$tier"
for node in A B; do
    read -r code _ _ _ tier _ < <(get_one "$(obj_url "$node" bench-1m)" "$WORK/got")
    [[ "$code" == 200 ]] || die "GET bench-1m from $node answered $code"
    cmp -s "$WORK/got" "$REG/objects/bench-1m" || die "$node returned other bytes for bench-1m"
done
[[ "$(curl -s "$ORIGIN/objects/bench-1m" | cmp - "$REG/objects/bench-1m" && echo same)" == same ]] ||
    die "nginx returns other bytes for bench-1m"

# N distinct 1 MiB entries for the L3 reads: random bytes with a different first 32 bytes each
# (so no two share a content hash), PUT through A and uploaded before anything reads them.
log "PUT $N distinct 1 MiB entries through A and wait for the L3 uploads"
mkdir -p "$WORK/l3"
L3_HASH=()
for i in $(seq -w 1 "$N"); do
    cp "$REG/objects/bench-1m" "$WORK/l3/$i"
    od -An -tx1 -N16 /dev/urandom | tr -d ' \n' | dd of="$WORK/l3/$i" bs=32 count=1 conv=notrunc status=none
    code="$(curl -s -o "$WORK/put.json" -w '%{http_code}' --max-time 60 -X PUT -H 'Expect:' \
        -H 'content-type: application/octet-stream' --data-binary "@$WORK/l3/$i" "$(obj_url A "bench-l3-$i")")"
    [[ "$code" == 201 || "$code" == 200 ]] || die "PUT bench-l3-$i to A answered $code"
    L3_HASH+=("$(jq -r '.hash // empty' "$WORK/put.json")")
done
t0="$(date +%s.%N)"
UP_A="$(drain A $((UP_A + N)))"
UPLOAD_WAIT="$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')"
# moto's own time for the blob an L3 hit reads (<prefix>/blobs/<hh>/<hash>), as a reference.
blob_url() { echo "$S3/$BUCKET/tiers/blobs/${L3_HASH[$1]:0:2}/${L3_HASH[$1]}"; }
MOTO_REF=0
if [[ -n "${L3_HASH[0]}" ]] && [[ "$(get_one "$(blob_url 0)" "$WORK/got" | cut -d' ' -f1)" == 200 ]] &&
    cmp -s "$WORK/got" "$WORK/l3/$(printf '%0*d' "${#N}" 1)"; then
    MOTO_REF=1
else
    log "warning: entry 1's blob is not at $(blob_url 0): no moto reference row"
fi

# Packuments first (so the timed tarball GETs fetch only the tarball): D's and E's.
log "fetching the packuments of D's and E's packages"
for i in $(seq 0 $((N - 1))); do
    for pair in "D ${ORIGIN_D[$i]}" "E ${ORIGIN_E[$i]}"; do
        read -r node name <<<"$pair"
        code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 60 \
            -H 'Accept: application/vnd.npm.install-v1+json' "${URL_OF[$node]}/npm/$name")"
        [[ "$code" == 200 ]] || die "packument $name via $node answered $code"
    done
done
drain E 0 >/dev/null

# --- step 1: sequential GETs, interleaved ---------------------------------------------------

RESULTS="$WORK/results"
: >"$RESULTS"
LABELS=(l1 l2 l3 origin origin_fleet nginx)
((MOTO_REF)) && LABELS+=(moto_entry moto)
LABELS+=(fsync)
declare -A NODE_OF=([l1]=A [l2]=B [l3]=C [origin]=D [origin_fleet]=E)

seq_url() {
    local i="$2"
    case "$1" in
    l1) obj_url A bench-1m ;;
    l2) obj_url B bench-1m ;;
    l3) obj_url C "bench-l3-$(printf '%0*d' "${#N}" $((i + 1)))" ;;
    origin) npm_tgz_url D "${ORIGIN_D[$i]}" ;;
    origin_fleet) npm_tgz_url E "${ORIGIN_E[$i]}" ;;
    nginx) tgz_url "${ORIGIN_D[$i]}" ;;
    moto) blob_url "$i" ;;
    moto_entry) echo "$S3/$BUCKET/tiers/entries/global/object/bench-l3-$(printf '%0*d' "${#N}" $((i + 1)))" ;;
    esac
}

# Seconds to write 1 MiB to a new file on the nodes' file system and fsync it (dd
# conv=fsync): what an L2 write costs the disk.
write_fsync() {
    local t0 t1
    t0="$(date +%s.%N)"
    timeout 60 dd if="$REG/objects/bench-1m" of="$WORK/nodes/dd-ref" bs=1M conv=fsync status=none
    t1="$(date +%s.%N)"
    rm -f "$WORK/nodes/dd-ref"
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", b - a }'
}

sequential_loop() {
    local i k label line t
    for i in $(seq 0 $((N - 1))); do
        for k in $(seq 0 $((${#LABELS[@]} - 1))); do
            label="${LABELS[$(((i + k) % ${#LABELS[@]}))]}"
            if [[ "$label" == fsync ]]; then
                t="$(write_fsync)"
                line="200 $t $t $MIB - -"
            else
                line="$(get_one "$(seq_url "$label" "$i")")"
            fi
            echo "seq $label $line" >>"$RESULTS"
            # E, the fleet lock's holder, uploads the tarball to L3 after answering: let it
            # finish before the next GET.
            if [[ "$label" == origin_fleet ]]; then
                wait_l3_tgz tiers "${ORIGIN_E[$i]}"
            fi
        done
    done
}

declare -A HITS0=()
for node in A B C D E; do HITS0[$node]="$(hits "$node")"; done
origin0="$(origin_lines)"
settle 1 30
log "step 1: $N sequential GETs per tier, interleaved (L1, L2, L3, origin, origin on a fleet node, nginx)"
measured "sequential GETs ($N per tier, interleaved)" sequential_loop
SEQ_ORIGIN_REQS=$(($(origin_lines) - origin0))
declare -A SEQ_HITS=()
for node in A B C D E; do SEQ_HITS[$node]="$(hits_delta "${HITS0[$node]}" "$(hits "$node")")"; done

# Every GET must have been a 200 with the whole body.
awk '$1 == "seq" && $3 != 200 { print }' "$RESULTS" | head -n 5 | while read -r line; do log "failed GET: $line"; done
bad="$(awk '$1 == "seq" && $3 != 200 { n++ } END { print n + 0 }' "$RESULTS")"
((bad == 0)) || die "$bad sequential GETs did not answer 200"
for label in "${LABELS[@]}"; do
    case "$label" in l1 | l2 | l3) want="$MIB" ;; *) want="" ;; esac
    [[ -z "$want" ]] && continue
    awk -v l="$label" -v w="$want" '$1 == "seq" && $2 == l && $6 != w { n++ } END { exit n > 0 }' "$RESULTS" ||
        die "some $label GETs did not return $want bytes"
done
while read -r label tier; do
    case "$label" in
    l1 | l2 | l3) expect_tier "sequential $label GET" "$label" "$tier" ;;
    esac
done < <(awk '$1 == "seq" { print $2, $7 }' "$RESULTS")
# Bytes: what C now holds (promoted) is what A stored; what D and E serve is the origin's.
for i in $(seq -w 1 "$N"); do
    get_one "$(obj_url C "bench-l3-$i")" "$WORK/got" >/dev/null
    cmp -s "$WORK/got" "$WORK/l3/$i" || die "C returned other bytes for bench-l3-$i"
done
for i in $(seq 0 $((N - 1))); do
    get_one "$(npm_tgz_url D "${ORIGIN_D[$i]}")" "$WORK/got" >/dev/null
    cmp -s "$WORK/got" "$(tgz_path "${ORIGIN_D[$i]}")" || die "D returned other bytes for ${ORIGIN_D[$i]}"
    get_one "$(npm_tgz_url E "${ORIGIN_E[$i]}")" "$WORK/got" >/dev/null
    cmp -s "$WORK/got" "$(tgz_path "${ORIGIN_E[$i]}")" || die "E returned other bytes for ${ORIGIN_E[$i]}"
done
UPLOADS_B="$(metric B '^tiercache_l3_uploads_total')"
UPLOADS_C="$(metric C '^tiercache_l3_uploads_total')"
rm -f "$WORK/got"

# --- step 2: parallel GETs ------------------------------------------------------------------

log "starting fresh nodes C2 (cold, L3) and D2 (no L3) for the parallel GETs"
# shellcheck disable=SC2046
start_node C2 "$WORK/tiercache.toml" $(fleet_args tiers)
start_node D2 "$WORK/tiercache.toml"
for name in "${ORIGIN_D[@]}"; do
    code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 60 \
        -H 'Accept: application/vnd.npm.install-v1+json' "${URL_OF[D2]}/npm/$name")"
    [[ "$code" == 200 ]] || die "packument $name via D2 answered $code"
done

par_url() {
    local i="$2"
    case "$1" in
    l3) obj_url C2 "bench-l3-$(printf '%0*d' "${#N}" $((i + 1)))" ;;
    origin) npm_tgz_url D2 "${ORIGIN_D[$i]}" ;;
    esac
}
# N GETs of target $1, PARALLEL at once, one curl process; one line per transfer in $2.
parallel_gets() {
    local label="$1" out="$2" i
    for i in $(seq 0 $((N - 1))); do
        printf 'url = "%s"\noutput = "/dev/null"\n' "$(par_url "$label" "$i")"
    done >"$WORK/curl-par.cfg"
    curl -s --parallel --parallel-immediate --parallel-max "$PARALLEL" --max-time 120 --config "$WORK/curl-par.cfg" \
        -w '%{http_code} %{time_total} %{size_download} [%header{x-tiercache-tier}]\n' >"$out"
}
PAR_LABELS=(l3 origin)
declare -A PAR_NODE_OF=([l3]=C2 [origin]=D2)
declare -A PAR_HITS=()
for label in "${PAR_LABELS[@]}"; do
    node="${PAR_NODE_OF[$label]}"
    settle 1 30
    log "step 2: $N GETs, $PARALLEL at once: $label"
    h0="$(hits "$node")"
    o0="$(origin_lines)"
    measured "parallel GETs ($N, $PARALLEL at once), $label" parallel_gets "$label" "$WORK/par-$label"
    # An origin fill is counted once it is stored, which may be after its client has the bytes.
    settle 1 30
    PAR_HITS[$label]="$(hits_delta "$h0" "$(hits "$node")"), origin requests $(($(origin_lines) - o0))"
    awk -v l="$label" -v w="$LAST_WALL" '{ n++; b += $3; if ($1 != 200) e++ } END {
        printf "par %s %d %d %d %.4f\n", l, n, e + 0, b, w }' "$WORK/par-$label" >>"$RESULTS"
    [[ "$label" == l3 ]] && while read -r tier; do
        expect_tier "parallel l3 GET on C2" l3 "$tier"
    done < <(sed -E 's/.*\[(.*)\]$/\1/' "$WORK/par-l3")
done
stop_node C2
stop_node D2
stop_node D
stop_node E
stop_node C

# --- step 3: wrk ----------------------------------------------------------------------------

run_wrk() {
    local dur="$1" url="$2" secs
    [[ "$url" == "http://$HOST:"* ]] || die "refusing to load $url: not $HOST"
    secs="$(seconds_of "$dur")"
    timeout $((secs + 90)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"$dur" --timeout 30s --latency "$url"
}

# Requests/s, MiB/s, errors, p50 and p99 (ms) and requests from a wrk report on stdin (this
# script's own columns: it replaces the shared parse_wrk).
parse_wrk() {
    awk '
        function mib(v,   n, u) {
            n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
            if (u == "GB") return n * 1024
            if (u == "MB") return n
            if (u == "KB") return n / 1024
            return n / 1048576
        }
        function ms(v,   n, u) {
            n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
            if (u == "us") return n / 1000
            if (u == "s") return n * 1000
            if (u == "m") return n * 60000
            return n
        }
        /^Requests\/sec:/ { rps = $2 }
        /^Transfer\/sec:/ { mibs = mib($2) }
        /requests in/ { reqs = $1 }
        /Non-2xx or 3xx responses:/ { errs += $NF }
        /Socket errors:/ { for (i = 3; i <= NF; i += 2) { gsub(/,/, "", $(i + 1)); errs += $(i + 1) } }
        /^ +50%/ { p50 = ms($2) }
        /^ +99%/ { p99 = ms($2) }
        END { printf "%.1f %.1f %d %.3f %.3f %d\n", rps, mibs, errs, p50, p99, reqs }
    '
}

WRK_LABELS=(l1 l2 nginx)
wrk_url() {
    case "$1" in
    l1) obj_url A bench-1m ;;
    l2) obj_url B bench-1m ;;
    nginx) echo "$ORIGIN/objects/bench-1m" ;;
    esac
}
if ((WARMUP_S > 0)); then
    log "wrk warm-up (${WARMUP} per target)"
    for label in "${WRK_LABELS[@]}"; do run_wrk "$WARMUP" "$(wrk_url "$label")" >/dev/null; done
fi
for round in $(seq "$ROUNDS"); do
    order=("${WRK_LABELS[@]:$(((round - 1) % 3))}" "${WRK_LABELS[@]:0:$(((round - 1) % 3))}")
    for label in "${order[@]}"; do
        settle 1 30
        log "step 3, round $round/$ROUNDS: wrk $label (wrk -t$THREADS -c$CONNECTIONS -d$DURATION)"
        node="${NODE_OF[$label]:-}"
        [[ -n "$node" ]] && h0="$(hits "$node")"
        measured "round $round, wrk $label" run_wrk "$DURATION" "$(wrk_url "$label")" >"$WORK/wrk.out"
        h="-"
        [[ -n "$node" ]] && h="$(hits_delta "$h0" "$(hits "$node")" | tr ' ' '_')"
        echo "wrk $label $(parse_wrk <"$WORK/wrk.out") $h" >>"$RESULTS"
    done
done
stop_node A
stop_node B

# --- step 4: the fleet ----------------------------------------------------------------------

log "starting nodes I1-I3 (independent), F1-F3 (fleet)$( ((SIMULTANEOUS)) && echo ", S1-S3 (fleet, simultaneous)")"
for k in 1 2 3; do
    start_node "I$k" "$WORK/tiercache.toml"
    # shellcheck disable=SC2046
    start_node "F$k" "$WORK/tiercache.toml" $(fleet_args fleet)
    if ((SIMULTANEOUS)); then
        # shellcheck disable=SC2046
        start_node "S$k" "$WORK/tiercache-sim.toml" $(fleet_args fleet-sim)
    fi
done

NPM_WORK="$WORK/npm"
mkdir -p "$NPM_WORK"
: >"$NPM_WORK/npmrc"
: >"$NPM_WORK/npmrc-global"
FLEET_RESULTS="$WORK/fleet"
: >"$FLEET_RESULTS"

# npm install of the project through node $1 into a fresh project with a fresh cache;
# output to $NPM_WORK/$1.log.
npm_install() {
    local node="$1" dir="$NPM_WORK/$1"
    mkdir -p "$dir/project" "$dir/cache"
    cp "$WORK/package.json" "$dir/project/"
    (cd "$dir/project" && npm_config_userconfig="$NPM_WORK/npmrc" npm_config_globalconfig="$NPM_WORK/npmrc-global" \
        timeout "$NPM_TIMEOUT" npm install --registry "${URL_OF[$node]}/npm/" --cache "$dir/cache" \
        --no-audit --no-fund --prefer-online --ignore-scripts --no-update-notifier --loglevel=warn) \
        >"$dir/log" 2>&1
}
# Packages installed by node $1's install (a package.json under node_modules/<name>/).
installed() { find "$NPM_WORK/$1/project/node_modules" -mindepth 2 -maxdepth 2 -name package.json 2>/dev/null | wc -l; }
# "packuments tarballs other" among the origin's log lines after line $1.
origin_since() {
    tail -n +$(($1 + 1)) "$ACCESS_LOG" | awk '{ if ($2 ~ /\.tgz$/) t++; else if ($2 ~ /^\/[^\/]+$/) p++; else o++ } END { print p + 0, t + 0, o + 0 }'
}

# One install through node $1, measured: appends "fleet node kind wall packuments tarballs
# other packages hits" to FLEET_RESULTS.
install_through() {
    local node="$1" kind="$2" o0 h0 rc=0 n
    settle 1 30
    log "step 4: npm install through $node ($kind)"
    o0="$(origin_lines)"
    h0="$(hits "$node")"
    measured "npm install via $node ($kind)" npm_install "$node" || rc=$?
    cp "$NPM_WORK/$node/log" "$WORK/last-npm.log"
    ((rc == 0)) || die "npm install through $node failed (exit $rc)"
    n="$(installed "$node")"
    ((n == FLEET_PACKAGES)) || die "npm install through $node installed $n packages, not $FLEET_PACKAGES"
    echo "fleet $node $kind $LAST_WALL $(origin_since "$o0") $n $(hits_delta "$h0" "$(hits "$node")" | tr ' ' '_')" >>"$FLEET_RESULTS"
}

for k in 1 2 3; do
    install_through "I$k" independent
    install_through "F$k" fleet
    # What F$k fetched or stored reaches the bucket before the next fleet node asks for it:
    # the queued uploads, and the tarballs its fleet locks uploaded directly.
    for j in $(seq 1 "$k"); do drain "F$j" 0 >/dev/null; done
    for name in "${FLEET_NAMES[@]}"; do wait_l3_tgz fleet "$name"; done
done

if ((SIMULTANEOUS)); then
    simultaneous() {
        local pids=() k rc=0
        for k in 1 2 3; do
            npm_install "S$k" &
            pids+=($!)
        done
        for k in 0 1 2; do wait "${pids[$k]}" || rc=$?; done
        return "$rc"
    }
    settle 1 30
    log "step 4: npm install through S1, S2 and S3 at the same time"
    o0="$(origin_lines)"
    declare -A SIM_H0=()
    for k in 1 2 3; do SIM_H0[$k]="$(hits "S$k")"; done
    rc=0
    measured "npm install via S1, S2, S3 at once" simultaneous || rc=$?
    ((rc == 0)) || {
        for k in 1 2 3; do cp "$NPM_WORK/S$k/log" "$WORK/last-npm.log"; done
        die "a simultaneous npm install failed (exit $rc)"
    }
    for k in 1 2 3; do
        n="$(installed "S$k")"
        ((n == FLEET_PACKAGES)) || die "npm install through S$k installed $n packages, not $FLEET_PACKAGES"
    done
    SIM_ORIGIN="$(origin_since "$o0")"
    SIM_WALL="$LAST_WALL"
    SIM_HITS=""
    for k in 1 2 3; do SIM_HITS+="S$k: $(hits_delta "${SIM_H0[$k]}" "$(hits "S$k")"); "; done
fi
NPM_VERSION="$(npm --version 2>/dev/null | tail -n 1)"

# --- report ---------------------------------------------------------------------------------

# "n median p90 mean" of column $3 of the result lines "$1 $2 ...".
stats_of() {
    awk -v k="$1" -v l="$2" -v c="$3" '$1 == k && $2 == l { print $c }' "$RESULTS" | sort -g |
        awk '{ v[NR] = $1; s += $1 } END {
            if (NR == 0) { print "0 - - -"; exit }
            m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            i = int(0.9 * NR); if (i < 0.9 * NR) i++; if (i < 1) i = 1
            printf "%d %.6f %.6f %.6f\n", NR, m, v[i], s / NR
        }'
}
# Median of column $3 of lines "$1 $2 ...".
median_of() { stats_of "$1" "$2" "$3" | cut -d' ' -f2; }
ms() { awk -v v="$1" 'BEGIN { if (v == "-" || v == "") print "-"; else if (v * 1000 < 10) printf "%.2f", v * 1000; else printf "%.1f", v * 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "-" && b != "-" && b > 0) { r = a / b; if (r < 10) printf "%.2f", r; else printf "%.0f", r } else print "-" }'; }
num() { awk -v v="$1" 'BEGIN { if (v == "-" || v == "") print "-"; else if (v < 100) printf "%.1f", v; else printf "%.0f", v }'; }
# What the tier header said across the sequential GETs of label $1, e.g. "l3 ×50".
tiers_seen() {
    awk -v l="$1" '$1 == "seq" && $2 == l { t[($7 == "-" ? "(none)" : $7) " / " $8]++ } END { for (k in t) printf "%s%s ×%d", (n++ ? "; " : ""), k, t[k] }' "$RESULTS"
}
# Sequential MB/s for label $1 (bytes / median time_total).
seq_mbs() {
    local bytes med
    bytes="$(median_of seq "$1" 6)"
    med="$(median_of seq "$1" 4)"
    awk -v b="$bytes" -v t="$med" 'BEGIN { if (t > 0) printf "%.0f", b / t / 1e6; else print "-" }'
}
# Parallel MB/s and req/s for label $1.
par_field() { awk -v l="$1" -v c="$2" '$1 == "par" && $2 == l { print $c }' "$RESULTS"; }
par_mbs() { awk -v b="$(par_field "$1" 5)" -v w="$(par_field "$1" 6)" 'BEGIN { if (w > 0) printf "%.0f", b / w / 1e6; else print "-" }'; }

l1_med="$(median_of seq l1 4)"
declare -A ROW_NAME=(
    [l1]="L1 hit (node A, memory)"
    [l2]="L2 hit (node B, \`--l1-budget 0\`, disk)"
    [l3]="L3 hit (node C, cold: moto → verify → L2/L1)"
    [origin]="origin fetch (node D, no L3/Redis: npm tarball from nginx, integrity-checked)"
    [origin_fleet]="origin fetch on a fleet node (node E: L3 miss, Redis lock, origin)"
    [nginx]="reference: nginx sending D's tarball directly"
    [moto]="reference: moto sending C's blob directly (one signed GET)"
    [moto_entry]="reference: moto sending C's entry document (one signed GET)"
    [fsync]="reference: the disk writing and fsyncing 1 MiB (dd conv=fsync, no HTTP)"
)
fleet_col() { awk -v k="$1" -v c="$2" '$1 == "fleet" && $3 == k { printf "%s%s", (n++ ? " " : ""), $c }' "$FLEET_RESULTS"; }
fleet_sum() { awk -v k="$1" '$1 == "fleet" && $3 == k { s += $5 + $6 + $7 } END { print s + 0 }' "$FLEET_RESULTS"; }
per_install() { awk -v k="$1" '$1 == "fleet" && $3 == k { printf "%s%d (%d + %d)", (n++ ? ", " : ""), $5 + $6 + $7, $5, $6 }' "$FLEET_RESULTS"; }
walls() { awk -v k="$1" '$1 == "fleet" && $3 == k { printf "%s%.1f", (n++ ? ", " : ""), $4 }' "$FLEET_RESULTS"; }
IND_TOTAL="$(fleet_sum independent)"
FLEET_TOTAL="$(fleet_sum fleet)"
saved() { awk -v f="$1" -v i="$2" 'BEGIN { if (i > 0) printf "%.0f %%", (1 - f / i) * 100; else print "-" }'; }

mkdir -p "$(dirname "$OUT")"
{
    echo "# Shared tier and fleet benchmark"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'), commit: $commit$dirty"
    echo "- machine: $(nproc) cores; curl, wrk, npm and every server share them; data on $(df -PT "$WORK" | awk 'NR == 2 { print $1 " (" $2 ")" }')"
    echo "- L3: moto $MOTO_VERSION (\`moto_server\`, a Python in-memory S3 server) on loopback; Redis $REDIS_VERSION; origin: nginx $("$NGINX" -v 2>&1 | sed 's/^nginx version: //') serving generated packuments and tarballs; npm $NPM_VERSION"
    echo "- tiercache nodes: defaults except as noted, \`[npm] fresh_for = \"1h\"\`; every node on 127.0.0.1"
    echo "- entries: 1 MiB of random bytes; L3 reads: $N distinct 1 MiB entries (PUT through A; the upload of all $N took ${UPLOAD_WAIT} s after the last PUT); origin reads: $N distinct tarballs per node, $TGZ_BYTES bytes on average (gzip'd tar of 1 MiB random filler)"
    echo
    echo "## GET of a 1 MiB entry per tier"
    echo
    echo "$N sequential GETs per row, interleaved (each iteration GETs every row once, in a rotating order), one curl per GET (a new connection each); latency = curl's time_total."
    echo "Throughput of L3 hits and origin fetches: $N GETs, $PARALLEL at once (one \`curl --parallel\`), on fresh nodes C2 and D2; of L1 and L2 hits: wrk, below."
    echo
    echo "| GET | median ms | p90 ms | × L1 (median) | sequential MB/s | MB/s, $PARALLEL at once | x-tiercache-tier / X-Cache seen |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | --- |"
    for label in "${LABELS[@]}"; do
        read -r _ med p90 _ < <(stats_of seq "$label" 4)
        pm="-"
        [[ "$label" == l3 || "$label" == origin ]] && pm="$(par_mbs "$label")"
        mbs="$(seq_mbs "$label")" seen="$(tiers_seen "$label")"
        [[ "$label" == moto_entry ]] && mbs="-"
        [[ "$label" == fsync ]] && seen="-"
        echo "| ${ROW_NAME[$label]} | $(ms "$med") | $(ms "$p90") | **$(ratio "$med" "$l1_med")×** | $mbs | $pm | $seen |"
    done
    echo
    echo "| ratio (median latency, same run) | |"
    echo "| --- | ---: |"
    echo "| L2 / L1 | $(ratio "$(median_of seq l2 4)" "$l1_med")× |"
    echo "| L3 / L1 | $(ratio "$(median_of seq l3 4)" "$l1_med")× |"
    echo "| L3 / L2 | $(ratio "$(median_of seq l3 4)" "$(median_of seq l2 4)")× |"
    echo "| origin / L1 | $(ratio "$(median_of seq origin 4)" "$l1_med")× |"
    echo "| origin / L3 | $(ratio "$(median_of seq origin 4)" "$(median_of seq l3 4)")× |"
    echo "| origin / nginx directly | $(ratio "$(median_of seq origin 4)" "$(median_of seq nginx 4)")× |"
    echo "| origin on a fleet node / origin on a lone node | $(ratio "$(median_of seq origin_fleet 4)" "$(median_of seq origin 4)")× |"
    ((MOTO_REF)) && echo "| L3 / moto's entry and blob GETs alone | $(ratio "$(median_of seq l3 4)" "$(awk -v a="$(median_of seq moto 4)" -v b="$(median_of seq moto_entry 4)" 'BEGIN { print a + b }')")× |"
    echo
    echo "Time to first byte (median ms): $(for label in "${LABELS[@]}"; do printf '%s %s; ' "$label" "$(ms "$(median_of seq "$label" 5)")"; done)"
    echo
    echo "Store hits per node during the sequential GETs: A: ${SEQ_HITS[A]}; B: ${SEQ_HITS[B]}; C: ${SEQ_HITS[C]}; D: ${SEQ_HITS[D]}; E: ${SEQ_HITS[E]}. Origin (nginx) requests during them: $SEQ_ORIGIN_REQS ($N D tarballs, $N E tarballs, $N direct)."
    echo "During the parallel GETs: C2: ${PAR_HITS[l3]}; D2: ${PAR_HITS[origin]}. Parallel wall times (s): $(for label in "${PAR_LABELS[@]}"; do printf '%s %s; ' "$label" "$(par_field "$label" 6)"; done)errors: $(awk '$1 == "par" { e += $4 } END { print e + 0 }' "$RESULTS")."
    echo "B's first GET of the entry (written by A) was answered by \`${B_FIRST_TIER}\`. L3 uploads by the readers B and C (should be 0): $UPLOADS_B and $UPLOADS_C."
    echo
    echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION on the 1 MiB entry, $ROUNDS round(s), median shown (nginx: the same bytes as a static file):"
    echo
    echo "| target | req/s | MiB/s | p50 ms | p99 ms | errors | × L1 req/s | store hits (last round) |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    l1_rps="$(median_of wrk l1 3)"
    declare -A WRK_NAME=([l1]="L1 hit (node A)" [l2]="L2 hit (node B)" [nginx]="nginx, the same file")
    for label in "${WRK_LABELS[@]}"; do
        rps="$(median_of wrk "$label" 3)"
        errs="$(awk -v l="$label" '$1 == "wrk" && $2 == l { e += $5 } END { print e + 0 }' "$RESULTS")"
        hl="$(awk -v l="$label" '$1 == "wrk" && $2 == l { h = $9 } END { gsub(/_/, " ", h); print h }' "$RESULTS")"
        echo "| ${WRK_NAME[$label]} | $(num "$rps") | $(num "$(median_of wrk "$label" 4)") | $(awk -v v="$(median_of wrk "$label" 6)" 'BEGIN { printf "%.2f", v }') | $(awk -v v="$(median_of wrk "$label" 7)" 'BEGIN { printf "%.2f", v }') | $errs | $(ratio "$rps" "$l1_rps")× | $hl |"
    done
    if ((ROUNDS > 1)); then
        echo
        echo "Per round (req/s): $(for label in "${WRK_LABELS[@]}"; do printf '%s %s; ' "$label" "$(awk -v l="$label" '$1 == "wrk" && $2 == l { printf "%s%s", (n++ ? ", " : ""), $3 }' "$RESULTS")"; done)"
    fi
    echo
    echo "## Origin requests: a 3-node fleet vs 3 independent nodes"
    echo
    echo "One project: $HALF direct dependencies, $FLEET_PACKAGES packages in all (each direct dependency depends on two of the others), ~$FLEET_KIB KiB tarballs, installed with \`npm install --prefer-online\` (npm $NPM_VERSION) into a fresh project with a fresh \`--cache\` each time, through each node once, interleaved (I1, F1, I2, F2, I3, F3); the fleet's L3 upload queues drained between installs. Origin requests are nginx's access-log lines (packuments + tarballs)."
    echo
    echo "| setup | origin requests per install (packuments + tarballs) | total | npm wall s per install |"
    echo "| --- | --- | ---: | --- |"
    echo "| 3 independent nodes (no L3, no Redis) | $(per_install independent) | $IND_TOTAL | $(walls independent) |"
    echo "| 3-node fleet (shared moto bucket + Redis), one after another | $(per_install fleet) | $FLEET_TOTAL | $(walls fleet) |"
    if ((SIMULTANEOUS)); then
        read -r sp st so <<<"$SIM_ORIGIN"
        echo "| 3-node fleet, all three installing at the same moment | together: $((sp + st + so)) ($sp + $st) | $((sp + st + so)) | $(awk -v v="$SIM_WALL" 'BEGIN { printf "%.1f", v }') (all three at once) |"
    fi
    echo
    echo "**Origin requests saved by the fleet: $(saved "$FLEET_TOTAL" "$IND_TOTAL")** (1 − $FLEET_TOTAL / $IND_TOTAL)$( ((SIMULTANEOUS)) && echo "; installing simultaneously: $(saved "$((sp + st + so))" "$IND_TOTAL")")."
    echo
    echo "Store hits per install: $(awk '$1 == "fleet" { h = $9; gsub(/_/, " ", h); printf "%s%s: %s", (n++ ? "; " : ""), $2, h }' "$FLEET_RESULTS")."
    ((SIMULTANEOUS)) && echo "Simultaneous: ${SIM_HITS%; }."
    if [[ -s "$EXPECT_LOG" ]]; then
        echo
        echo "**Unexpected tier headers** ($(wc -l <"$EXPECT_LOG") in all; the first 10):"
        echo
        sort "$EXPECT_LOG" | uniq -c | head -n 10 | sed 's/^ */- /'
    fi
    echo
    echo "Other load on the machine during each measurement (the machine's busy CPU time less the servers' and the client's, in cores; at most $(awk '{ for (i = 1; i <= NF; i++) if ($i == "processes") { v = $(i + 1); if (v > m) m = v } } END { printf "%.2f", m }' "$NOISE_LOG") of $(nproc)):"
    echo
    sed 's/^/- /' "$NOISE_LOG"
} >"$OUT"

cat "$OUT"
log "written to $OUT"
