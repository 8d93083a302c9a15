# scripts/cluster.sh - start and stop a throwaway PostgreSQL cluster.
#
# Source it, then: cluster_start [extra postgresql.conf lines...]; ... ;
# cluster_stop.  The server runs as an unprivileged user (PostgreSQL refuses
# root) in a temporary directory, listening only on a private Unix socket
# and a private loopback port.  Exports PGHOST, PGPORT, PGUSER, PGDATABASE.

PG_BINDIR="${PG_BINDIR:-$(pg_config --bindir)}"
# The server binaries live outside PATH on Debian; pg_config --bindir names them.
[ -x "$PG_BINDIR/initdb" ] || PG_BINDIR=/usr/lib/postgresql/15/bin
CLUSTER_USER="${CLUSTER_USER:-postgres}"

as_cluster_user() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u "$CLUSTER_USER" -- "$@"
	else
		"$@"
	fi
}

cluster_start() {
	CLUSTER_DIR="$(mktemp -d /tmp/pg_soup_cluster.XXXXXX)"
	chmod 755 "$CLUSTER_DIR"
	[ "$(id -u)" = 0 ] && chown "$CLUSTER_USER" "$CLUSTER_DIR"
	CLUSTER_PORT="${CLUSTER_PORT:-$(( 20000 + RANDOM % 20000 ))}"
	as_cluster_user "$PG_BINDIR/initdb" -D "$CLUSTER_DIR/data" -U postgres \
		--auth=trust --encoding=UTF8 --locale=C.UTF-8 >"$CLUSTER_DIR/initdb.log" 2>&1 \
		|| { cat "$CLUSTER_DIR/initdb.log"; return 1; }
	{
		echo "listen_addresses = '127.0.0.1'"
		echo "port = $CLUSTER_PORT"
		echo "unix_socket_directories = '$CLUSTER_DIR'"
		echo "fsync = off"
		echo "shared_buffers = 1GB"
		echo "max_wal_size = 8GB"
		for line in "$@"; do echo "$line"; done
	} >>"$CLUSTER_DIR/data/postgresql.conf"
	as_cluster_user "$PG_BINDIR/pg_ctl" -D "$CLUSTER_DIR/data" -l "$CLUSTER_DIR/server.log" \
		-w start >/dev/null || { cat "$CLUSTER_DIR/server.log"; return 1; }
	export PGHOST="$CLUSTER_DIR" PGPORT="$CLUSTER_PORT" PGUSER=postgres PGDATABASE=postgres
}

cluster_stop() {
	[ -n "${CLUSTER_DIR:-}" ] || return 0
	as_cluster_user "$PG_BINDIR/pg_ctl" -D "$CLUSTER_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
	rm -rf "$CLUSTER_DIR"
	CLUSTER_DIR=
}

# q SQL: one statement on the cluster (no psqlrc, unaligned, stop on error)
q() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }
