#!/usr/bin/env bash
# Install a single-machine SLURM (Debian/Ubuntu packages slurmctld slurmd slurm-client
# munge) for trying `snakemake --profile slurm` on a workstation and for
# tests/test_slurm_cluster.py. Idempotent: installs only the packages that are missing and
# starts no service (tools/slurm/start.sh starts private daemons by hand).
# Needs root and apt-get. Exit status 0 when all four packages are installed.
set -euo pipefail

PACKAGES=(slurmctld slurmd slurm-client munge)

source "$(dirname "$0")/../lib/apt.sh"
apt_missing "${PACKAGES[@]}"
if [[ ${#MISSING[@]} -eq 0 ]]; then
    echo "install.sh: ${PACKAGES[*]} already installed"
    exit 0
fi

# Keep the packages' maintainer scripts from starting system-wide munge/slurm services:
# a temporary policy-rc.d (only when the system has none) denies service starts.
policy=/usr/sbin/policy-rc.d
if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    trap 'rm -f "$policy"' EXIT
fi

apt_install "${MISSING[@]}"
