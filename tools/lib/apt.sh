# Shared by tools/*/install.sh (sourced): install Debian packages that are missing.
#   apt_missing PKG...   sets MISSING to the packages not installed yet
#   apt_install PKG...   installs them without recommended packages, running
#                        `apt-get update` only when the install fails (fresh images often
#                        have empty package lists)
# Exits 2 unless run as root on a system with apt-get.

if [[ $(id -u) -ne 0 ]]; then
    echo "install.sh: must run as root (apt-get install)" >&2
    exit 2
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install.sh: apt-get not found (a Debian or Ubuntu system is needed)" >&2
    exit 2
fi

apt_missing() {
    MISSING=()
    local pkg status
    for pkg in "$@"; do
        status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
        [[ $status == installed ]] || MISSING+=("$pkg")
    done
}

apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    echo "install.sh: installing $*"
    if ! apt-get install -y -q --no-install-recommends "$@"; then
        apt-get update -q
        apt-get install -y -q --no-install-recommends "$@"
    fi
}
