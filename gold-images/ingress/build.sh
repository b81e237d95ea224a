#!/usr/bin/env bash
# Builds the jsonRAG ingress gold image: Debian 12 cloud image + nginx + keepalived (a VRRP
# virtual IP shared by the ingress pair), cloud-init and qemu-guest-agent. The VIP, the VRRP
# priority and password and the upstream workers are per deployment and arrive by cloud-init.
#
# Usage: gold-images/ingress/build.sh [--out FILE] [--size 4G] [--cache DIR]
# Needs: curl, coreutils, qemu-utils, libguestfs-tools (virt-customize). See gold-images/README.md.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=../lib.sh
source "$here/../lib.sh"

out="jsonrag-ingress.qcow2"
size="4G"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/reborn-gold-images"

while [[ $# -gt 0 ]]; do
	case "$1" in
	--out) out="$2"; shift 2 ;;
	--size) size="$2"; shift 2 ;;
	--cache) cache="$2"; shift 2 ;;
	-h | --help) sed -n '2,8p' "$0"; exit 0 ;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
done

need curl sha512sum sha256sum qemu-img virt-customize

base="$(fetch_base "$cache")"
prepare_image "$base" "$out" "$size"

log "customising $out (nginx, keepalived)"
virt-customize --add "$out" \
	--update \
	--install qemu-guest-agent,cloud-init,nginx,keepalived,curl,ca-certificates \
	--upload "$here/files/check-nginx:/usr/local/bin/check-nginx" \
	--chmod 0755:/usr/local/bin/check-nginx \
	--run-command 'rm -f /etc/nginx/sites-enabled/default' \
	--mkdir /etc/systemd/system/keepalived.service.d \
	--upload "$here/files/keepalived-after-cloud-init.conf:/etc/systemd/system/keepalived.service.d/10-cloud-init.conf" \
	--run-command 'systemctl enable qemu-guest-agent.service nginx.service keepalived.service' \
	--run-command 'cloud-init clean --logs --seed' \
	--run-command 'apt-get clean' \
	--truncate /etc/machine-id \
	--delete /var/lib/dbus/machine-id

finish_image "$out"
