#!/usr/bin/env bash
# A throwaway PostgreSQL cluster on a private Unix socket.
#
#   scripts/pg-cluster.sh start DIR   # initdb + start; prints the connection URL
#   scripts/pg-cluster.sh restart DIR # stop (fast: sessions are cut) and start again, same options
#   scripts/pg-cluster.sh stop DIR    # stop and delete DIR
#
# PostgreSQL refuses to run as root: as root, the server runs as the `postgres` system user, which
# owns DIR. The socket lives in DIR, and no TCP port is opened. PG_CLUSTER_OPTIONS adds server
# options, e.g. "-c shared_preload_libraries=pg_stat_statements" to see where a bench's time goes.
set -euo pipefail

command=${1:?usage: pg-cluster.sh start|restart|stop DIR}
dir=$(realpath -m "${2:?usage: pg-cluster.sh start|restart|stop DIR}")
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$bindir" ]; then
    echo "pg-cluster: PostgreSQL server binaries not found (install the 'postgresql' package)" >&2
    exit 1
fi

as_server_user() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

case "$command" in
start)
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres:postgres "$dir"
    fi
    chmod 700 "$dir"
    as_server_user "$bindir/initdb" -D "$dir/data" -U genflow -A trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 ||
        { cat "$dir/initdb.log" >&2; exit 1; }
    as_server_user "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-k $dir -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=1000 ${PG_CLUSTER_OPTIONS:-}" \
        start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
    as_server_user "$bindir/createdb" -h "$dir" -U genflow genflow
    echo "postgresql:///genflow?host=$dir&user=genflow"
    ;;
restart)
    as_server_user "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -m fast -w -t 60 restart >/dev/null ||
        { cat "$dir/server.log" >&2; exit 1; }
    ;;
stop)
    if [ -f "$dir/data/postmaster.pid" ]; then
        as_server_user "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true
    fi
    rm -rf "$dir"
    ;;
*)
    echo "usage: pg-cluster.sh start|restart|stop DIR" >&2
    exit 2
    ;;
esac
