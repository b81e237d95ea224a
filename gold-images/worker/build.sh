#!/usr/bin/env bash
# Builds the jsonRAG worker gold image: Debian 12 cloud image + the application runtime,
# cloud-init, qemu-guest-agent, and a systemd mount of the tenants' object storage bucket whose
# credentials arrive by cloud-init (so a fresh clone re-mounts its data at boot).
#
# Usage: gold-images/worker/build.sh [--out FILE] [--app TARBALL] [--size 10G] [--cache DIR]
# Needs: curl, coreutils, qemu-utils, libguestfs-tools (virt-customize); run as a user that can
# use /dev/kvm (or set LIBGUESTFS_BACKEND_SETTINGS=force_tcg, slower). See gold-images/README.md.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=../lib.sh
source "$here/../lib.sh"

out="jsonrag-worker.qcow2"
app=""
size="10G"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/reborn-gold-images"

while [[ $# -gt 0 ]]; do
	case "$1" in
	--out) out="$2"; shift 2 ;;
	--app) app="$2"; shift 2 ;;
	--size) size="$2"; shift 2 ;;
	--cache) cache="$2"; shift 2 ;;
	-h | --help) sed -n '2,9p' "$0"; exit 0 ;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
done

need curl sha512sum sha256sum qemu-img virt-customize
[[ -z "$app" || -f "$app" ]] || die "--app $app: no such file"

base="$(fetch_base "$cache")"
prepare_image "$base" "$out" "$size"

# The application: a tarball unpacked into /opt/jsonrag (it must provide bin/jsonrag). Without
# --app the image has the runtime and the units, and the service waits for /opt/jsonrag/bin/jsonrag.
app_args=()
if [[ -n "$app" ]]; then
	app_args=(--mkdir /opt/jsonrag --upload "$app:/tmp/jsonrag.tar.gz"
		--run-command 'tar -xzf /tmp/jsonrag.tar.gz -C /opt/jsonrag && rm /tmp/jsonrag.tar.gz')
fi

log "customising $out (packages, units, app)"
virt-customize --add "$out" \
	--update \
	--install qemu-guest-agent,cloud-init,python3,python3-venv,rclone,fuse3,ca-certificates \
	--run-command 'useradd --system --home-dir /opt/jsonrag --shell /usr/sbin/nologin jsonrag' \
	--mkdir /srv/data --mkdir /etc/jsonrag \
	--run-command 'ln -sf /usr/bin/rclone /sbin/mount.rclone' \
	--upload "$here/files/srv-data.mount:/etc/systemd/system/srv-data.mount" \
	--upload "$here/files/jsonrag.service:/etc/systemd/system/jsonrag.service" \
	"${app_args[@]}" \
	--run-command 'systemctl enable qemu-guest-agent.service srv-data.mount jsonrag.service' \
	--run-command 'cloud-init clean --logs --seed' \
	--run-command 'apt-get clean' \
	--truncate /etc/machine-id \
	--delete /var/lib/dbus/machine-id

finish_image "$out"
