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
echo "dev certificates in $(pwd): dev-ca.crt (trust this), dev-ecdsa.crt, dev-rsa.crt"
