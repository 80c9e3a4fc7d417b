#!/bin/sh
# Run by the nginx image before nginx starts (mounted into /docker-entrypoint.d/ by compose.yaml).
# nginx serves HTTPS with TRAINBOARD_TLS_CERT and TRAINBOARD_TLS_KEY. When those name files in
# the generated-certificates folder (compose's default, when .env sets neither) and the files
# don't exist yet, make a self-signed certificate there, once; it lives in the proxy-certs
# volume, so it survives restarts. A certificate path of your own that is missing is an error,
# never silently replaced. See docs/operations.md, "TLS".
set -eu
cert=${TRAINBOARD_TLS_CERT:?set TRAINBOARD_TLS_CERT}
key=${TRAINBOARD_TLS_KEY:?set TRAINBOARD_TLS_KEY}
generated=${TRAINBOARD_TLS_GENERATED_DIR:-/etc/nginx/certs-generated}
if [ -s "$cert" ] && [ -s "$key" ]; then
    exit 0
fi
case "$cert" in
    "$generated"/*) ;;
    *)
        echo "trainboard-tls: $cert or $key is missing; put your certificate there, or remove" \
             "TRAINBOARD_TLS_CERT and TRAINBOARD_TLS_KEY from .env for a self-signed one" >&2
        exit 1
        ;;
esac
if ! command -v openssl >/dev/null 2>&1; then
    echo "trainboard-tls: no openssl here to make a self-signed certificate; set" \
         "TRAINBOARD_TLS_CERT and TRAINBOARD_TLS_KEY in .env to a certificate of your own" >&2
    exit 1
fi
name=${TRAINBOARD_TLS_NAME:-localhost}
mkdir -p "$(dirname "$cert")" "$(dirname "$key")"
umask 077
openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=$name" \
    -addext "subjectAltName=DNS:$name" -keyout "$key" -out "$cert" 2>/dev/null
echo "trainboard-tls: made a self-signed certificate for $name at $cert (browsers will warn" \
     "until you set a real one in .env)" >&2
