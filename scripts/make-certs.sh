#!/usr/bin/env bash
# Makes the certificates of a federation over an MQTT broker with TLS (README, "Real devices"):
#   scripts/make-certs.sh DIR ca                 a certificate authority: DIR/ca.crt, DIR/ca.key
#   scripts/make-certs.sh DIR broker HOST...     the broker's certificate (DIR/broker.crt, .key) for its
#                                                host names and IP addresses (the first is its CN)
#   scripts/make-certs.sh DIR client NAME...     a client certificate per name (DIR/NAME.crt, .key) whose
#                                                common name NAME is its user name on the broker
#                                                (use_identity_as_username): a device's --id, or
#                                                fedgap-server for fedgap serve
# Keys are EC P-256; certificates are valid for DAYS days (default 365). The CA's key signs every
# certificate: keep it off the devices.
set -euo pipefail
openssl=${OPENSSL:-openssl}
days=${DAYS:-365}
[[ $# -ge 2 ]] || { echo "usage: make-certs.sh DIR ca | DIR broker HOST... | DIR client NAME..." >&2; exit 2; }
dir=$1 kind=$2
shift 2
mkdir -p "$dir"
newkey=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)

# sign NAME CN [EXTENSIONS]: DIR/NAME.key and DIR/NAME.crt signed by the CA.
sign() {
  local name=$1 cn=$2 ext=${3:-}
  "$openssl" req "${newkey[@]}" -subj "/CN=$cn" -keyout "$dir/$name.key" -out "$dir/$name.csr" 2>/dev/null
  local extfile="$dir/$name.ext"
  { echo "basicConstraints=CA:FALSE"; [[ -n $ext ]] && echo "$ext"; } >"$extfile"
  "$openssl" x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -days "$days" -extfile "$extfile" -out "$dir/$name.crt" 2>/dev/null
  rm -f "$dir/$name.csr" "$extfile"
  chmod 600 "$dir/$name.key"
}

case "$kind" in
  ca)
    [[ $# -eq 0 ]] || { echo "make-certs.sh: ca takes no names" >&2; exit 2; }
    "$openssl" req -x509 "${newkey[@]}" -days "$days" -subj "/CN=fedgap federation CA" \
      -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
    chmod 600 "$dir/ca.key"
    ;;
  broker)
    [[ $# -ge 1 ]] || { echo "make-certs.sh: broker needs its host names or addresses" >&2; exit 2; }
    san=""
    for h in "$@"; do
      if [[ $h =~ ^[0-9.]+$ || $h == *:* ]]; then san+="${san:+,}IP:$h"; else san+="${san:+,}DNS:$h"; fi
    done
    sign broker "$1" "subjectAltName=$san"
    ;;
  client)
    [[ $# -ge 1 ]] || { echo "make-certs.sh: client needs names" >&2; exit 2; }
    for n in "$@"; do
      [[ $n =~ ^[A-Za-z0-9_.-]+$ ]] || { echo "make-certs.sh: '$n' is not a name (letters, digits, _ . -)" >&2; exit 2; }
      sign "$n" "$n" "extendedKeyUsage=clientAuth"
    done
    ;;
  *) echo "make-certs.sh: unknown kind '$kind' (ca, broker or client)" >&2; exit 2 ;;
esac
