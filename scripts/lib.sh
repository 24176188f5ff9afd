# Shared by scripts/run and scripts/test: install what is missing, nothing else.

apt_install() {
    if [ "$(id -u)" != 0 ]; then
        echo "Missing system packages: $*. Install them (sudo apt-get install $*) and retry." >&2
        exit 1
    fi
    echo "Installing system packages: $*"
    echo "slapd slapd/no_configuration boolean true" | debconf-set-selections 2>/dev/null || true
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# ensure_packages PATH:PKG ...  installs Debian package PKG when the file PATH is missing.
ensure_packages() {
    local missing=()
    for pair in "$@"; do
        [ -e "${pair%%:*}" ] || missing+=("${pair#*:}")
    done
    [ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
}

# ensure_venv [EXTRA]: .venv with the pinned project; reinstalled when pyproject.toml changes.
ensure_venv() {
    command -v python3 >/dev/null 2>&1 || apt_install python3
    if [ ! -x .venv/bin/pip ]; then
        rm -rf .venv
        python3 -m venv .venv 2>/dev/null || { rm -rf .venv; apt_install python3-venv; python3 -m venv .venv; }
    fi
    local stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)-${1:-base}"
    if [ ! -f "$stamp" ]; then
        echo "Installing Python dependencies into .venv"
        .venv/bin/pip install -q -e ".${1:+[$1]}"
        rm -f .venv/.installed-*
        touch "$stamp"
    fi
}
