# A throwaway PostgreSQL server for the store tests, sourced by scripts/test
# (by hand: `source scripts/pg-test-server.sh && cargo test`). Run as root on Debian: it
# installs PostgreSQL if it is missing, starts a private server as user sesame-pg in a fresh
# temporary directory, on a free loopback port, with trust authentication on loopback only,
# exports SESAME_TEST_POSTGRES for the tests, and stops the server and removes the directory
# when the shell exits. It sets the shell's EXIT trap (replacing any earlier one).
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
    echo "pg-test-server: run as root (it may install postgresql and adds user sesame-pg)" >&2
    exit 1
fi

# The newest installed server's binaries: Debian keeps them in /usr/lib/postgresql/VERSION/bin,
# off PATH.
sesame_pg_bin() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -n "$dir" ] && [ -x "$dir/initdb" ]; then
        echo "$dir"
    elif command -v initdb >/dev/null 2>&1; then
        dirname "$(readlink -f "$(command -v initdb)")"
    fi
}
SESAME_PG_BIN=$(sesame_pg_bin)
if [ -z "$SESAME_PG_BIN" ]; then
    echo "pg-test-server: initdb not found; installing postgresql" >&2
    # Only our private server is wanted, not the cluster Debian would create and start.
    mkdir -p /etc/postgresql-common
    if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
        echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf
    fi
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold postgresql
    SESAME_PG_BIN=$(sesame_pg_bin)
    if [ -z "$SESAME_PG_BIN" ]; then
        echo "pg-test-server: postgresql installed but initdb is still not found" >&2
        exit 1
    fi
fi

# The server refuses to run as root: it runs as a system user of its own.
if ! id -u sesame-pg >/dev/null 2>&1; then
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin sesame-pg
fi

SESAME_PG_DIR=$(mktemp -d /tmp/sesame-pg.XXXXXX)
sesame_pg_stop() {
    if [ -f "$SESAME_PG_DIR/data/postmaster.pid" ]; then
        runuser -u sesame-pg -- "$SESAME_PG_BIN/pg_ctl" -D "$SESAME_PG_DIR/data" \
            -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$SESAME_PG_DIR"
}
trap sesame_pg_stop EXIT
chown sesame-pg: "$SESAME_PG_DIR"

runuser -u sesame-pg -- "$SESAME_PG_BIN/initdb" -D "$SESAME_PG_DIR/data" -U postgres \
    --auth=trust --encoding=UTF8 --locale=C --no-sync >"$SESAME_PG_DIR/initdb.log" 2>&1 ||
    { cat "$SESAME_PG_DIR/initdb.log" >&2; exit 1; }
# TCP on loopback only, the socket in our own directory (mode 0700), trust for both.
cat >>"$SESAME_PG_DIR/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$SESAME_PG_DIR'
EOF
cat >"$SESAME_PG_DIR/data/pg_hba.conf" <<'EOF'
local all all trust
host all all 127.0.0.1/32 trust
EOF

# A port free right now; another process may take it before the server binds, so a start
# that fails is tried again on another port.
sesame_pg_free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
    else
        local port
        while :; do
            port=$((RANDOM % 16384 + 49152))
            # Nothing answers there (bash's /dev/tcp connects, or fails to).
            if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
                echo "$port"
                return
            fi
        done
    fi
}
SESAME_PG_PORT=
for _ in 1 2 3 4 5; do
    SESAME_PG_TRY=$(sesame_pg_free_port)
    if runuser -u sesame-pg -- "$SESAME_PG_BIN/pg_ctl" -D "$SESAME_PG_DIR/data" \
        -l "$SESAME_PG_DIR/server.log" -o "-p $SESAME_PG_TRY" -w -t 60 start >/dev/null; then
        SESAME_PG_PORT=$SESAME_PG_TRY
        break
    fi
done
if [ -z "$SESAME_PG_PORT" ]; then
    echo "pg-test-server: the server did not start; its log:" >&2
    cat "$SESAME_PG_DIR/server.log" >&2 || true
    exit 1
fi
for _ in $(seq 1 120); do
    "$SESAME_PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$SESAME_PG_PORT" && break
    sleep 0.5
done
"$SESAME_PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$SESAME_PG_PORT" ||
    { echo "pg-test-server: the server is not ready; its log:" >&2; cat "$SESAME_PG_DIR/server.log" >&2; exit 1; }

"$SESAME_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$SESAME_PG_PORT" -U postgres \
    -d postgres -c "CREATE ROLE sesame LOGIN SUPERUSER CREATEDB"
export SESAME_TEST_POSTGRES="postgres://sesame@127.0.0.1:$SESAME_PG_PORT/postgres"
echo "pg-test-server: PostgreSQL $("$SESAME_PG_BIN/postgres" --version | awk '{print $3}') at $SESAME_TEST_POSTGRES (data in $SESAME_PG_DIR)" >&2
