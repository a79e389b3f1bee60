#!/usr/bin/env bash
# Installs the release build into a scratch prefix and builds tests/consumer against it,
# once with find_package(msgtrans CONFIG) and once with pkg-config.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install build --prefix "$prefix" >/dev/null
cmake -S tests/consumer -B "$prefix/consumer-build" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$prefix/consumer-build" >/dev/null
"$prefix/consumer-build/consumer"
PKG_CONFIG_PATH="$prefix/lib/pkgconfig" \
  g++ tests/consumer/main.cpp -o "$prefix/consumer-pc" $(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --cflags --libs msgtrans)
"$prefix/consumer-pc"
echo "install: find_package and pkg-config consumers built and ran"
