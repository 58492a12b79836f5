#!/usr/bin/env bash
# Start a private single-node SLURM cluster on this machine: a munged of its own (own key
# and socket), slurmctld and slurmd run by hand as root (no systemd needed), partitions
# `cpu` (default) and `gpu`, and fake GPUs (gres backed by /dev/null; $LWOB_SLURM_GPUS of
# them, default 2, so that two GPU jobs can run side by side) on the node, so
# that `snakemake --profile slurm` can be tried on a workstation and tested end to end.
#
#   sudo tools/slurm/install.sh && sudo tools/slurm/start.sh     # then: sinfo, squeue
#   sudo tools/slurm/stop.sh
#
# Writes /etc/slurm/slurm.conf and /etc/slurm/gres.conf (the snakemake jobstep plugin drops
# SLURM_CONF, so the default location is used); refuses to overwrite a slurm.conf it did
# not write. State, logs and the PIDs of the daemons it started live in $LWOB_SLURM_STATE
# (default /var/lib/lwob-slurm). Safe to call twice: daemons already running are kept.
# Ends when `sinfo` shows the node idle.
set -euo pipefail

STATE=${LWOB_SLURM_STATE:-/var/lib/lwob-slurm}
CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
MARKER="# Written by lwob tools/slurm/start.sh"
NODE=$(hostname -s)
# slurmctld keeps finished jobs (squeue -t all, scontrol show job) this long: without
# slurmdbd the snakemake slurm executor polls with squeue and needs MinJobAge >= 3 x
# slurm-init-seconds-before-status-checks; the tests read finished jobs with scontrol.
MIN_JOB_AGE=${LWOB_SLURM_MIN_JOB_AGE:-1800}
CTLD_PORT=${LWOB_SLURMCTLD_PORT:-6817}
SLURMD_PORT=${LWOB_SLURMD_PORT:-6818}
GPUS=${LWOB_SLURM_GPUS:-2}

die() { echo "start.sh: $*" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || die "must run as root (the daemons run as root)"
for exe in munged slurmctld slurmd sinfo scontrol; do
    command -v "$exe" >/dev/null || die "$exe not found: run tools/slurm/install.sh first"
done

mkdir -p "$STATE"/{munge,pids,log,spool/ctld,spool/d}
chmod 0700 "$STATE/munge"
MUNGE_SOCKET=$STATE/munge/munge.socket

# running NAME: true when the daemon recorded as NAME is alive and still that program.
running() {
    local pidfile=$STATE/pids/$1.pid pid
    [[ -s $pidfile ]] || return 1
    pid=$(<"$pidfile")
    [[ -r /proc/$pid/comm && $(</proc/$pid/comm) == "$1" ]]
}

# launch NAME ARGS...: start a daemon in the foreground mode of its own session, record its PID.
launch() {
    local name=$1; shift
    setsid "$@" </dev/null >>"$STATE/log/$name.out" 2>&1 &
    echo $! >"$STATE/pids/$name.pid"
    # until setsid has exec'd the daemon (or it died)
    for _ in $(seq 50); do running "$name" && return 0; [[ -e /proc/$! ]] || break; sleep 0.05; done
    running "$name" || die "$name did not start; see $STATE/log/$name.out"
}

# ---------------------------------------------------------------- munge
if running munged; then
    echo "start.sh: munged already running (pid $(<"$STATE/pids/munged.pid"))"
else
    if [[ ! -s $STATE/munge/munge.key ]]; then
        dd if=/dev/urandom of="$STATE/munge/munge.key" bs=1024 count=1 status=none
    fi
    chmod 0600 "$STATE/munge/munge.key"
    rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
    launch munged munged --foreground --force --socket="$MUNGE_SOCKET" \
        --key-file="$STATE/munge/munge.key" --pid-file="$STATE/munge/munged.pid" \
        --log-file="$STATE/log/munged.log" --seed-file="$STATE/munge/munged.seed"
    for _ in $(seq 50); do [[ -S $MUNGE_SOCKET ]] && break; sleep 0.1; done
    [[ -S $MUNGE_SOCKET ]] || die "munged did not start; see $STATE/log/munged.log"
fi

# ---------------------------------------------------------------- configuration
if running slurmctld || running slurmd; then
    echo "start.sh: keeping the configuration of the running cluster"
else
    if [[ -e $CONF ]] && ! grep -qF "$MARKER" "$CONF"; then
        die "$CONF exists and was not written by this script; move it away first"
    fi
    # The node as slurmd sees it (RealMemory may not exceed what slurmd -C reports).
    hw=$(slurmd -C | head -1)
    cpus=$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$hw")
    mem=$(sed -n 's/.* RealMemory=\([0-9]*\).*/\1/p' <<<"$hw")
    mem=$(( mem * 9 / 10 ))
    # Fake GPUs: gres File= must be a character device, so symlinks to /dev/null. Jobs that
    # ask for one get CUDA_VISIBLE_DEVICES set and run on the CPU.
    gres_lines=""
    for ((g = 0; g < GPUS; g++)); do
        ln -sfn /dev/null "$STATE/fake-gpu$g"
        gres_lines+="NodeName=$NODE Name=gpu File=$STATE/fake-gpu$g"$'\n'
    done
    mkdir -p "$CONF_DIR"
    cat >"$CONF" <<CONF
$MARKER (state in $STATE)
ClusterName=lwob
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
CryptoType=crypto/munge
AccountingStorageType=accounting_storage/none
AccountingStoragePass=$MUNGE_SOCKET
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
ReturnToService=2
MinJobAge=$MIN_JOB_AGE
DefMemPerCPU=1000
StateSaveLocation=$STATE/spool/ctld
SlurmdSpoolDir=$STATE/spool/d
SlurmctldPidFile=$STATE/spool/slurmctld.pid
SlurmdPidFile=$STATE/spool/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem Gres=gpu:$GPUS State=UNKNOWN
PartitionName=cpu Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$NODE Default=NO MaxTime=INFINITE State=UP
CONF
    cat >"$CONF_DIR/gres.conf" <<CONF
$MARKER
AutoDetect=off
$gres_lines
CONF
fi

# ---------------------------------------------------------------- daemons
if running slurmctld; then
    echo "start.sh: slurmctld already running (pid $(<"$STATE/pids/slurmctld.pid"))"
else
    launch slurmctld slurmctld -D -c -f "$CONF"
fi
if running slurmd; then
    echo "start.sh: slurmd already running (pid $(<"$STATE/pids/slurmd.pid"))"
else
    launch slurmd slurmd -D -f "$CONF"
fi

# ---------------------------------------------------------------- wait for the node
state=""
for i in $(seq 120); do
    for d in munged slurmctld slurmd; do
        running "$d" || die "$d exited; see $STATE/log/$d.out and $STATE/log/$d.log"
    done
    state=$(sinfo -h -n "$NODE" -o %t 2>/dev/null | sort -u | head -1 || true)
    case $state in
        idle|mix|alloc) break ;;
        inval*|drain*|down*)
            (( i % 10 == 5 )) && scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true ;;
    esac
    sleep 0.5
done
[[ $state == idle || $state == mix || $state == alloc ]] \
    || die "node $NODE is '$state' after 60 s; see $STATE/log/slurmctld.log"
sinfo
echo "start.sh: cluster up (config $CONF, state and logs in $STATE)"
