#!/usr/bin/env bash
# Best effort: make the local PostgreSQL and MariaDB services run on 127.0.0.1 (the test suite
# uses them as one of its server providers; it starts throwaway servers from the same binaries
# too, so a service that will not start is reported, not fatal), and make sure sshd is installed
# for the tunnel tests. Installs what is missing from Debian's packages when we are root; does not
# configure authentication (this machine kind ships trust auth for postgres and a password-less
# MariaDB root). Idempotent.
set -euo pipefail

log() { printf 'services: %s\n' "$*" >&2; }

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
maria_up() { mysqladmin --protocol=tcp -h 127.0.0.1 -P 3306 -u root ping >/dev/null 2>&1; }

wait_for() {
  local what=$1 check=$2
  for _ in $(seq 1 60); do
    if $check; then log "$what is up"; return 0; fi
    sleep 0.5
  done
  log "$what did not come up (the tests will use throwaway servers)"; return 0
}

# sshd serves the SSH tunnel tests (a throwaway server each run; it is never started here)
missing=()
command -v pg_ctlcluster >/dev/null 2>&1 || missing+=(postgresql)
{ command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ]; } || missing+=(mariadb-server)
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing ${missing[*]} from Debian's packages"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    log "missing ${missing[*]} and cannot install them (not root or no apt-get)"
  fi
fi

if pg_up; then
  log "PostgreSQL is up"
elif command -v pg_ctlcluster >/dev/null 2>&1; then
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  log "starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || log "PostgreSQL did not start"
  wait_for PostgreSQL pg_up
else
  log "PostgreSQL is not installed; the tests will start no local service for it"
fi

if maria_up; then
  log "MariaDB is up"
elif command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ]; then
  log "starting MariaDB"
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  service mariadb start >/dev/null 2>&1 \
    || start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd \
    || log "MariaDB did not start"
  wait_for MariaDB maria_up
else
  log "MariaDB is not installed; the tests will start no local service for it"
fi
