#!/usr/bin/env bash
# Turns a built gold image into an attested PVE template. Run as root on the PVE node that
# will hold the template, with the `reborn` binary on PATH.
#
# Usage:
#   gold-images/import-template.sh --image FILE --name NAME --vmid N --storage STORAGE \
#       (--key PRIVATE_KEY | --attestation FILE --trusted-key PUBLIC_KEY) \
#       --token-id 'reborn@pve!gold' --token-secret-file FILE \
#       [--bridge vmbr0] [--cores 2] [--memory 2048] [--pve-url URL] [--ca-file FILE]
#
# Steps: (1) attest the image with --key (or check a build host's --attestation against the
# image file here), (2) qm create + qm importdisk + qm set, (3) qm template, (4) reborn gold
# register (attestation into the template's description, version tag), (5) print the
# GoldImage manifest values. See gold-images/README.md.
set -euo pipefail

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

image="" name="" vmid="" storage="" key="" attestation="" trusted_key=""
token_id="" token_secret_file="" bridge="vmbr0" cores="2" memory="2048"
pve_url="${REBORN_PVE_URL:-https://$(hostname -f):8006}"
ca_file="/etc/pve/pve-root-ca.pem"

while [[ $# -gt 0 ]]; do
	case "$1" in
	--image) image="$2"; shift 2 ;;
	--name) name="$2"; shift 2 ;;
	--vmid) vmid="$2"; shift 2 ;;
	--storage) storage="$2"; shift 2 ;;
	--key) key="$2"; shift 2 ;;
	--attestation) attestation="$2"; shift 2 ;;
	--trusted-key) trusted_key="$2"; shift 2 ;;
	--token-id) token_id="$2"; shift 2 ;;
	--token-secret-file) token_secret_file="$2"; shift 2 ;;
	--bridge) bridge="$2"; shift 2 ;;
	--cores) cores="$2"; shift 2 ;;
	--memory) memory="$2"; shift 2 ;;
	--pve-url) pve_url="$2"; shift 2 ;;
	--ca-file) ca_file="$2"; shift 2 ;;
	-h | --help) sed -n '2,14p' "$0"; exit 0 ;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
done

for required in image name vmid storage token_id token_secret_file; do
	[[ -n "${!required}" ]] || die "--${required//_/-} is required"
done
[[ -f "$image" ]] || die "--image $image: no such file"
[[ "$vmid" =~ ^[0-9]+$ ]] || die "--vmid must be a number"
command -v qm >/dev/null 2>&1 || die "qm not found: run this on a PVE node"
command -v reborn >/dev/null 2>&1 || die "reborn not found on PATH"
if qm status "$vmid" >/dev/null 2>&1; then
	die "VM $vmid already exists; choose a free --vmid (outside every Node's vmids range)"
fi

# 1. The attestation: made here with the private key, or made on the build host and checked
#    here against the image file that is about to be imported (exit 8 = does not verify).
if [[ -n "$key" ]]; then
	attestation="$image.attestation.json"
	trusted_key="$key.pub"
	log "attesting $image as $name"
	reborn gold attest --image "$image" --name "$name" --key "$key" --out "$attestation" >/dev/null
elif [[ -z "$attestation" || -z "$trusted_key" ]]; then
	die "give --key, or --attestation with --trusted-key"
fi
log "verifying $attestation against $image"
reborn gold verify --attestation "$attestation" --key "$trusted_key" --image "$image"

# 2. A VM shell, the image as its boot disk, a cloud-init drive, the guest agent, serial console.
log "creating VM $vmid ($name)"
qm create "$vmid" --name "$name" --ostype l26 --cores "$cores" --memory "$memory" \
	--net0 "virtio,bridge=$bridge" --scsihw virtio-scsi-single --agent enabled=1 \
	--serial0 socket --vga serial0
log "importing the disk into $storage"
qm importdisk "$vmid" "$image" "$storage" >/dev/null
volume="$(qm config "$vmid" | sed -n 's/^unused0: //p')"
[[ -n "$volume" ]] || die "qm importdisk left no unused0 disk on VM $vmid"
qm set "$vmid" --scsi0 "$volume" --boot order=scsi0 --ide2 "$storage:cloudinit"

# 3. Read-only from now on: clones are made from it.
log "converting VM $vmid to a template"
qm template "$vmid"

# 4. The attestation into the description and the version tag, checked on read-back.
log "registering the attestation on template $vmid"
reborn gold register --node "$(hostname)" --vmid "$vmid" --attestation "$attestation" \
	--key "$trusted_key" --pve-url "$pve_url" --token-id "$token_id" \
	--token-secret-file "$token_secret_file" --ca-file "$ca_file"

# 5. What the GoldImage manifest needs.
digest="$(sed -n 's/^ *"digest": "\(sha256:[0-9a-f]*\)".*/\1/p' "$attestation" | head -n 1)"
if [[ -f "$trusted_key" ]]; then
	public_key="$(cat "$trusted_key")"
else
	public_key="$trusted_key"
fi
cat <<MANIFEST
# GoldImage for this template:
apiVersion: reborn.dev/v1alpha1
kind: GoldImage
metadata: {name: $name}
spec:
  template: {pveNode: $(hostname), vmid: $vmid}
  digest: $digest
  trustedKeys: ["$public_key"]
MANIFEST
