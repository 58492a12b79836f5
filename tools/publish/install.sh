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

source "$(dirname "$0")/../lib/apt.sh"
apt_missing "${PACKAGES[@]}"
if [[ ${#MISSING[@]} -eq 0 ]]; then
    echo "install.sh: ${PACKAGES[*]} already installed"
else
    apt_install "${MISSING[@]}"
fi

command -v pdflatex >/dev/null || { echo "install.sh: pdflatex not found after install" >&2; exit 1; }
kpsewhich booktabs.sty >/dev/null || { echo "install.sh: booktabs.sty not found by kpsewhich" >&2; exit 1; }
command -v chromium >/dev/null || command -v chromium-headless-shell >/dev/null \
    || { echo "install.sh: no chromium binary after install" >&2; exit 1; }
echo "install.sh: pdflatex, booktabs.sty and chromium ready"
