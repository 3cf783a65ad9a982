#!/usr/bin/env bash
# Shows the daemon at work: builds ./cmd/virtiofsd, shares a small demo folder,
# boots a Linux guest under QEMU (TCG) whose init mounts the share, lists it,
# reads a host file and writes a file of its own, then powers off; finally
# shows, from the host, the file the guest wrote. The guest's serial console
# is streamed to the terminal. Exits 0 only if the guest's file arrived.
#
# Needs what scripts/setup.sh installs (run as root). VIRTIOFSD=<binary>
# runs the demo with another daemon, e.g. the reference one.
set -euo pipefail

cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
DEPS="${VIRTIOFSD_TEST_DEPS:-/opt/virtiofsd-test}"
KERNEL="$DEPS/kernel/vmlinuz"
BUSYBOX="$(command -v busybox || echo /bin/busybox)"
TAG=demo

if [ -t 1 ]; then
	say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
else
	say() { printf '\n==> %s\n' "$*"; }
fi
die() { printf 'demo: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (the daemon needs it)"
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 missing: run scripts/setup.sh"
[ -f "$KERNEL" ] || die "$KERNEL missing: run scripts/setup.sh"
command -v cpio >/dev/null || die "cpio missing: run scripts/setup.sh"

WORK="$(mktemp -d /tmp/virtiofsd-demo.XXXXXX)"
DAEMON_PID="" QEMU_PID=""
cleanup() {
	[ -n "$QEMU_PID" ] && kill -KILL "$QEMU_PID" 2>/dev/null || true
	[ -n "$DAEMON_PID" ] && kill -KILL "$DAEMON_PID" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

if [ -n "${VIRTIOFSD:-}" ]; then
	DAEMON="$VIRTIOFSD"
	say "using daemon $DAEMON"
else
	say "building ./cmd/virtiofsd (CGO_ENABLED=0) into bin/virtiofsd"
	mkdir -p bin
	CGO_ENABLED=0 go build -trimpath -o bin/virtiofsd ./cmd/virtiofsd
	DAEMON="$PWD/bin/virtiofsd"
fi

say "creating the demo folder $WORK/share"
SHARE="$WORK/share"
mkdir -p "$SHARE/docs"
printf 'Hello from the host (%s)!\n' "$(hostname)" >"$SHARE/hello.txt"
printf 'virtio-fs lets a guest mount a host folder.\n' >"$SHARE/docs/readme.txt"
head -c 100000 /dev/urandom >"$SHARE/random.bin"
ln -s hello.txt "$SHARE/greeting"
ls -la "$SHARE"
HOST_MD5="$(cd "$SHARE" && md5sum random.bin | cut -d' ' -f1)"
echo "md5sum random.bin: $HOST_MD5"

say "building the guest initramfs (busybox + init script)"
ROOT="$WORK/initramfs"
mkdir -p "$ROOT"/{bin,dev,proc,sys,mnt,tmp}
cp "$BUSYBOX" "$ROOT/bin/busybox"
mknod "$ROOT/dev/console" c 5 1
cat >"$ROOT/init" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "=== guest: \$(uname -sr) is up; mounting virtio-fs tag '$TAG' on /mnt"
if mount -t virtiofs $TAG /mnt; then
	grep virtiofs /proc/mounts
	echo "=== guest: ls -la /mnt"
	ls -la /mnt
	echo "=== guest: cat /mnt/hello.txt"
	cat /mnt/hello.txt
	echo "=== guest: cat /mnt/docs/readme.txt"
	cat /mnt/docs/readme.txt
	echo "=== guest: md5sum /mnt/random.bin"
	md5sum /mnt/random.bin
	echo "=== guest: writing /mnt/from-guest.txt"
	echo "Hello from the guest, kernel \$(uname -r)!" >/mnt/from-guest.txt
	sync
	ls -la /mnt/from-guest.txt
	echo "=== guest: df -h /mnt"
	df -h /mnt
	umount /mnt
else
	echo "=== guest: mount failed"
fi
echo "=== guest: powering off"
poweroff -f
EOF
chmod 0755 "$ROOT/init"
(cd "$ROOT" && find . | cpio --quiet -o -H newc -R 0:0 | gzip -1) >"$WORK/initrd.gz"

say "starting $DAEMON --shared-dir $SHARE --socket-path $WORK/vfsd.sock"
"$DAEMON" --shared-dir "$SHARE" --socket-path "$WORK/vfsd.sock" > >(sed -u 's/^/[daemon] /') 2>&1 &
DAEMON_PID=$!
for _ in $(seq 1 500); do
	[ -S "$WORK/vfsd.sock" ] && break
	kill -0 "$DAEMON_PID" 2>/dev/null || die "the daemon exited before listening"
	sleep 0.02
done
[ -S "$WORK/vfsd.sock" ] || die "the daemon did not create its socket"

say "booting the guest (QEMU, TCG); serial console follows"
timeout --kill-after=5 180 qemu-system-x86_64 \
	-nodefaults -no-user-config \
	-accel tcg,thread=multi -cpu max -smp 2 -m 512 \
	-object memory-backend-memfd,id=mem,size=512M,share=on -numa node,memdev=mem \
	-chardev socket,id=char0,path="$WORK/vfsd.sock" \
	-device vhost-user-fs-pci,chardev=char0,tag=$TAG \
	-kernel "$KERNEL" -initrd "$WORK/initrd.gz" \
	-append "console=ttyS0 panic=-1 loglevel=3" \
	-display none -monitor none -serial stdio -no-reboot </dev/null > >(tee "$WORK/console.log") 2>&1 &
QEMU_PID=$!
qemu_rc=0
wait "$QEMU_PID" || qemu_rc=$?
QEMU_PID=""
[ "$qemu_rc" -eq 0 ] || die "QEMU exited with status $qemu_rc"

# The daemon leaves by itself once QEMU has closed the connection.
for _ in $(seq 1 100); do
	kill -0 "$DAEMON_PID" 2>/dev/null || break
	sleep 0.1
done

grep -q "^$HOST_MD5  /mnt/random.bin" "$WORK/console.log" ||
	die "the guest did not read random.bin with the host's checksum $HOST_MD5"

say "back on the host: ls -la $SHARE"
ls -la "$SHARE"
say "back on the host: cat $SHARE/from-guest.txt"
if ! grep -q '^Hello from the guest, kernel ' "$SHARE/from-guest.txt" 2>/dev/null; then
	die "the file the guest should have written is missing or wrong"
fi
cat "$SHARE/from-guest.txt"
say "demo finished successfully"
