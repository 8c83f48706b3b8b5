#!/usr/bin/env bash
# Fails when the committed generated gRPC code differs from what
# scripts/genproto.sh generates. The generated "protoc vX.Y" header lines are ignored
# because it records whichever protoc binary the machine has.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$root/scripts/genproto.sh" "$tmp"
status=0
for f in pkg/allreduce/ringpb/ring.pb.go pkg/allreduce/ringpb/ring_grpc.pb.go \
         internal/cluster/controlpb/control.pb.go internal/cluster/controlpb/control_grpc.pb.go; do
  if ! diff -u -I '^//.*protoc  *v[0-9]' -I '^//.*protoc  *(unknown)' "$root/$f" "$tmp/$f"; then
    echo "$f is stale: run scripts/genproto.sh" >&2
    status=1
  fi
done
exit $status
