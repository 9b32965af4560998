#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks to build and test synod. As root it runs
# apt-get; otherwise it prints the exact apt-get line and stops.
set -euo pipefail

packages=(cmake make g++ clang libboost-dev libssl-dev openssl doctest-dev pkg-config python3 chromium)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "synod needs these Debian packages; install them and run again:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
