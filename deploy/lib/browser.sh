# Sourced by deploy/run-tests.sh: the browser the console's browser tests drive
# (tests/browser, Playwright pointed at Debian's Chromium; Playwright's own browser
# download is not used). Idempotent: installs only when the binary is missing.
# shellcheck shell=bash

ensure_chromium() {
  local binary="${DEPDETECT_TEST_CHROMIUM:-/usr/bin/chromium}"
  if [[ ! -x "$binary" ]]; then
    if [[ "$(id -u)" -ne 0 ]]; then
      echo "Chromium is missing at $binary; run as root or: sudo apt-get install -y chromium" >&2
      return 1
    fi
    echo "installing Chromium with apt-get" >&2
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; then
      apt-get update -q
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
    fi
  fi
  [[ -x "$binary" ]] || { echo "apt-get installed chromium but $binary is missing" >&2; return 1; }
  export DEPDETECT_TEST_CHROMIUM="$binary"
}
