#!/usr/bin/env bash
# Installs the Debian packages the tests drive: headless Chromium (browser tests) and zbar (QR decoding).
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium chromium-driver)
command -v zbarimg >/dev/null 2>&1 || missing+=(zbar-tools libzbar0)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "Missing system packages: ${missing[*]} (run: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" fonts-dejavu-core >/dev/null
