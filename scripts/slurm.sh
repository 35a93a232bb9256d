#!/usr/bin/env bash
# A single-node Slurm on loopback for the cluster tests: `scripts/slurm.sh install|start|stop|env`.
#   install  Debian's slurm-wlm and munge, unless sbatch is there already (needs root or sudo)
#   start    munged, slurmctld and slurmd as root, their config, state and PID files under
#            $GRIDNOISE_SLURM_DIR (default /tmp/gridnoise-slurm): one node with every CPU, one GPU in
#            name only, partition "debug"
#   stop     the three daemons, by the PIDs `start` recorded
#   env      the line to eval so that sbatch, squeue and scancel find this Slurm (SLURM_CONF)
# The system's own /etc/slurm is never touched: everything reads $GRIDNOISE_SLURM_DIR/slurm.conf.
set -euo pipefail
dir="${GRIDNOISE_SLURM_DIR:-/tmp/gridnoise-slurm}"
conf="$dir/slurm.conf"

install() {
    command -v sbatch >/dev/null && command -v slurmctld >/dev/null && command -v munged >/dev/null && return 0
    if [ "$(id -u)" -eq 0 ]; then sudo=""; elif sudo -n true 2>/dev/null; then sudo="sudo -n"; else
        echo "scripts/slurm.sh: run as root: apt-get install -y slurm-wlm munge" >&2; exit 1
    fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
}

running() { [ -f "$dir/$1.pid" ] && kill -0 "$(cat "$dir/$1.pid")" 2>/dev/null; }

start() {
    [ "$(id -u)" -eq 0 ] || { echo "scripts/slurm.sh start: the daemons run as root here: rerun as root" >&2; exit 1; }
    running slurmctld && running slurmd && return 0
    stop >/dev/null 2>&1 || true
    mkdir -p "$dir/state" "$dir/spool" "$dir/munge" "$dir/log"
    local host cpus mem
    host="$(hostname -s)"
    cpus="$(nproc)"
    mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))  # MiB, less 1 GiB for the OS
    cat > "$conf" <<EOF
ClusterName=gridnoise-test
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket.2
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
MpiDefault=none
SlurmctldTimeout=30
SlurmdTimeout=30
MinJobAge=600
GresTypes=gpu
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    # One GPU in name only (its device file is /dev/null): jobs can ask for it, so the tests see a GPU
    # job start, its worker offer a GPU and its tasks choose cuda; nothing can run on it.
    echo "NodeName=$host Name=gpu File=/dev/null" > "$dir/gres.conf"
    [ -s /etc/munge/munge.key ] || { dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null; chmod 400 /etc/munge/munge.key; }
    munged --force --socket "$dir/munge/munge.socket.2" --pid-file "$dir/munged.pid" \
        --log-file "$dir/log/munged.log" --seed-file "$dir/munge/munge.seed"
    SLURM_CONF="$conf" slurmctld -c
    SLURM_CONF="$conf" slurmd
    for _ in $(seq 60); do  # the node registers within a few seconds
        if SLURM_CONF="$conf" sinfo -h -o %T 2>/dev/null | grep -qx idle; then echo "slurm: started ($conf)"; return 0; fi
        sleep 0.5
    done
    echo "scripts/slurm.sh: the node did not come up: see $dir/log/" >&2; exit 1
}

stop() {
    local name
    for name in slurmd slurmctld munged; do
        if running "$name"; then kill "$(cat "$dir/$name.pid")"; fi
    done
    for _ in $(seq 40); do
        running slurmd || running slurmctld || running munged || { rm -f "$dir"/*.pid; echo "slurm: stopped"; return 0; }
        sleep 0.25
    done
    echo "scripts/slurm.sh: the daemons did not stop within 10 s" >&2; exit 1
}

case "${1:-}" in
    install) install ;;
    start) start ;;
    stop) stop ;;
    env) echo "export SLURM_CONF=$conf" ;;
    *) echo "usage: scripts/slurm.sh install|start|stop|env" >&2; exit 2 ;;
esac
