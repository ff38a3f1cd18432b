#!/usr/bin/env bash
# Install the Debian packages snapstore needs to build, test and be used.
# Does nothing at all (not even apt-get update) when every package is installed.
set -euo pipefail

packages=(
  build-essential     # C++20 compiler (g++) and make
  cmake               # build system
  ninja-build         # cmake generator used by scripts/build.sh
  pkg-config          # finds libnbd for cmake
  libboost-dev        # Boost.Asio: the NBD and control servers
  libspdlog-dev       # logging
  libfmt-dev          # formatting (spdlog's dependency)
  libcli11-dev        # command-line and config-file parsing
  libgtest-dev        # unit and integration tests
  libgmock-dev        # GoogleMock matchers and mocks in unit tests
  nlohmann-json3-dev  # control-socket protocol (JSON)
  libxxhash-dev       # block checksums (pool engine)
  libnbd-dev          # integration tests drive the server through libnbd
  libnbd-bin          # nbdinfo, nbdcopy, nbdfuse: shell tests and README examples
  qemu-utils          # qemu-io, qemu-img: shell tests and README examples
  fio                 # benchmarks (nbd engine)
  nbdkit              # reference NBD server to compare against
  fuse3               # fusermount3 and /dev/fuse support for nbdfuse
  nbd-client          # kernel NBD client (/dev/nbdN), README example
  e2fsprogs           # mkfs.ext4 and fsck.ext4: the ext4-over-nbdfuse test
  util-linux          # mountpoint, and other basic tools the tests use
  mount               # mount, umount and losetup: the ext4-over-nbdfuse test
  procps              # pgrep/ps: checking on the daemon in scripts
  python3             # picks a free TCP port in the shell tests
  python3-libnbd      # scripts/incremental-backup.py (libnbd from /usr/bin/python3)
)

missing=()
for p in "${packages[@]}"; do
  status="$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)"
  [[ "$status" == installed ]] || missing+=("$p")
done

if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

if [[ $(id -u) -eq 0 ]]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1; then
  sudo=(sudo)
else
  echo "install-deps: these packages are missing: ${missing[*]}" >&2
  echo "install-deps: run this script as root (or install sudo) to install them" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y --no-install-recommends "${missing[@]}"
