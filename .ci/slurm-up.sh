#!/usr/bin/env bash
# Start a single-node SLURM cluster on localhost (munge, MariaDB, slurmdbd,
# slurmctld, slurmd) for the @pytest.mark.slurm tests. Idempotent: a cluster
# that already answers `sinfo` is left alone. Needs root and Debian/Ubuntu.
# Job accounting (slurmdbd) is on because submitit needs `sacct` to notice a
# job that died without writing its result. Facts: docs/cluster.md.
set -euo pipefail

STATE=${GREENSED_SLURM_DIR:-/var/tmp/greensed-slurm}
CONF=/etc/slurm
PACKAGES=(slurm-wlm munge slurmdbd mariadb-server)

log() { echo "slurm-up: $*" >&2; }

if command -v sinfo >/dev/null && timeout 5 sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then
    log "cluster already up ($(sinfo -h -o '%P %t %c CPUs'))"
    exit 0
fi
[ "$(id -u)" = 0 ] || { log "must run as root (installs packages, starts daemons)"; exit 1; }

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    t0=$(date +%s)
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    log "installed in $(( $(date +%s) - t0 )) s"
fi

mkdir -p "$STATE"/{ctld,spool,log,run} /run/munge /run/mysqld
chown munge:munge /run/munge
chown mysql:mysql /run/mysqld

# munge: the package created /etc/munge/munge.key.
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
fi

# MariaDB on its unix socket only; slurmdbd reaches it as localhost.
if ! mariadb-admin ping >/dev/null 2>&1; then
    [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
    setsid mariadbd --user=mysql --skip-networking --pid-file=/run/mysqld/mariadbd.pid \
        </dev/null >>"$STATE/log/mariadb.log" 2>&1 &
    for _ in $(seq 100); do mariadb-admin ping >/dev/null 2>&1 && break; sleep 0.1; done
fi
mariadb -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'greensed';
            GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"

host=$(hostname -s)
cpus=$(nproc)
mem_mb=$(( $(free -m | awk '/^Mem:/ {print $2}') * 9 / 10 ))
mkdir -p "$CONF"
cat > "$CONF/slurm.conf" <<CONF
# Written by greensed .ci/slurm-up.sh: one node, no cgroups, accounting via slurmdbd.
ClusterName=greensed
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=6819
JobCompType=jobcomp/none
SchedulerType=sched/backfill
MinJobAge=300
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
cat > "$CONF/slurmdbd.conf" <<CONF
AuthType=auth/munge
DbdAddr=127.0.0.1
DbdHost=localhost
DbdPort=6819
SlurmUser=root
LogFile=$STATE/log/slurmdbd.log
PidFile=$STATE/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=greensed
StorageLoc=slurm_acct_db
CONF
chmod 600 "$CONF/slurmdbd.conf"

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
alive "$STATE/run/slurmdbd.pid" || slurmdbd
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/6819) 2>/dev/null && break; sleep 0.1; done
alive "$STATE/run/slurmctld.pid" || slurmctld
alive "$STATE/run/slurmd.pid" || slurmd

for _ in $(seq 150); do
    state=$(timeout 5 sinfo -h -o %t 2>/dev/null || true)
    case "$state" in idle|mix|alloc) log "up: partition debug, $cpus CPUs, ${mem_mb} MB, node $host $state"; exit 0;; esac
    sleep 0.2
done
log "node never became idle (state '${state:-no answer}'); logs in $STATE/log"
tail -n 5 "$STATE"/log/*.log >&2 || true
exit 1
