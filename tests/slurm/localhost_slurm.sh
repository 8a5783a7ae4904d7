#!/usr/bin/env bash
# A single-node Slurm on localhost for the `slurm` tests: `start` installs Debian's slurmctld, slurmd,
# slurm-client and munge if missing, writes a minimal slurm.conf and starts munged, slurmctld and slurmd;
# `stop` stops exactly the daemons `start` started (by PID) and removes their pid files.
#
#   bash tests/slurm/localhost_slurm.sh start   # exit 0: `sinfo` shows the node idle
#   bash tests/slurm/localhost_slurm.sh stop
#
# KillWait=2: a requeued job's processes are killed 2 s after SIGTERM (Lightning ignores SIGTERM under
# SLURM and trains on until then), so the test knows which checkpoint is the newest when the job restarts.
#
# Exit code 3 (with a reason on stderr) means Slurm cannot be started here (not root, no apt-get, or a
# Slurm that this script did not configure is present); the tests skip on it.
set -uo pipefail
STATE=${SLURM_TEST_STATE:-/run/par-lightning-slurm}
CONF=/etc/slurm/slurm.conf
MARK="# written by par-lightning tests/slurm/localhost_slurm.sh"

cannot() { echo "localhost_slurm: $*" >&2; exit 3; }

install_packages() {
    local missing=()
    for bin in slurmctld slurmd sbatch munged; do
        command -v "$bin" >/dev/null 2>&1 || missing+=("$bin")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    command -v apt-get >/dev/null 2>&1 || cannot "missing ${missing[*]} and no apt-get to install them"
    echo "localhost_slurm: installing slurmctld slurmd slurm-client munge (missing: ${missing[*]})"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        slurmctld slurmd slurm-client munge >"$STATE/apt.log" 2>&1 \
        || { apt-get update >>"$STATE/apt.log" 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y \
             --no-install-recommends slurmctld slurmd slurm-client munge >>"$STATE/apt.log" 2>&1; } \
        || cannot "apt-get install failed (see $STATE/apt.log)"
}

write_conf() {
    local host cpus mem
    host=$(hostname)
    cpus=$(nproc)
    mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2 ))  # MB; half the machine
    if [ -e "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
        cannot "$CONF exists and was not written by this script: not touching a real Slurm"
    fi
    mkdir -p /etc/slurm
    cat >"$CONF" <<CONF
$MARK
ClusterName=localhost
SlurmctldHost=$host
AuthType=auth/munge
ProctrackType=proctrack/pgid
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
ReturnToService=2
KillWait=2
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmdSpoolDir=/var/spool/slurmd
StateSaveLocation=/var/spool/slurmctld
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmUser=root
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
}

start() {
    [ "$(id -u)" -eq 0 ] || cannot "needs root to install and start the Slurm daemons (uid $(id -u))"
    mkdir -p "$STATE"
    for pidfile in "$STATE"/*.pid; do  # left by a run that was killed before `stop`
        [ -e "$pidfile" ] && ! kill -0 "$(cat "$pidfile")" 2>/dev/null && rm -f "$pidfile"
    done
    if pgrep -x slurmctld >/dev/null 2>&1 && [ ! -e "$STATE/slurmctld.pid" ]; then
        cannot "a slurmctld this script did not start is running"
    fi
    install_packages
    write_conf
    mkdir -p /run/munge /var/spool/slurmd /var/spool/slurmctld /var/log/slurm
    chown munge:munge /run/munge 2>/dev/null || true
    [ -s /etc/munge/munge.key ] || { mungekey -c -f >/dev/null 2>&1 || cannot "no /etc/munge/munge.key and mungekey failed"; }
    if ! pgrep -x munged >/dev/null 2>&1; then
        runuser -u munge -- munged || cannot "munged did not start"
        pgrep -x munged >"$STATE/munged.pid"
    fi
    if [ ! -e "$STATE/slurmctld.pid" ]; then
        slurmctld || cannot "slurmctld did not start (see /var/log/slurm/slurmctld.log)"
        slurmd || cannot "slurmd did not start (see /var/log/slurm/slurmd.log)"
        sleep 1
        cp /run/slurmctld.pid "$STATE/slurmctld.pid"
        cp /run/slurmd.pid "$STATE/slurmd.pid"
    fi
    for _ in $(seq 60); do
        if sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then
            sinfo
            return 0
        fi
        sleep 0.5
    done
    cannot "the node did not become idle in 30 s: $(sinfo 2>&1 | tr '\n' ' ')"
}

stop() {
    for daemon in slurmd slurmctld munged; do
        pidfile="$STATE/$daemon.pid"
        [ -e "$pidfile" ] || continue
        pid=$(cat "$pidfile")
        kill "$pid" 2>/dev/null
        for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        kill -9 "$pid" 2>/dev/null
        rm -f "$pidfile"
        [ "$daemon" = munged ] || rm -f "/run/$daemon.pid"  # a stale slurmctld.pid breaks `apt-get purge`
    done
    return 0
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
