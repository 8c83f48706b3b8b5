#!/usr/bin/env bash
# Installs Recur's build and test dependencies on Debian (run as root):
# OpenBLAS for the fast math path, protoc for the generated gRPC code, and the
# fortunes corpus used by the quick start.
set -euo pipefail
pkgs=(libopenblas-dev protobuf-compiler fortunes)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}"
fi
go mod download
