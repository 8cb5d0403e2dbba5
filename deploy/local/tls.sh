#!/usr/bin/env bash
# A private CA and the broker's certificate (SAN IP:127.0.0.1, DNS:localhost) for the secure local
# stack, in PEM as Kafka's PEM keystore wants it (unencrypted PKCS#8 key followed by the chain).
#   deploy/local/tls.sh DIR      writes DIR/ca.pem, DIR/ca.key, DIR/broker.pem; no-op when they exist
set -euo pipefail
dir="${1:?usage: $0 DIR}"
[ -f "$dir/ca.pem" ] && [ -f "$dir/broker.pem" ] && exit 0
command -v openssl >/dev/null || { echo "openssl not found" >&2; exit 1; }
mkdir -p "$dir"
umask 077
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=livedub-local-ca" \
  -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=broker" -keyout "$dir/broker.key" -out "$dir/broker.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' >"$dir/ext.cnf"
openssl x509 -req -in "$dir/broker.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial -days 30 \
  -extfile "$dir/ext.cnf" -out "$dir/broker.crt" 2>/dev/null
openssl pkcs8 -topk8 -nocrypt -in "$dir/broker.key" -out "$dir/broker.p8"
cat "$dir/broker.p8" "$dir/broker.crt" "$dir/ca.pem" >"$dir/broker.pem"
rm -f "$dir/broker.csr" "$dir/broker.key" "$dir/broker.p8" "$dir/ext.cnf" "$dir/ca.srl"
chmod 644 "$dir/ca.pem"
