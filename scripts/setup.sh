#!/usr/bin/env bash
# Installs what the tests and the demo need on a Debian 12 (bookworm) host, as root:
#
#   - apt sources for bookworm-backports and trixie (trixie pinned low, so nothing
#     on the host is upgraded from it);
#   - QEMU 10 (qemu-system-x86 from bookworm-backports), busybox-static, cpio;
#   - the reference daemon: Debian trixie's virtiofsd 1.13.2 and the libraries it
#     needs, unpacked (not installed) under $DEPS/ref, run through a wrapper that
#     uses trixie's dynamic loader: $DEPS/ref/virtiofsd;
#   - Debian's 6.12 cloud kernel, unpacked (not installed): $DEPS/kernel/vmlinuz;
#   - bookworm's stress-ng with its libraries and loader, unpacked (not
#     installed) for the guest's initramfs: $DEPS/stress-ng/guest;
#   - newuidmap/newgidmap (uidmap) and the unprivileged system user
#     virtiofsd-test with /etc/subuid and /etc/subgid ranges, for the
#     sandbox tests.
#
# DEPS is $VIRTIOFSD_TEST_DEPS, default /opt/virtiofsd-test. The script is
# idempotent and returns quickly once everything is in place.
set -euo pipefail

DEPS="${VIRTIOFSD_TEST_DEPS:-/opt/virtiofsd-test}"
export DEBIAN_FRONTEND=noninteractive

log() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root"

# write_if_changed FILE: writes stdin to FILE unless FILE already has that
# content; returns 0 if the file changed.
write_if_changed() {
	local file="$1" tmp
	tmp="$(mktemp)"
	cat >"$tmp"
	if [ -f "$file" ] && cmp -s "$tmp" "$file"; then
		rm -f "$tmp"
		return 1
	fi
	install -m 0644 "$tmp" "$file"
	rm -f "$tmp"
	return 0
}

# ---------------------------------------------------------------------------
# apt sources
# ---------------------------------------------------------------------------
sources_changed=0
if write_if_changed /etc/apt/sources.list.d/virtiofsd-test.sources <<'EOF'; then sources_changed=1; fi
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
if write_if_changed /etc/apt/preferences.d/virtiofsd-test <<'EOF'; then sources_changed=1; fi
# Packages are taken from trixie only when asked for explicitly.
Package: *
Pin: release n=trixie
Pin-Priority: 90

Package: *
Pin: release n=bookworm-backports
Pin-Priority: 100
EOF

have_lists() {
	compgen -G '/var/lib/apt/lists/*_dists_trixie_main_binary-amd64_Packages*' >/dev/null &&
		compgen -G '/var/lib/apt/lists/*_dists_bookworm-backports_main_binary-amd64_Packages*' >/dev/null
}
apt_updated=0
apt_update() {
	if [ "$apt_updated" -eq 0 ]; then
		log "apt-get update"
		apt-get update -q >/dev/null
		apt_updated=1
	fi
}
if [ "$sources_changed" -eq 1 ] || ! have_lists; then
	apt_update
fi

