#!/usr/bin/env bash
# Stop the daemons tools/slurm/start.sh started (by the PIDs it recorded, never by name):
# slurmd, slurmctld, then munged. Leaves /etc/slurm and the state directory in place.
set -euo pipefail

STATE=${LWOB_SLURM_STATE:-/var/lib/lwob-slurm}

for name in slurmd slurmctld munged; do
    pidfile=$STATE/pids/$name.pid
    [[ -s $pidfile ]] || continue
    pid=$(<"$pidfile")
    if [[ -r /proc/$pid/comm && $(</proc/$pid/comm) == "$name" ]]; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do [[ -e /proc/$pid ]] || break; sleep 0.1; done
        if [[ -e /proc/$pid ]]; then
            echo "stop.sh: $name (pid $pid) ignored SIGTERM for 10 s; sending SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
        echo "stop.sh: stopped $name (pid $pid)"
    fi
    rm -f "$pidfile"
done
