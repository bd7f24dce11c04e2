# Shared helpers of Itaku's Deploy scripts. Source it; don't run it.

ITAKU_PACKAGES=(libpq-dev libssl-dev postgresql pkg-config openssl curl pgbouncer)

log() { printf '\033[1mitaku:\033[0m %s\n' "$*" >&2; }

# Installs the Debian packages Itaku builds and runs with, where they are missing.
ensure_packages() {
    local missing=()
    for package in "${ITAKU_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing ${missing[*]}"
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { log "need root or sudo to install ${missing[*]}"; return 1; }
        sudo="sudo"
    fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The newest PostgreSQL server binaries of the machine.
pg_bin() {
    local major
    major=$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1)
    [ -n "$major" ] || { log "no PostgreSQL server found under /usr/lib/postgresql"; return 1; }
    echo "/usr/lib/postgresql/$major/bin"
}

# PostgreSQL refuses to run as root: as root, the cluster belongs to the postgres user.
pg_user() {
    if [ "$(id -u)" -eq 0 ]; then echo postgres; else id -un; fi
}

as_pg_user() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
