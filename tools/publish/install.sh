#!/usr/bin/env bash
# Install what the publication checks need (tests/test_publication.py and the demo's
# publication tests): Debian's TeX Live to compile the generated tables with pdflatex
# (texlive-latex-base: LaTeX, graphicx; texlive-latex-recommended: booktabs) and Chromium to
# open the HTML report headless. Idempotent: installs only the packages that are missing,
# without recommended packages; runs `apt-get update` only when the install fails on stale
# or empty package lists (fresh containers).
# Needs root and apt-get. Exit status 0 when every package is installed and pdflatex,
# booktabs.sty and a chromium binary are found.
set -euo pipefail

PACKAGES=(texlive-latex-base texlive-latex-recommended chromium)

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
else
    export DEBIAN_FRONTEND=noninteractive
    echo "install.sh: installing ${missing[*]}"
    if ! apt-get install -y -q --no-install-recommends "${missing[@]}"; then
        # Fresh images often have empty package lists.
        apt-get update -q
        apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
fi

command -v pdflatex >/dev/null || { echo "install.sh: pdflatex not found after install" >&2; exit 1; }
kpsewhich booktabs.sty >/dev/null || { echo "install.sh: booktabs.sty not found by kpsewhich" >&2; exit 1; }
command -v chromium >/dev/null || command -v chromium-headless-shell >/dev/null \
    || { echo "install.sh: no chromium binary after install" >&2; exit 1; }
echo "install.sh: pdflatex, booktabs.sty and chromium ready"
