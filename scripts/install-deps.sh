#!/usr/bin/env bash
# Installs every Debian package Outpost needs to build, test and run. Idempotent: does nothing
# (and needs no network) when everything is already installed.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  libonnx-dev libprotobuf-dev protobuf-compiler
  ocl-icd-opencl-dev opencl-headers pocl-opencl-icd clinfo
  libopenblas-dev
  libspdlog-dev nlohmann-json3-dev libyaml-cpp-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libsystemd-dev libmosquitto-dev
  # image/: libostree (2022.7 on Debian 12) to build and verify signed OSTree commits; gnupg signs
  # them (libostree drives gpg through gpgme) and the tests make their keys with it; the ostree CLI
  # is the tests' independent view of the repositories.
  libostree-dev ostree gnupg
  # libcurl (OpenSSL flavour): runtime/route's V2 client for the cloud fallback, and ota/'s
  # downloads of the OS update's static deltas (rate limit, byte-range resume).
  libcurl4-openssl-dev
  # Tests: the HTTP/JSON fuzzers (libFuzzer ships in clang's runtime), the curl CLI as a second
  # V2 client, Prometheus scraping outpostd's /metrics, a mosquitto broker (started by the
  # telemetry tests on 127.0.0.1) and its clients, openssl for the TLS test certificates.
  clang libclang-rt-14-dev curl prometheus mosquitto mosquitto-clients openssl
)
# Model generation and the benchmark's peer (only needed to regenerate models or run bench/).
OPTIONAL=(python3-onnx python3-numpy python3-sklearn python3-torch python3-torchvision nodejs npm wrk)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ "${1:-}" == "--with-optional" ]]; then
  for p in "${OPTIONAL[@]}"; do
    # Node may come from elsewhere on developer machines; only install Debian's if absent.
    if [[ "$p" == nodejs || "$p" == npm ]] && command -v "${p/nodejs/node}" >/dev/null; then continue; fi
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
fi
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