# download_extract SUITE DEST PKG...: apt-get downloads each package from SUITE
# into DEST/debs and unpacks all of them into DEST/root.
download_extract() {
	local suite="$1" dest="$2"
	shift 2
	rm -rf "$dest.tmp"
	mkdir -p "$dest.tmp/debs" "$dest.tmp/root"
	local p deb
	for p in "$@"; do
		if ! (cd "$dest.tmp/debs" && apt-get download -q -o APT::Sandbox::User=root "$p/$suite" >/dev/null); then
			log "apt-get download $p/$suite failed"
			return 1
		fi
	done
	for deb in "$dest.tmp"/debs/*.deb; do
		dpkg -x "$deb" "$dest.tmp/root" || return 1
	done
}

# ---------------------------------------------------------------------------
# Reference daemon: trixie's virtiofsd 1.13.2 with trixie's libraries.
# ---------------------------------------------------------------------------
REF="$DEPS/ref"
REF_WANT="1.13.2"
ref_ok() {
	[ -x "$REF/virtiofsd" ] && "$REF/virtiofsd" --version 2>/dev/null | grep -qx "virtiofsd $REF_WANT"
}
if ! ref_ok; then
	log "fetching the reference virtiofsd from trixie"
	mkdir -p "$DEPS"
	if ! download_extract trixie "$REF" virtiofsd libc6 libcap-ng0 libseccomp2 libgcc-s1; then
		apt_update
		download_extract trixie "$REF" virtiofsd libc6 libcap-ng0 libseccomp2 libgcc-s1
	fi
	root="$REF.tmp/root"
	ldso="$(find "$root" -name 'ld-linux-x86-64.so.2' | head -n1)"
	[ -n "$ldso" ] || die "no ld-linux-x86-64.so.2 in the trixie libc6 package"
	ldir="${ldso%/*}"
	ldir="${ldir#"$root"}"
	[ -x "$root/usr/libexec/virtiofsd" ] || die "no usr/libexec/virtiofsd in the trixie virtiofsd package"
	rm -rf "$REF"
	mv "$REF.tmp" "$REF"
	cat >"$REF/virtiofsd" <<EOF
#!/bin/sh
# Runs Debian trixie's virtiofsd with trixie's own C library (written by scripts/setup.sh).
exec "$REF/root$ldir/ld-linux-x86-64.so.2" --library-path "$REF/root$ldir" "$REF/root/usr/libexec/virtiofsd" "\$@"
EOF
	chmod 0755 "$REF/virtiofsd"
	ref_ok || die "$REF/virtiofsd --version does not report $REF_WANT: $("$REF/virtiofsd" --version 2>&1 || true)"
fi
log "reference: $("$REF/virtiofsd" --version 2>&1 | head -n1) ($REF/virtiofsd)"

# ---------------------------------------------------------------------------
# Host packages: QEMU 10 from bookworm-backports, busybox-static, cpio.
# ---------------------------------------------------------------------------
qemu_ok() {
	command -v qemu-system-x86_64 >/dev/null &&
		qemu-system-x86_64 --version | head -n1 | grep -Eq 'version (1[0-9])\.'
}
need=()
qemu_ok || need+=(qemu-system-x86)
for p in busybox-static cpio; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
	apt_update
	log "apt-get install ${need[*]}"
	# -t lets QEMU's own dependencies come from bookworm-backports too; other
	# packages keep their bookworm versions unless they need newer ones.
	apt-get install -y -q --no-install-recommends -t bookworm-backports "${need[@]}" >/dev/null
fi
qemu_ok || die "qemu-system-x86_64 is not version 10 or later: $(qemu-system-x86_64 --version | head -n1)"
log "qemu: $(qemu-system-x86_64 --version | head -n1)"

# ---------------------------------------------------------------------------
# Guest kernel: Debian's 6.12 cloud kernel, unpacked only.
# ---------------------------------------------------------------------------
KDIR="$DEPS/kernel"
kernel_ok() {
	[ -s "$KDIR/vmlinuz" ] && [ -s "$KDIR/config" ] && [ -s "$KDIR/package" ]
}
# kernel_pkg SUITE: prints the versioned 6.12 cloud image package that
# linux-image-cloud-amd64 in SUITE points at, if any.
kernel_pkg() {
	local dep
	dep="$(apt-cache show "linux-image-cloud-amd64/$1" 2>/dev/null |
		sed -n 's/^Depends: .*\(linux-image-6\.12\.[^ ,]*-cloud-amd64\).*/\1/p' | head -n1)"
	[ -n "$dep" ] || return 1
	case "$dep" in *-unsigned) ;; *) dep="$dep-unsigned" ;; esac
	apt-cache show "$dep/$1" >/dev/null 2>&1 || return 1
	printf '%s\n' "$dep"
}
# fetch_kernel: unpacks the newest 6.12 cloud kernel into $KDIR.tmp and sets
# suite and pkg.
fetch_kernel() {
	suite="" pkg=""
	local s
	for s in bookworm-backports trixie; do
		if pkg="$(kernel_pkg "$s")"; then
			suite="$s"
			break
		fi
	done
	[ -n "$suite" ] || return 1
	log "fetching $pkg from $suite"
	download_extract "$suite" "$KDIR" "$pkg"
}
if ! kernel_ok; then
	if ! fetch_kernel; then
		# The package lists may be stale: refresh them once and retry.
		apt_update
		fetch_kernel || die "cannot fetch linux-image-6.12.*-cloud-amd64-unsigned from bookworm-backports or trixie"
	fi
	root="$KDIR.tmp/root"
	vmlinuz="$(find "$root/boot" -name 'vmlinuz-*' | head -n1)"
	config="$(find "$root/boot" -name 'config-*' | head -n1)"
	[ -n "$vmlinuz" ] && [ -n "$config" ] || die "$pkg has no /boot/vmlinuz-* or /boot/config-*"
	# The guest needs virtio-pci, virtio-fs and FUSE; with the cloud kernel all
	# of them are built in, so the initramfs carries no modules.
	for opt in CONFIG_VIRTIO_PCI CONFIG_VIRTIO_FS CONFIG_FUSE_FS CONFIG_SERIAL_8250_CONSOLE \
		CONFIG_DEVTMPFS CONFIG_BLK_DEV_INITRD CONFIG_RD_GZIP; do
		grep -qx "$opt=y" "$config" || die "$pkg: $opt is not built in ($(grep "^$opt=" "$config" || echo unset))"
	done
	mkdir -p "$KDIR.new"
	cp "$vmlinuz" "$KDIR.new/vmlinuz"
	cp "$config" "$KDIR.new/config"
	printf '%s %s\n' "$pkg" "$suite" >"$KDIR.new/package"
	rm -rf "$KDIR" "$KDIR.tmp"
	mv "$KDIR.new" "$KDIR"
