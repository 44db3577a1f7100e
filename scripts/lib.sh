# Shared by scripts/run and scripts/test: packages, the build, and private
# Postgres, Redis and nginx instances on loopback.  Sourced, not run.

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
pgbin=/usr/lib/postgresql/15/bin
pguser=scenario_pg

say() { printf '%s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Debian 12 packages the product and its tests need.
packages=(
    build-essential nginx nginx-dev libpq-dev libhiredis-dev
    libjansson-dev libsodium-dev postgresql-15 postgresql-client-15
    redis-server wrk curl ca-certificates iproute2 procps
    libtest-base-perl libtest-longstring-perl libtext-diff-perl
    liblist-moreutils-perl libipc-run3-perl libprotocol-websocket-perl
    libwww-perl libcrypt-argon2-perl
    chromium
)

install_packages() {
    local missing=() p
    # node and npm run the browser tests; on a fresh Debian 12 they come from apt
    command -v node >/dev/null 2>&1 || missing+=(nodejs npm)
    for p in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null \
            | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    say "installing: ${missing[*]}"
    [ "$(id -u)" -eq 0 ] || die "run as root to install packages"
    export DEBIAN_FRONTEND=noninteractive
    # the package's own nginx and Redis must not start as services
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" \
        > /tmp/scenario-apt.log 2>&1 || {
        tail -20 /tmp/scenario-apt.log >&2
        rm -f /usr/sbin/policy-rc.d
        die "apt-get install failed"
    }
    rm -f /usr/sbin/policy-rc.d
}

build_module() {
    "$top/scripts/build" >/dev/null || die "the module did not build"
}

# Postgres refuses to run as root: it runs as a system user of its own.
pg_start() {   # dir port
    local dir=$1 port=$2
    id -u "$pguser" >/dev/null 2>&1 \
        || useradd --system --no-create-home --shell /usr/sbin/nologin \
                   "$pguser"
    mkdir -p "$dir"
    chown "$pguser" "$dir"
    chmod 700 "$dir"
    runuser -u "$pguser" -- test -w "$dir" \
        || die "$dir is not reachable by $pguser (check the parent folders)"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        runuser -u "$pguser" -- "$pgbin/initdb" -D "$dir/data" -A trust \
            -U postgres --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
            || die "initdb failed: see $dir/initdb.log"
    fi
    if ! pg_ready "$port"; then
        port_check "$port" Postgres
        runuser -u "$pguser" -- "$pgbin/pg_ctl" -D "$dir/data" \
            -l "$dir/postgres.log" -w -t 30 \
            -o "-p $port -k $dir -c listen_addresses=127.0.0.1" \
            start >/dev/null || die "postgres did not start: $dir/postgres.log"
    fi
    psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -qAt \
        -c "SELECT 1 FROM pg_database WHERE datname = 'scenario'" \
        | grep -q 1 \
        || psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -q \
               -c "CREATE DATABASE scenario"
}

# Who listens on a port: "name (pid N)", or nothing when it is free.
port_holder() {  # port
    ss -Hltnp "sport = :$1" 2>/dev/null \
        | sed -n 's/.*users:(("\([^"]*\)",pid=\([0-9]*\).*/\1 (pid \2)/p' \
        | head -1
}

# Dies, naming the holder, when something else listens on the port.
port_check() {   # port what variable
    ss -Hltn "sport = :$1" 2>/dev/null | grep -q . || return 0
    local holder
    holder=$(port_holder "$1")
    die "cannot listen on 127.0.0.1:$1 for $2: it is taken by ${holder:-another process}${3:+; choose another with $3=...}"
}

pg_ready() { "$pgbin/pg_isready" -q -h 127.0.0.1 -p "$1" 2>/dev/null; }

pg_stop() {    # dir
    [ -f "$1/data/postmaster.pid" ] || return 0
    runuser -u "$pguser" -- "$pgbin/pg_ctl" -D "$1/data" -m fast -w stop \
        >/dev/null 2>&1 || true
}

migrate() {    # port [--no-seed]
    local port=$1; shift
    PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres PGDATABASE=scenario \
        "$top/scripts/migrate" "$@" >/dev/null || die "migrations failed"
}

# PONG, not just an answer: while Redis loads its append-only file it
# answers LOADING (and redis-cli exits 0), and a FLUSHALL sent then is
# refused, so the last run's keys (a session's chat context) would survive
redis_pong() {   # port
    [ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" = PONG ]
}

redis_start() {  # dir port
    local dir=$1 port=$2
    mkdir -p "$dir"
    if ! redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1; then
        port_check "$port" Redis
        redis-server --bind 127.0.0.1 --port "$port" --save '' \
            --appendonly yes --appendfsync everysec --daemonize yes \
            --dir "$dir" --pidfile "$dir/redis.pid" \
            --logfile "$dir/redis.log" \
            || die "redis did not start"
    fi
    for _ in $(seq 100); do
        redis_pong "$port" && return 0
        sleep 0.1
    done
    die "redis did not answer: $dir/redis.log"
}

redis_stop() {   # dir port
    redis-cli -h 127.0.0.1 -p "$2" shutdown nosave >/dev/null 2>&1 || true
    rm -f "$1/redis.pid"
}

# conf/nginx.conf with its @NAME@ placeholders filled from the environment
render_conf() {  # template out
    local line
    perl -pe 's/\@([A-Z_]+)\@/exists $ENV{"SCN_$1"} ? $ENV{"SCN_$1"} : die "unset: $1\n"/ge' \
        "$1" > "$2" || die "cannot render $1"
}

wait_http() {    # url
    for _ in $(seq 100); do
        curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# The stand-in model server: OpenAI's streaming wire format, on loopback.
stub_start() {   # dir port [delay-ms]
    local dir=$1 port=$2 delay=${3:-30}
    mkdir -p "$dir"
    stub_stop "$dir"
    port_check "$port" "the stand-in model server"
    "$top/build/openai-stub" --listen "127.0.0.1:$port" --delay-ms "$delay" \
        --log "$dir/stub.log" --pid "$dir/stub.pid" --daemon \
        || die "the stand-in model server did not start"
    for _ in $(seq 50); do
        curl -fsS -o /dev/null "http://127.0.0.1:$port/health" 2>/dev/null \
            && return 0
        sleep 0.1
    done
    die "the stand-in model server does not answer: $dir/stub.log"
}

stub_stop() {    # dir
    [ -f "$1/stub.pid" ] || return 0
    local pid
    pid=$(cat "$1/stub.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do     # gone, and its port with it
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    rm -f "$1/stub.pid"
}
