#!/usr/bin/env bash
# Install a single-machine SLURM (Debian/Ubuntu packages slurmctld slurmd slurm-client
# munge) for trying `snakemake --profile slurm` on a workstation and for
# tests/test_slurm_cluster.py. Idempotent: installs only the packages that are missing and
# starts no service (tools/slurm/start.sh starts private daemons by hand).
# Needs root and apt-get. Exit status 0 when all four packages are installed.
set -euo pipefail

PACKAGES=(slurmctld slurmd slurm-client munge)

if [[ $(id -u) -ne 0 ]]; then
    echo "install.sh: must run as root (apt-get install)" >&2
    exit 2
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install.sh: apt-get not found (a Debian or Ubuntu system is needed)" >&2
    exit 2
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [[ $status == installed ]] || missing+=("$pkg")
done
if [[ ${#missing[@]} -eq 0 ]]; then
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

export DEBIAN_FRONTEND=noninteractive
echo "install.sh: installing ${missing[*]}"
if ! apt-get install -y -q --no-install-recommends "${missing[@]}"; then
    # Fresh images often have empty package lists.
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
