#!/usr/bin/env bash
# Shared helpers of the gold image recipes (sourced by */build.sh; not run on its own).

# The Debian 12 (bookworm) "genericcloud" image: cloud-init ready, no hardware drivers beyond
# virtio, which is what a PVE VM needs.
DEBIAN_BASE_URL="${DEBIAN_BASE_URL:-https://cloud.debian.org/images/cloud/bookworm/latest}"
DEBIAN_IMAGE="${DEBIAN_IMAGE:-debian-12-genericcloud-amd64.qcow2}"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# need CMD... : fail early, naming the Debian package, when a tool is missing.
need() {
	local cmd
	for cmd in "$@"; do
		command -v "$cmd" >/dev/null 2>&1 || die "'$cmd' not found (apt-get install $(package_of "$cmd"))"
	done
}

package_of() {
	case "$1" in
	virt-customize) echo libguestfs-tools ;;
	qemu-img) echo qemu-utils ;;
	sha512sum | sha256sum) echo coreutils ;;
	*) echo "$1" ;;
	esac
}

# fetch_base CACHE_DIR: downloads the Debian cloud image into CACHE_DIR (once) and checks it
# against Debian's SHA512SUMS; prints the image path.
fetch_base() {
	local cache="$1"
	mkdir -p "$cache"
	log "fetching $DEBIAN_BASE_URL/SHA512SUMS"
	curl --fail --silent --show-error --location -o "$cache/SHA512SUMS" "$DEBIAN_BASE_URL/SHA512SUMS"
	if [[ ! -f "$cache/$DEBIAN_IMAGE" ]]; then
		log "downloading $DEBIAN_IMAGE"
		curl --fail --show-error --location -o "$cache/$DEBIAN_IMAGE.part" "$DEBIAN_BASE_URL/$DEBIAN_IMAGE"
		mv "$cache/$DEBIAN_IMAGE.part" "$cache/$DEBIAN_IMAGE"
	fi
	log "checking $DEBIAN_IMAGE against SHA512SUMS"
	(cd "$cache" && grep " $DEBIAN_IMAGE\$" SHA512SUMS | sha512sum --check --strict --quiet) ||
		die "$cache/$DEBIAN_IMAGE does not match Debian's SHA512SUMS (delete it and retry)"
	printf '%s\n' "$cache/$DEBIAN_IMAGE"
}

# prepare_image BASE OUT SIZE: copies the base image to OUT and grows its virtual disk.
prepare_image() {
	local base="$1" out="$2" size="$3"
	[[ -e "$out" ]] && die "$out exists; remove it or choose another --out"
	cp --reflink=auto "$base" "$out.part"
	qemu-img resize -q "$out.part" "$size"
	mv "$out.part" "$out"
}

# finish_image OUT: sparsifies and prints the digest to attest.
finish_image() {
	local out="$1"
	if command -v virt-sparsify >/dev/null 2>&1; then
		log "sparsifying"
		virt-sparsify --quiet --in-place "$out"
	fi
	log "built $out"
	sha256sum "$out" >&2
	log "next: reborn gold attest --image $out --name <gold image name> --key <private key>"
}
