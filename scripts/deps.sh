# Sourced by scripts/test.sh and scripts/bench.sh: make sure Debian packages are installed.
#
#   ensure_packages PKG...   installs with apt-get those of PKG that are missing (as root), or, when it cannot
#                            (not root, no apt-get), prints the exact command to run and returns 1.

# The build dependencies every script needs.
SIMDNORM_BUILD_PACKAGES=(cmake make g++ libxsimd-dev)

ensure_packages() {
  local missing=() pkg
  for pkg in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$pkg")
    fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "simdnorm: missing packages: ${missing[*]}" >&2
    echo "simdnorm: install them with:  sudo apt-get install -y ${missing[*]}" >&2
    return 1
  fi
  echo "simdnorm: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # A fresh machine has empty package lists; refresh them once, then install only what is missing.
  apt-get update -qq || return 1
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || return 1
}
