# Shared by the scripts: install what the build and tests need when it is missing.
# Debian 12 package names; apt-get runs only when something is absent.

need_packages() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "==> installing ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The libraries the gateway links and the Redis server (and Sentinels) its tests start.
BUILD_PACKAGES=(libhiredis-dev libcurl4-openssl-dev pkg-config)
RUNTIME_PACKAGES=(redis-server redis-sentinel curl)
