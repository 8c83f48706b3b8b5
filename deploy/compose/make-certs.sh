#!/usr/bin/env bash
# Writes a demonstration PKI for docker-compose.tls.yml into ./certs with
# openssl: a CA (ca.crt; its key ca.key stays here) and a certificate and
# key for the coordinator and for the workers, valid 30 days (Ed25519, for
# client and server use). Keys are made readable by the image's user
# (uid 65532). In production, use your organisation's CA or cert-manager.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p certs
cd certs
days=${DAYS:-30}
openssl genpkey -algorithm ed25519 -out ca.key
openssl req -x509 -new -key ca.key -subj "/CN=recur demo CA" -days "$days" -out ca.crt \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign"
for name in coordinator worker; do
  openssl genpkey -algorithm ed25519 -out "$name.key"
  openssl req -new -key "$name.key" -subj "/CN=recur $name" -out "$name.csr"
  printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:%s\n' "$name" >"$name.ext"
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days "$days" -extfile "$name.ext" -out "$name.crt"
  rm -f "$name.csr" "$name.ext"
done
if [ "$(id -u)" = 0 ]; then
  chown 65532 coordinator.key worker.key
  chmod 0400 coordinator.key worker.key
else
  chmod 0644 coordinator.key worker.key # readable by the container's user
fi
echo "wrote $(pwd): ca.crt, coordinator.{crt,key}, worker.{crt,key}"
