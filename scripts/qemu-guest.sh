#!/usr/bin/env bash
# Builds the QEMU guest that judges ukey's USB/IP export with a real Linux kernel's USB stack
# and a user's smart-card stack (pcscd with libccid, OpenSC):
# Debian's own kernel (linux-image-amd64, downloaded with apt-get download and unpacked with
# dpkg-deb, never installed) and a busybox initramfs holding usbip, socat, pcscd, libccid and
# OpenSC (copied with their libraries from this machine's Debian packages) and the modules the
# guest needs (virtio console, usbcore, usbip-core, vhci-hcd). The guest has no network card:
# the USB/IP stream comes over a virtio-serial port, which socat in the guest offers on its own
# 127.0.0.1:3240 to `usbip attach`. What the guest sees is printed on its serial console,
# lines starting "ukey-guest:".
#
#   scripts/qemu-guest.sh DIR    -> DIR/vmlinuz, DIR/initrd.gz (reused when already there)
set -euo pipefail
out=${1:?usage: qemu-guest.sh DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
if [ -s "$out/vmlinuz" ] && [ -s "$out/initrd.gz" ] && [ "$out/initrd.gz" -nt "$0" ]; then
  exit 0
fi
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
need=()
for p in qemu-system-x86:/usr/bin/qemu-system-x86_64 busybox-static:/bin/busybox socat:/usr/bin/socat \
         usbip:/usr/sbin/usbip cpio:/usr/bin/cpio pcscd:/usr/sbin/pcscd libccid:/usr/lib/pcsc/drivers/ifd-ccid.bundle/Contents/Info.plist \
         opensc:/usr/bin/pkcs11-tool; do
  [ -e "${p#*:}" ] || need+=("${p%%:*}")
done
if [ ${#need[@]} -gt 0 ]; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
# The kernel Debian's metapackage points at today.
kernel_pkg() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'; }
kpkg=$(kernel_pkg)
if [ -z "$kpkg" ]; then
  as_root apt-get update -qq
  kpkg=$(kernel_pkg)
fi
[ -n "$kpkg" ] || { echo "qemu-guest: no kernel package behind linux-image-amd64 (apt-get update?)" >&2; exit 1; }
apt-get download "$kpkg" >/dev/null 2>&1 || { as_root apt-get update -qq && apt-get download "$kpkg" >/dev/null; }
dpkg-deb -x ./"$kpkg"_*.deb kernel
kver=${kpkg#linux-image-}
mods=kernel/lib/modules/$kver/kernel
root=$work/root
mkdir -p "$root"/{bin,sbin,lib,lib64,proc,sys,dev,tmp,modules,var/run,etc}
cp /bin/busybox "$root/bin/busybox"
# A dynamic binary and every library it loads, at the same paths.
add_bin() {
  local bin=$1
  mkdir -p "$root$(dirname "$bin")"
  cp -L "$bin" "$root$bin"
  ldd "$bin" | awk '/=> \// {print $3} /^[ \t]*\/lib/ {print $1}' | while read -r lib; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
}
add_bin /usr/sbin/usbip
add_bin /usr/bin/socat
# The smart-card stack a user's machine has: pcscd with libccid, and OpenSC.
add_bin /usr/sbin/pcscd
add_bin /usr/bin/opensc-tool
add_bin /usr/bin/pkcs11-tool
bundle=/usr/lib/pcsc/drivers/ifd-ccid.bundle
add_bin $bundle/Contents/Linux/libccid.so
add_bin /usr/lib/x86_64-linux-gnu/pkcs11/opensc-pkcs11.so
add_bin /usr/lib/x86_64-linux-gnu/libpcsclite.so.1
# glibc loads it at run time for pthread_exit (pcscd's threads).
add_bin /lib/x86_64-linux-gnu/libgcc_s.so.1
# libccid opens only the readers its Info.plist names: ukey's pid.codes test pair goes first
# in each of the three parallel lists.
sed -e '/<key>ifdVendorID<\/key>/{n;a\		<string>0x1209</string>
}' -e '/<key>ifdProductID<\/key>/{n;a\		<string>0x0001</string>
}' -e '/<key>ifdFriendlyName<\/key>/{n;a\		<string>ukey</string>
}' $bundle/Contents/Info.plist > "$root$bundle/Contents/Info.plist"
for m in virtio/virtio_ring virtio/virtio virtio/virtio_pci_modern_dev virtio/virtio_pci_legacy_dev \
         virtio/virtio_pci char/virtio_console usb/common/usb-common usb/core/usbcore \
         usb/usbip/usbip-core usb/usbip/vhci-hcd; do
  cp "$mods/drivers/$m.ko" "$root/modules/"
done
cat > "$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
say() { echo "ukey-guest: $*"; }
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_console \
         usb-common usbcore usbip-core vhci-hcd; do
  insmod /modules/$m.ko || say "insmod $m failed"
done
ip link set lo up
port=
for i in $(seq 100); do
  port=$(ls /dev/vport*p1 2>/dev/null | head -n1)
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || { say "no virtio-serial port"; poweroff -f; }
socat TCP-LISTEN:3240,bind=127.0.0.1,reuseaddr OPEN:"$port" &
sleep 0.3
usbip attach -r 127.0.0.1 -b 1-1
say "attach rc=$?"
dev=
for i in $(seq 150); do
  for d in /sys/bus/usb/devices/*; do
    [ "$(cat "$d/idVendor" 2>/dev/null)" = 1209 ] && dev=$d
  done
  [ -n "$dev" ] && [ -e "$dev/$(basename "$dev"):1.0/bInterfaceClass" ] && break
  sleep 0.1
done
if [ -n "$dev" ]; then
  i="$dev/$(basename "$dev"):1.0"
  say "device $(cat $dev/idVendor):$(cat $dev/idProduct) manufacturer=$(cat $dev/manufacturer) product=$(cat $dev/product) serial=$(cat $dev/serial)"
  say "interface class=$(cat $i/bInterfaceClass) endpoints=$(cat $i/bNumEndpoints)"
  say "speed=$(cat $dev/speed) configuration=$(cat $dev/bConfigurationValue)"
else
  say "no device 1209 enumerated"
fi
mkdir -p /run/pcscd /var/run/pcscd
pcscd --foreground > /tmp/pcscd.log 2>&1 &
readers=
for i in $(seq 200); do
  readers=$(opensc-tool -l 2>/dev/null | grep -i ukey)
  [ -n "$readers" ] && break
  sleep 0.1
done
say "reader: $readers"
p11=/usr/lib/x86_64-linux-gnu/pkcs11/opensc-pkcs11.so
printf 'signed in the guest by the served key' > /tmp/data
pkcs11-tool --module $p11 --login --pin 123456 --sign --id 01 -m ECDSA-SHA256 --signature-format openssl \
  -i /tmp/data -o /tmp/sig > /tmp/sign.log 2>&1
say "sign rc=$?"
pkcs11-tool --module $p11 --read-object --type cert --id 01 -o /tmp/cert.der > /tmp/read.log 2>&1
say "read rc=$?"
say "signature $(hexdump -v -e '/1 "%02x"' /tmp/sig 2>/dev/null)"
say "certificate $(hexdump -v -e '/1 "%02x"' /tmp/cert.der 2>/dev/null)"
[ -s /tmp/sig ] || { sed 's/^/ukey-guest: sign log: /' /tmp/sign.log; tail -20 /tmp/pcscd.log | sed 's/^/ukey-guest: pcscd log: /'; }
say done
poweroff -f
INIT
chmod +x "$root/init"
cp "kernel/boot/vmlinuz-$kver" "$out/vmlinuz"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$out/initrd.gz"
echo "qemu-guest: $kpkg, initramfs $(du -h "$out/initrd.gz" | cut -f1)"
