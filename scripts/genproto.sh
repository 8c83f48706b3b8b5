#!/usr/bin/env bash
# Regenerates the committed gRPC code (pkg/allreduce/ringpb,
# internal/cluster/controlpb) with pinned
# generator versions. Usage: scripts/genproto.sh [OUTDIR]
# OUTDIR defaults to the source tree; verify_genproto.sh passes a temp dir.
set -euo pipefail
PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.5.1

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root}
bin="${GENPROTO_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/recur/genproto-bin}"
mkdir -p "$bin"
command -v protoc >/dev/null || { echo "protoc missing: apt-get install -y protobuf-compiler" >&2; exit 1; }

install() { # install tool@version unless that exact version is already there
  local pkg=$1 ver=$2 name=${1##*/}
  if [ ! -x "$bin/$name" ] || [ "$(cat "$bin/$name.version" 2>/dev/null)" != "$ver" ]; then
    GOBIN="$bin" GOFLAGS=-mod=mod go install "$pkg@$ver"
    echo "$ver" >"$bin/$name.version"
  fi
}
install google.golang.org/protobuf/cmd/protoc-gen-go "$PROTOC_GEN_GO_VERSION"
install google.golang.org/grpc/cmd/protoc-gen-go-grpc "$PROTOC_GEN_GO_GRPC_VERSION"

cd "$root"
PATH="$bin:$PATH" protoc -I . \
  --go_out="$out" --go_opt=paths=source_relative \
  --go-grpc_out="$out" --go-grpc_opt=paths=source_relative \
  pkg/allreduce/ringpb/ring.proto internal/cluster/controlpb/control.proto
