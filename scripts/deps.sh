#!/usr/bin/env bash
# Installs the Debian 12 packages the build, tests and demo need (as root).
# Safe to run repeatedly: apt-get runs only when something is missing.
set -euo pipefail
PACKAGES=(
  g++ cmake ninja-build pkg-config git ca-certificates openssl
  libabsl-dev libgtest-dev libgmock-dev libbenchmark-dev libssl-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libpqxx-dev postgresql zlib1g-dev liblz4-dev libzstd-dev
  python3-grpcio python3-protobuf
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "scripts/deps.sh: missing packages (${missing[*]}); run as root to install them" >&2
    exit 1
  fi
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
