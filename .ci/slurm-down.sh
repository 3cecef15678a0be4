#!/usr/bin/env bash
# Stop the cluster that .ci/slurm-up.sh started, by its pid files, in reverse
# order. Idempotent: daemons that are not running are skipped.
set -uo pipefail

STATE=${GREENSED_SLURM_DIR:-/var/tmp/greensed-slurm}

stop() {  # stop NAME PIDFILE
    [ -f "$2" ] || return 0
    local pid
    pid=$(cat "$2")
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
        echo "slurm-down: stopped $1 (pid $pid)" >&2
    fi
    rm -f "$2"
}

stop slurmd "$STATE/run/slurmd.pid"
stop slurmctld "$STATE/run/slurmctld.pid"
stop slurmdbd "$STATE/run/slurmdbd.pid"
if command -v mariadb-admin >/dev/null && mariadb-admin ping >/dev/null 2>&1; then
    mariadb-admin shutdown && echo "slurm-down: stopped mariadb" >&2
fi
stop munged /run/munge/munged.pid
exit 0