fi
log "kernel: $(cat "$KDIR/package") ($KDIR/vmlinuz)"

# ---------------------------------------------------------------------------
# stress-ng for the guest: bookworm's stress-ng with every shared library it
# loads, unpacked (not installed) and laid out as the guest's initramfs needs
# it: $DEPS/stress-ng/guest/usr/bin/stress-ng, its libraries in
# $DEPS/stress-ng/guest/lib/x86_64-linux-gnu and the loader in
# $DEPS/stress-ng/guest/lib64.
# ---------------------------------------------------------------------------
SNG="$DEPS/stress-ng"
SNG_PKGS=(stress-ng libc6 libegl1 libglvnd0 libgles2 libipsec-mb1 libjudydebian1 libapparmor1 libbsd0
	libmd0 libcrypt1 libgbm1 libdrm2 libwayland-server0 libexpat1 libjpeg62-turbo libkmod2 libzstd1
	liblzma5 libssl3 libffi8 libsctp1 libxxhash0 zlib1g)
sng_ok() {
	[ -x "$SNG/guest/usr/bin/stress-ng" ] && [ -x "$SNG/guest/lib64/ld-linux-x86-64.so.2" ] &&
		[ -s "$SNG/version" ]
}
if ! sng_ok; then
	log "fetching stress-ng and its libraries from bookworm"
	mkdir -p "$DEPS"
	if ! download_extract bookworm "$SNG" "${SNG_PKGS[@]}"; then
		apt_update
		download_extract bookworm "$SNG" "${SNG_PKGS[@]}"
	fi
	root="$SNG.tmp/root"
	ldso="$(find "$root" -name 'ld-linux-x86-64.so.2' | head -n1)"
	[ -n "$ldso" ] || die "no ld-linux-x86-64.so.2 in bookworm's libc6 package"
	[ -x "$root/usr/bin/stress-ng" ] || die "no usr/bin/stress-ng in bookworm's stress-ng package"
	libpath="${ldso%/*}:$root/usr/lib/x86_64-linux-gnu"
	g="$SNG.tmp/guest"
	mkdir -p "$g/usr/bin" "$g/lib/x86_64-linux-gnu" "$g/lib64"
	cp "$root/usr/bin/stress-ng" "$g/usr/bin/stress-ng"
	cp -L "$ldso" "$g/lib64/ld-linux-x86-64.so.2"
	# Every library the loader resolves, under the name the binary asks for.
	list="$("$ldso" --library-path "$libpath" --list "$root/usr/bin/stress-ng")" ||
		die "cannot list the libraries of stress-ng"
	if grep -q 'not found' <<<"$list"; then
		die "stress-ng needs libraries not in the downloaded packages: $(grep 'not found' <<<"$list" | tr -s ' \t' ' ')"
	fi
	while read -r name arrow path _; do
		[ "$arrow" = "=>" ] || continue
		case "$name" in */ld-linux-x86-64.so.2) continue ;; esac
		cp -L "$path" "$g/lib/x86_64-linux-gnu/$name"
	done <<<"$list"
	dpkg-deb -f "$SNG.tmp"/debs/stress-ng_*.deb Version >"$SNG.tmp/version"
	rm -rf "$SNG.tmp/root" "$SNG.tmp/debs" "$SNG"
	mv "$SNG.tmp" "$SNG"
	sng_ok || die "stress-ng was not laid out in $SNG/guest"
fi
log "stress-ng: $(cat "$SNG/version") ($SNG/guest)"

# ---------------------------------------------------------------------------
# Unprivileged sandbox tests: newuidmap/newgidmap (package uidmap) and a
# system user with subordinate ID ranges, virtiofsd-test, that the tests of
# cmd/virtiofsd run the daemon as.
# ---------------------------------------------------------------------------
TEST_USER=virtiofsd-test
# SUBID_START and SUBID_COUNT: the user's range in /etc/subuid and /etc/subgid.
SUBID_START=400000
SUBID_COUNT=65536
if ! command -v newuidmap >/dev/null || ! command -v newgidmap >/dev/null; then
	apt_update
	log "apt-get install uidmap"
	apt-get install -y -q --no-install-recommends uidmap >/dev/null
fi
if ! id -u "$TEST_USER" >/dev/null 2>&1; then
	log "creating the system user $TEST_USER"
	useradd --system --user-group --no-create-home --home-dir /nonexistent \
		--shell /usr/sbin/nologin "$TEST_USER"
fi
for f in /etc/subuid /etc/subgid; do
	[ -e "$f" ] || install -m 0644 /dev/null "$f"
	if ! grep -q "^$TEST_USER:" "$f"; then
		printf '%s:%d:%d\n' "$TEST_USER" "$SUBID_START" "$SUBID_COUNT" >>"$f"
	fi
done
log "test user: $(id "$TEST_USER"), $(grep "^$TEST_USER:" /etc/subuid)"
