#!/usr/bin/env bash
# A throwaway PostgreSQL server for the store's tests.
#
#   scripts/postgres-test-server.sh start [DIR]   start a cluster in DIR (default: a new temp dir),
#                                                 print its URL on stdout (and nothing else there)
#   scripts/postgres-test-server.sh stop DIR      stop it and remove DIR
#
# On a loopback port nothing listens on, with trust authentication: never for real data.
# Run as root, it installs PostgreSQL with apt-get when initdb/pg_ctl are missing, and runs the
# server as the `postgres` OS user (initdb refuses root), creating that user if needed.
# Every wait is bounded.
set -euo pipefail

MARKER=".postgres-test-server"
DATABASE="agentcore_test"
START_SECONDS=60
STOP_SECONDS=30
APT_SECONDS=900

log() { echo "postgres-test-server: $*" >&2; }
die() { log "$*"; exit 1; }

find_bin_dir() {
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then
            echo "$dir"
            return 0
        fi
    done
    if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
        dirname "$(command -v initdb)"
        return 0
    fi
    return 1
}

ensure_postgres() {
    local dir
    if dir=$(find_bin_dir); then
        echo "$dir"
        return 0
    fi
    [[ $(id -u) -eq 0 ]] || die "initdb/pg_ctl not found; install PostgreSQL (apt-get install postgresql)"
    log "installing PostgreSQL with apt-get"
    timeout "$APT_SECONDS" apt-get update >&2
    DEBIAN_FRONTEND=noninteractive timeout "$APT_SECONDS" apt-get install -y --no-install-recommends postgresql >&2
    find_bin_dir || die "PostgreSQL was installed but initdb/pg_ctl are still not found"
}

server_user() {
    if [[ $(id -u) -ne 0 ]]; then
        id -un
        return 0
    fi
    if ! id postgres >/dev/null 2>&1; then
        useradd --system --no-create-home --shell /usr/sbin/nologin postgres >&2
    fi
    echo postgres
}

# Run a command as the server's OS user.
as_user() {
    local user=$1
    shift
    if [[ $(id -un) == "$user" ]]; then
        "$@"
    else
        runuser -u "$user" -- "$@"
    fi
}

port_is_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

pick_port() {
    local attempt port
    for attempt in $(seq 1 100); do
        port=$((20000 + RANDOM % 40000))
        if port_is_free "$port"; then
            echo "$port"
            return 0
        fi
    done
    die "no free loopback port found"
}

start() {
    local dir=${1:-} bin user port attempt
    bin=$(ensure_postgres)
    user=$(server_user)
    if [[ -z $dir ]]; then
        dir=$(mktemp -d /tmp/agentcore-postgres.XXXXXX)
    fi
    mkdir -p "$dir"
    [[ -z $(ls -A "$dir") ]] || die "$dir is not empty"
    touch "$dir/$MARKER"
    chown -R "$user" "$dir"
    as_user "$user" test -w "$dir" || die "$user cannot write to $dir (a parent directory is closed to it?)"

    as_user "$user" "$bin/initdb" --pgdata="$dir/data" --username=postgres --auth=trust \
        --encoding=UTF8 --no-sync >"$dir/initdb.log" 2>&1 || {
        cat "$dir/initdb.log" >&2
        die "initdb failed"
    }
    for attempt in 1 2 3; do
        port=$(pick_port)
        # fsync off: a throwaway cluster trades durability for speed.
        if as_user "$user" "$bin/pg_ctl" --pgdata="$dir/data" --log="$dir/server.log" --wait \
            --timeout="$START_SECONDS" \
            --options="-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c synchronous_commit=off -c max_connections=200" \
            start >&2; then
            break
        fi
        log "start on port $port failed (attempt $attempt); server log:"
        tail -n 20 "$dir/server.log" >&2 || true
        port=""
    done
    [[ -n $port ]] || die "PostgreSQL did not start"
    echo "$port" >"$dir/port"
    timeout "$START_SECONDS" "$bin/createdb" --host=127.0.0.1 --port="$port" --username=postgres "$DATABASE" >&2 \
        || die "createdb failed"
    log "running in $dir; stop it with: $0 stop $dir"
    echo "postgresql://postgres@127.0.0.1:$port/$DATABASE"
}

stop() {
    local dir=${1:-} bin user
    [[ -n $dir ]] || die "usage: $0 stop DIR"
    [[ -f "$dir/$MARKER" ]] || die "$dir was not made by $0; not touching it"
    if [[ -f "$dir/data/postmaster.pid" ]]; then
        bin=$(find_bin_dir) || die "pg_ctl not found"
        user=$(stat -c %U "$dir/data")
        as_user "$user" "$bin/pg_ctl" --pgdata="$dir/data" --mode=fast --wait --timeout="$STOP_SECONDS" stop >&2 \
            || as_user "$user" "$bin/pg_ctl" --pgdata="$dir/data" --mode=immediate --wait \
                --timeout="$STOP_SECONDS" stop >&2 \
            || log "pg_ctl stop failed"
    fi
    rm -rf "$dir"
}

case ${1:-} in
    start) start "${2:-}" ;;
    stop) stop "${2:-}" ;;
    *) die "usage: $0 start [DIR] | stop DIR" ;;
esac
