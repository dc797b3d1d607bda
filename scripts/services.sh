#!/usr/bin/env bash
# Make sure the PostgreSQL and MariaDB servers the tests use are up.
# Starts them when they are local and down (commands from the machine's notes),
# then waits until each answers. Exits non-zero if one cannot be reached.
set -u
PG_HOST=${PG_HOST:-127.0.0.1}
MY_HOST=${MY_HOST:-127.0.0.1}

pg_up() { pg_isready -q -h "$PG_HOST" -p 5432 2>/dev/null; }
my_up() { mariadb-admin --protocol=tcp -h "$MY_HOST" -uroot ping >/dev/null 2>&1 \
          || mysqladmin --protocol=tcp -h "$MY_HOST" -uroot ping >/dev/null 2>&1; }

if ! pg_up && command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "services: starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
fi
if ! my_up && [ -x /usr/sbin/mariadbd ]; then
    echo "services: starting MariaDB"
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
fi

# PgBouncer for tests/deployments/test_pgbouncer.py: the tests start their own
# (on a free port, in transaction mode); only the binary is needed here.
if ! command -v pgbouncer >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "services: installing pgbouncer (Debian package)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer; } >/dev/null 2>&1 \
        || echo "services: could not install pgbouncer" >&2
fi

# tests/deployments/test_galera.py starts a 3-node cluster of its own; it needs
# the Galera provider (galera-4, which Debian's mariadb-server brings) and rsync
# (the state transfer). Install them if they are missing.
if { [ ! -e /usr/lib/galera/libgalera_smm.so ] || ! command -v rsync >/dev/null 2>&1; } \
        && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "services: installing galera-4 and rsync (Debian packages)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq galera-4 rsync; } >/dev/null 2>&1 \
        || echo "services: could not install galera-4/rsync" >&2
fi

ok=1
for _ in $(seq 1 60); do
    pg_up && my_up && break
    sleep 1
done
pg_up || { echo "services: PostgreSQL is not reachable on $PG_HOST:5432" >&2; ok=0; }
my_up || { echo "services: MariaDB is not reachable on $MY_HOST:3306" >&2; ok=0; }
if [ "$ok" = 1 ]; then
    # The tests use the database `test` on both servers.
    psql -h "$PG_HOST" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='test'" postgres \
        | grep -q 1 || psql -h "$PG_HOST" -U postgres -c "CREATE DATABASE test" postgres
    mariadb --protocol=tcp -h "$MY_HOST" -uroot -e "CREATE DATABASE IF NOT EXISTS test" 2>/dev/null \
        || mysql --protocol=tcp -h "$MY_HOST" -uroot -e "CREATE DATABASE IF NOT EXISTS test"
    echo "services: PostgreSQL and MariaDB are up"
    exit 0
fi
# Outside CI a missing server is not fatal here: those tests skip and say why.
if [ "${CI:-}" = "true" ]; then exit 1; fi
exit 0
