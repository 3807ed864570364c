#!/bin/bash
# Which addresses the service may reach, as a drop-in for stepd.service.
#   network.sh CHOICE DROPIN_DIR
# CHOICE:
#   loopback   only this host (the unit's own IPAddressAllow=localhost): no drop-in
#   any        no address filter: a classroom server behind a load balancer or a CDN whose
#              addresses change, or one reached through a name that resolves elsewhere
#   ADDRESSES  these addresses or prefixes as well as this host: "10.0.0.5 192.0.2.0/24"
# Writes (or, for loopback, removes) DROPIN_DIR/network.conf and prints what is in force.
set -euo pipefail

choice=${1:?usage: network.sh loopback|any|ADDRESSES DROPIN_DIR}
dir=${2:?usage: network.sh loopback|any|ADDRESSES DROPIN_DIR}
file=$dir/network.conf

case "$choice" in
loopback)
    rm -f "$file"
    echo "network: this host only"
    exit 0
    ;;
any)
    body='# stepd may reach any address (make install NETWORK=any).
[Service]
IPAddressDeny='
    ;;
*)
    for address in $choice; do
        if ! [[ "$address" =~ ^[0-9A-Fa-f:.]+(/[0-9]+)?$ ]]; then
            echo "network: '$address' is not an IP address or prefix (use any for names)" >&2
            exit 2
        fi
    done
    body="# stepd may reach these addresses as well as this host (make install NETWORK=...).
[Service]
IPAddressAllow=$choice"
    ;;
esac
install -d -m 0755 "$dir"
printf '%s\n' "$body" >"$file"
echo "network: $(tail -n 1 "$file")"
