#!/bin/sh
# certs/gen-dev-certs.sh [DIR]: make a throwaway dev CA and server certificates for
# sluice's default configuration: an ECDSA P-256 and an RSA-2048 certificate side by
# side, both for localhost, 127.0.0.1, ::1 and the example domains. Private keys are
# written mode 0600 and never committed (.gitignore). Existing files are kept.
set -eu
dir=${1:-$(dirname "$0")}
cd "$dir"
umask 077
san="DNS:localhost,DNS:mail.example.org,DNS:mail.example.net,DNS:example.org,DNS:example.net,IP:127.0.0.1,IP:::1"

if [ ! -f dev-ca.crt ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 825 \
        -keyout dev-ca.key -out dev-ca.crt -subj "/CN=sluice dev CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" \
        2>/dev/null
fi

issue() { # name keyalg-args...
    name=$1; shift
    [ -f "$name.crt" ] && return 0
    openssl req -new -newkey "$@" -nodes -keyout "$name.key" -out "$name.csr" \
        -subj "/CN=localhost" 2>/dev/null
    printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' \
        "$san" > "$name.ext"
    openssl x509 -req -in "$name.csr" -CA dev-ca.crt -CAkey dev-ca.key -CAcreateserial \
        -days 825 -sha256 -extfile "$name.ext" -out "$name.crt" 2>/dev/null
    rm -f "$name.csr" "$name.ext"
}

issue dev-ecdsa ec -pkeyopt ec_paramgen_curve:P-256
issue dev-rsa rsa:2048
chmod 644 dev-ca.crt dev-ecdsa.crt dev-rsa.crt
# Every key stays its owner's alone (0600): started as root, sluice reads them through its
# privileged reader, at start and on every reload (docs/security.md), so the service user
# needs no access to them.
chmod 600 dev-ecdsa.key dev-rsa.key
echo "dev certificates in $(pwd): dev-ca.crt (trust this), dev-ecdsa.crt, dev-rsa.crt"

# The per-install dev key of `sluice token` (Ed25519) and its public JWKS, which a domain's
# oauth2.jwks_file may trust for trying tokens out. The same files as
# `sluice token --init`; the kid is sluice-dev- and 16 hex digits of the SHA-256 of the
# raw public key, as core/dev/cmd_token.c derives it.
if [ ! -f dev-token.key ]; then
    openssl genpkey -algorithm ed25519 -out dev-token.key 2>/dev/null
fi
if [ ! -f dev-token.jwks ]; then
    openssl pkey -in dev-token.key -pubout -outform DER 2>/dev/null | tail -c 32 > dev-token.pub
    x=$(base64 -w0 < dev-token.pub | tr '+/' '-_' | tr -d '=')
    kid=sluice-dev-$(openssl dgst -sha256 -r < dev-token.pub | cut -c1-16)
    rm -f dev-token.pub
    printf '{"keys":[{"kty":"OKP","crv":"Ed25519","x":"%s","kid":"%s","use":"sig","alg":"EdDSA"}]}\n' \
        "$x" "$kid" > dev-token.jwks
    chmod 644 dev-token.jwks
fi
echo "dev token key in $(pwd): dev-token.key (sluice token signs with it), dev-token.jwks"
