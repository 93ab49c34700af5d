# shellcheck shell=bash
# A throwaway PostgreSQL server for the tests marked `postgres`.
#
# Meant to be sourced (it works under `set -euo pipefail`):
#
#   source .ci/postgres.sh
#   recsys_pg_start            # prints "== postgresql N on 127.0.0.1:PORT"
#   trap recsys_pg_stop EXIT   # stops the server and removes its files
#
# recsys_pg_start
#   - finds the newest /usr/lib/postgresql/*/bin; if there is none and we are root, installs
#     Debian's `postgresql` package (without its default "main" cluster);
#   - as root, runs the server as the system user `recsys-pg` (created if absent, no login),
#     since PostgreSQL refuses to run as root; otherwise as the current user;
#   - initdb in a fresh temporary directory (superuser `recsys`, auth `trust`), listening on
#     127.0.0.1 only, on a free port, with its unix socket inside the data directory;
#   - creates the database `recsys_test` and exports
#     RECSYS_TEST_POSTGRES_URL=postgresql+psycopg2://recsys@127.0.0.1:PORT/recsys_test
# recsys_pg_stop
#   - stops the server (fast mode) and removes its directory; safe to call more than once.
#
# Running the postgres tests by hand, from the repository root:
#
#   bash -c 'set -euo pipefail; source .ci/postgres.sh; recsys_pg_start;
#            trap recsys_pg_stop EXIT; . .venv/bin/activate; pytest -q -m postgres'
#
# or keep a server for a shell session (then `recsys_pg_stop` when done):
#
#   source .ci/postgres.sh && recsys_pg_start
#
# Without a server the tests skip; under CI (CI=true) they fail instead. If PostgreSQL is not
# installed and we are not root: under CI this is an error, otherwise a warning (tests skip).

RECSYS_PG_USER=recsys-pg

_recsys_pg_say() {
    echo "$@" >&2
}

# Newest /usr/lib/postgresql/<version>/bin holding initdb, or nothing.
_recsys_pg_bindir() {
    local dir
    for dir in /usr/lib/postgresql/*/bin; do
        if [[ -x $dir/initdb ]]; then
            echo "$dir"
        fi
    done | sort -V | tail -n 1
}

_recsys_pg_install() {
    _recsys_pg_say "== installing postgresql (apt-get)"
    # No default cluster: Debian's package would otherwise create and start one on port 5432.
    if [[ ! -e /etc/postgresql-common/createcluster.conf ]]; then
        mkdir -p /etc/postgresql-common
        echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf
    fi
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql \
        >/dev/null
}

# Run a command as the server's user, from a directory that user can read.
_recsys_pg_as() {
    if [[ -n ${RECSYS_PG_RUNAS:-} ]]; then
        (cd "$RECSYS_PG_BASE" && runuser -u "$RECSYS_PG_RUNAS" -- "$@")
    else
        (cd "$RECSYS_PG_BASE" && "$@")
    fi
}

_recsys_pg_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

recsys_pg_start() {
    if [[ -n ${RECSYS_PG_BASE:-} && -d ${RECSYS_PG_BASE:-} ]]; then
        _recsys_pg_say "== postgresql already started: $RECSYS_TEST_POSTGRES_URL"
        return 0
    fi

    local bindir
    bindir=$(_recsys_pg_bindir)
    if [[ -z $bindir ]]; then
        if [[ $(id -u) -eq 0 ]]; then
            _recsys_pg_install
            bindir=$(_recsys_pg_bindir)
        fi
        if [[ -z $bindir ]]; then
            local msg="PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb)"
            msg+=" and we are not root to install it: apt-get install postgresql"
            if [[ -n ${CI:-} && ${CI:-} != false && ${CI:-} != 0 ]]; then
                _recsys_pg_say "error: $msg"
                return 1
            fi
            _recsys_pg_say "warning: $msg; the postgres tests will skip"
            return 0
        fi
    fi
    local version
    version=$(basename "$(dirname "$bindir")")

    RECSYS_PG_RUNAS=""
    if [[ $(id -u) -eq 0 ]]; then
        if ! id -u "$RECSYS_PG_USER" >/dev/null 2>&1; then
            useradd --system --no-create-home --home-dir /nonexistent \
                --shell /usr/sbin/nologin "$RECSYS_PG_USER"
        fi
        RECSYS_PG_RUNAS=$RECSYS_PG_USER
        # /tmp, not $TMPDIR: the server's user must be able to reach the directory.
        RECSYS_PG_BASE=$(mktemp -d /tmp/recsys-pg.XXXXXX)
        chown "$RECSYS_PG_USER:" "$RECSYS_PG_BASE"
    else
        RECSYS_PG_BASE=$(mktemp -d -t recsys-pg.XXXXXX)
    fi
    RECSYS_PG_BIN=$bindir
    export RECSYS_PG_BASE RECSYS_PG_BIN RECSYS_PG_RUNAS
    local data=$RECSYS_PG_BASE/data log=$RECSYS_PG_BASE/postgres.log

    if ! _recsys_pg_as "$bindir/initdb" -D "$data" -U recsys -A trust -E UTF8 --no-locale \
        --no-sync >"$RECSYS_PG_BASE/initdb.log" 2>&1; then
        _recsys_pg_say "error: initdb failed:"
        cat "$RECSYS_PG_BASE/initdb.log" >&2
        recsys_pg_stop
        return 1
    fi

    # The port is free when probed; another process could take it before the server binds it,
    # so try a few.
    local port="" try
    for try in 1 2 3; do
        port=$(_recsys_pg_free_port)
        if _recsys_pg_as "$bindir/pg_ctl" -D "$data" -l "$log" -w -t 60 \
            -o "-h 127.0.0.1 -p $port -k $data -c fsync=off" start >/dev/null; then
            break
        fi
        _recsys_pg_say "warning: postgresql did not start on port $port (try $try):"
        tail -n 20 "$log" >&2 || true
        port=""
    done
    if [[ -z $port ]]; then
        _recsys_pg_say "error: could not start postgresql"
        recsys_pg_stop
        return 1
    fi
    if ! _recsys_pg_as "$bindir/createdb" -h 127.0.0.1 -p "$port" -U recsys recsys_test; then
        _recsys_pg_say "error: could not create the database recsys_test"
        recsys_pg_stop
        return 1
    fi

    export RECSYS_TEST_POSTGRES_URL="postgresql+psycopg2://recsys@127.0.0.1:$port/recsys_test"
    _recsys_pg_say "== postgresql $version on 127.0.0.1:$port"
}

recsys_pg_stop() {
    local base=${RECSYS_PG_BASE:-}
    if [[ -n $base && -d $base ]]; then
        if [[ -f $base/data/postmaster.pid ]]; then
            _recsys_pg_as "$RECSYS_PG_BIN/pg_ctl" -D "$base/data" -m fast -w stop \
                >/dev/null 2>&1 || _recsys_pg_say "warning: pg_ctl stop failed"
        fi
        rm -rf -- "$base"
        _recsys_pg_say "== postgresql stopped"
        unset RECSYS_TEST_POSTGRES_URL
    fi
    unset RECSYS_PG_BASE RECSYS_PG_BIN RECSYS_PG_RUNAS
    return 0
}
