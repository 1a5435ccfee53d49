#!/usr/bin/env bash
# Installs what building the workspace needs beyond the machine's toolchains: the pinned Rust
# toolchain with rustfmt and clippy, and the C headers librdkafka's bundled build wants.
# Idempotent and quiet when everything is already there.
set -euo pipefail

pinned=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' "$(dirname "${BASH_SOURCE[0]}")/../../rust-toolchain.toml")

ensure_toolchain() {
  if rustup toolchain list | grep -q "^${pinned}-"; then
    return
  fi
  # Machines here reach no toolchain server; when the installed stable is the pinned version,
  # link it under the pinned name instead of downloading.
  local stable_dir stable_version
  stable_dir=$(rustup run stable rustc --print sysroot)
  stable_version=$(rustup run stable rustc --version | awk '{print $2}')
  if [ "$stable_version" = "$pinned" ]; then
    echo "==> linking Rust toolchain $pinned to the installed stable"
    rustup toolchain link "$pinned" "$stable_dir"
  else
    echo "==> installing Rust toolchain $pinned"
    rustup toolchain install "$pinned" --profile minimal --component rustfmt,clippy
  fi
}

ensure_packages() {
  local missing=()
  for package in libcurl4-openssl-dev libssl-dev pkg-config cmake; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "==> installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

ensure_toolchain
ensure_packages
