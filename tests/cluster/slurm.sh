#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for the `slurm` tests (tests/test_slurm.py).
#   bash tests/cluster/slurm.sh up     install slurm-wlm and munge if missing, start munged,
#                                      slurmctld and slurmd, wait until the node is idle
#   bash tests/cluster/slurm.sh down   stop the daemons (the packages stay)
# Needs root (apt-get, daemons). Nothing is contacted beyond the package registry. The node is this
# host with its CPUs in partition `cpu`; finished jobs are recorded in a job-completion file
# ($JOBCOMP), so no accounting database is needed. Requeue is allowed (preemption tests).
# For a test machine only: it refuses to touch a slurm.conf it did not write (a real cluster's).
set -euo pipefail

CONF_DIR=/etc/slurm
STATE=/var/lib/cl-bench-slurm
JOBCOMP=/var/log/cl-bench-slurm/jobcomp.log
NODE=$(hostname -s)

install() {
    if command -v slurmctld >/dev/null && command -v munged >/dev/null; then return; fi
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends slurm-wlm munge
}

MARK="# Written by cl-bench's tests/cluster/slurm.sh"

ours() {
    [ ! -e "$CONF_DIR/slurm.conf" ] || grep -qF "$MARK" "$CONF_DIR/slurm.conf"
}

configure() {
    if ! ours; then
        echo "slurm: $CONF_DIR/slurm.conf was not written by this script; not touching a real cluster" >&2
        exit 1
    fi
    mkdir -p "$CONF_DIR" "$STATE/ctld" "$STATE/d" "$(dirname "$JOBCOMP")" /etc/munge /var/run/munge /var/log/munge /var/lib/munge
    if [ ! -s /etc/munge/munge.key ]; then
        dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
    fi
    chown -R munge:munge /etc/munge /var/run/munge /var/log/munge /var/lib/munge
    chmod 0700 /etc/munge /var/log/munge /var/lib/munge
    chmod 0755 /var/run/munge
    chmod 0400 /etc/munge/munge.key
    local memory
    memory=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2 ))  # half the machine, in MB
    cat > "$CONF_DIR/slurm.conf" <<CONF
$MARK: a one-node cluster for tests.
ClusterName=clbench
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=/run/cl-bench-slurmctld.pid
SlurmdPidFile=/run/cl-bench-slurmd.pid
SlurmctldLogFile=/var/log/cl-bench-slurm/slurmctld.log
SlurmdLogFile=/var/log/cl-bench-slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobRequeue=1
JobCompType=jobcomp/filetxt
JobCompLoc=$JOBCOMP
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MinJobAge=600
SlurmdTimeout=60
InactiveLimit=0
KillWait=30
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=$memory State=UNKNOWN
PartitionName=cpu Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
CONF
}

up() {
    install
    configure
    pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged
    pgrep -x slurmctld >/dev/null || slurmctld
    pgrep -x slurmd >/dev/null || slurmd
    for _ in $(seq 60); do
        state=$(sinfo -h -n "$NODE" -o %T 2>/dev/null || true)
        case "$state" in
            idle|mixed|allocated) echo "slurm: node $NODE $state"; sinfo; return 0 ;;
            down*|drain*) scontrol update nodename="$NODE" state=resume 2>/dev/null || true ;;
        esac
        sleep 1
    done
    echo "slurm: node $NODE not idle after 60 s (state: ${state:-none}); logs in /var/log/cl-bench-slurm" >&2
    return 1
}

down() {
    if ! ours; then
        echo "slurm: $CONF_DIR/slurm.conf was not written by this script; not stopping a real cluster's daemons" >&2
        exit 1
    fi
    pkill -x slurmd || true
    pkill -x slurmctld || true
    pkill -x munged || true
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
