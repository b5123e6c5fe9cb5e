#!/usr/bin/env bash
# Make sure MariaDB answers on 127.0.0.1:3306 (root, empty password) for the
# integration tests: install and start it if needed. Prints one clear line and
# exits non-zero when it cannot.
set -uo pipefail

fail() { echo "ensure_mariadb: $*" >&2; exit 1; }

admin=$(command -v mariadb-admin || command -v mysqladmin || true)

ping_db() {
    # TCP, not the socket: the tests connect to 127.0.0.1:3306.
    [ -n "$admin" ] && "$admin" --protocol=tcp -h127.0.0.1 -P3306 -uroot --connect-timeout=2 ping >/dev/null 2>&1
}

ping_db && exit 0

if [ ! -x /usr/sbin/mariadbd ]; then
    [ "$(id -u)" = 0 ] || fail "MariaDB is not installed and installing it needs root"
    echo "ensure_mariadb: installing mariadb-server" >&2
    { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y mariadb-server; } >/tmp/ensure_mariadb.apt.log 2>&1 \
        || fail "apt-get install mariadb-server failed (see /tmp/ensure_mariadb.apt.log)"
    admin=$(command -v mariadb-admin || command -v mysqladmin || true)
fi

mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld \
    || fail "cannot prepare /run/mysqld (need root?)"
start-stop-daemon --start --quiet --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql \
    || fail "start-stop-daemon could not start /usr/sbin/mariadbd"

for _ in $(seq 30); do
    ping_db && exit 0
    sleep 1
done
fail "MariaDB started but does not answer on 127.0.0.1:3306 after 30 s"
