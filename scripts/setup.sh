#!/usr/bin/env bash
# Installs every Debian package msgtrans needs to build, test and benchmark.
# Idempotent: a second run installs nothing new. Needs root (or sudo).
set -euo pipefail

packages=(
  # toolchain
  g++ cmake ninja-build ccache pkg-config git
  clang libclang-rt-14-dev
  # libraries
  libboost1.81-dev libssl-dev
  libngtcp2-dev libngtcp2-crypto-gnutls-dev libgnutls28-dev
  libzstd-dev zlib1g-dev libnats-dev libjwt-gnutls-dev
  libcli11-dev libtomlplusplus-dev libfmt-dev
  libgtest-dev libgmock-dev libbenchmark-dev nlohmann-json3-dev
  # independent peers used by the tests
  python3 python3-websockets python3-zstandard python3-jwt python3-cryptography ngtcp2-client
  openssl iproute2 chromium nats-server
  # benchmark plots (bench/compare.sh)
  gnuplot-nox
  # API reference (cmake --build build --target docs)
  doxygen
)

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

# Node.js: the machine image may carry its own build (which bundles npm and conflicts
# with Debian's npm package); install Debian's only when there is no node at all.
if ! command -v node >/dev/null 2>&1; then missing+=(nodejs npm); fi

if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "setup: all Debian packages present"
fi

# npm packages, pinned by their package-lock.json files: the WebSocket peer tests
# (tests/ws: Node ws, playwright-core driving Debian's chromium) and the JavaScript
# client (clients/js: ws, a zstd in WebAssembly, TypeScript; npm ci also builds its
# dist/ through the package's prepare script; ctest's js_client_typecheck rebuilds it).
# Skipped when node_modules already matches the lock file.
root="$(cd "$(dirname "$0")/.." && pwd)"
for dir in "$root/tests/ws" "$root/clients/js"; do
  [ -f "$dir/package-lock.json" ] || continue
  name="${dir#"$root"/}"
  if [ -f "$dir/node_modules/.package-lock.json" ] &&
     [ "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ]; then
    echo "setup: $name npm packages present"
  else
    echo "setup: npm ci in $name"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
done
