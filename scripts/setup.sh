#!/usr/bin/env bash
# Installs Recur's build and test dependencies on Debian (run as root):
# OpenBLAS for the fast math path (and libgfortran's static archive, which
# the static binaries of the container image link), protoc for the generated
# gRPC code, file (the image build checks that its binary is static), and
# the fortunes corpus used by the quick start, PyTorch for the tests of
# the Python package (python/recur; internal/cli's python_test.go), and
# Chromium, which opens the coordinator's dashboard headless in
# internal/cli's dashboard_test.go, and iproute2 (ip, tc) for the
# network-namespace cluster (make test-netns), and statsmodels for the
# real series of the forecast examples (examples/sunspots.yaml,
# examples/elec_equip.yaml; RECUR_STATSMODELS_DATA).
set -euo pipefail
pkgs=(libopenblas-dev libgfortran-12-dev protobuf-compiler file fortunes python3-torch python3-numpy libopenblas0-pthread chromium iproute2 python3-statsmodels)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}"
fi
go mod download
