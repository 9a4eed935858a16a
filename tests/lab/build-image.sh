#!/usr/bin/env bash
# Build (or reuse) the lab's Debian 13 root image.
#
#   tests/lab/build-image.sh            # prints the image directory on stdout
#
# The image directory holds root.img (ext4, raw), vmlinuz, initrd.img, sd.img (the pi's SD card:
# a FAT boot partition with the kernel and cmdline.txt, then the spare space), the lab's ssh
# client key (id_ed25519), the VMs' ssh host public key (host_ed25519.pub) and a STAMP file. It
# lives under tests/lab/.cache/<key>, where <key> hashes this script, packages.txt and the
# vendored sources: an unchanged recipe reuses the image at once. Needs root, debootstrap,
# qemu-system-x86, dosfstools, mtools and fdisk (installed with apt-get when missing). The Debian mirror
# is the one this machine's apt sources use (override with PBR_LAB_MIRROR=URL).
#
# mkinitcpio v41 and bcache-tools' mkinitcpio hook come from ../shared/vendor/ beside the
# repository (PBR_LAB_VENDOR=DIR overrides); they are built into the image, never copied into the
# repository.
set -euo pipefail
# Only the image path goes to stdout (fd 3); every tool's chatter goes to stderr.
exec 3>&1 1>&2

LAB="$(cd "$(dirname "$0")" && pwd)"
CACHE="${PBR_LAB_CACHE:-$LAB/.cache}"
SUITE=trixie
SIZE=3G
USER_NAME=pbr

log() { echo "[lab build] $*" >&2; }
die() { echo "[lab build] error: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot)"

packages() { sed -e 's/#.*//' -e 's/[[:space:]]//g' "$LAB/packages.txt" | grep -v '^$' | paste -sd, -; }

VENDOR="${PBR_LAB_VENDOR:-$LAB/../../../shared/vendor}"
for f in mkinitcpio-41.tar.gz bcache-tools-initcpio.tar.gz; do
  [ -f "$VENDOR/$f" ] || die "$VENDOR/$f is missing: the lab builds mkinitcpio from it (set PBR_LAB_VENDOR=DIR)"
done
VENDOR="$(cd "$VENDOR" && pwd)"

KEY="$(cat "$0" "$LAB/packages.txt" "$VENDOR/mkinitcpio-41.tar.gz" "$VENDOR/bcache-tools-initcpio.tar.gz" | sha256sum | cut -c1-16)"
OUT="$CACHE/$KEY"
if [ -f "$OUT/STAMP" ]; then
  log "cached image $OUT"
  echo "$OUT" >&3
  exit 0
fi

# --- host tools -------------------------------------------------------------------------------
# The mirror of this machine's Debian archive (not the security archive), from its apt sources.
mirror() {
  if [ -n "${PBR_LAB_MIRROR:-}" ]; then echo "$PBR_LAB_MIRROR"; return; fi
  local f u
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    for u in $(sed -n 's/^URIs:[[:space:]]*//p' "$f"); do
      case "$u" in */debian|*/debian/) echo "${u%/}"; return ;; esac
    done
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    u="$(awk '$1=="deb" { for (i=2;i<=NF;i++) if ($i !~ /^\[/ && $i ~ /:\/\//) { print $i; exit } }' "$f" |
      grep -E '/debian/?$' | head -n1 || true)"
    if [ -n "$u" ]; then echo "${u%/}"; return; fi
  done
  return 1
}
MIRROR="$(mirror)" || die "no Debian mirror in /etc/apt/sources.list{,.d/*}: set PBR_LAB_MIRROR"

# qemu-system-x86 must match an installed qemu-utils: when that came from backports, take qemu
# from the same backports suite (a plain install would remove qemu-utils), through a temporary
# sources list that leaves the machine's apt configuration as it was.
install_tools() {
  local need=()
  command -v debootstrap >/dev/null || need+=(debootstrap)
  command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
  command -v mkfs.vfat >/dev/null || need+=(dosfstools)
  command -v mcopy >/dev/null || need+=(mtools)
  command -v sfdisk >/dev/null || need+=(fdisk)
  [ ${#need[@]} -gt 0 ] || return 0
  command -v apt-get >/dev/null || die "missing ${need[*]} and no apt-get to install them"
  log "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  local utils codename opts=()
  utils="$(dpkg-query -W -f '${Version}' qemu-utils 2>/dev/null || true)"
  codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
  if [[ "$utils" == *bpo* && -n "$codename" ]]; then
    local list; list="$(mktemp)"
    echo "deb $MIRROR $codename-backports main" >"$list"
    opts=(-o "Dir::Etc::SourceList=$list" -o APT::Get::List-Cleanup=0)
    apt-get -qq "${opts[@]}" update
    opts+=(-t "$codename-backports")
  fi
  apt-get install -y -qq --no-install-recommends "${opts[@]}" "${need[@]}" >/dev/null
}

mkdir -p "$CACHE"
exec 9>"$CACHE/build.lock"
flock 9
if [ -f "$OUT/STAMP" ]; then echo "$OUT" >&3; exit 0; fi
install_tools

T0=$(date +%s)
WORK="$CACHE/work-$KEY"
rm -rf "$WORK"
mkdir -p "$WORK"
ROOT="$WORK/root"
trap 'rm -rf "$WORK"' EXIT

log "debootstrap $SUITE from $MIRROR"
mkdir -p "$CACHE/debs"
# downloaded packages are kept: a changed recipe rebuilds without downloading everything again
debootstrap --variant=minbase --cache-dir="$CACHE/debs" --include="$(packages)" "$SUITE" "$ROOT" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 ||
  { tail -n 30 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }
T1=$(date +%s)

log "configuring"
ssh-keygen -q -t ed25519 -N "" -C pbr-lab -f "$WORK/id_ed25519"
ssh-keygen -q -t ed25519 -N "" -C pbr-lab-host -f "$WORK/host_ed25519"

in_root() { chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }

echo lab >"$ROOT/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 lab storage pi\n10.99.0.1 storage-lan\n10.99.0.2 pi-lan\n' >"$ROOT/etc/hosts"
echo '/dev/vda / ext4 rw,errors=remount-ro 0 1' >"$ROOT/etc/fstab"

# login user: /bin/sh (as on a Pi), passwordless sudo; root by key too
in_root useradd -m -s /bin/sh "$USER_NAME"
in_root usermod -p '*' "$USER_NAME"
echo "$USER_NAME ALL=(ALL) NOPASSWD: ALL" >"$ROOT/etc/sudoers.d/$USER_NAME"
chmod 0440 "$ROOT/etc/sudoers.d/$USER_NAME"
for home in "/root" "/home/$USER_NAME"; do
  install -d -m 0700 "$ROOT$home/.ssh"
  install -m 0600 "$WORK/id_ed25519.pub" "$ROOT$home/.ssh/authorized_keys"
done
in_root chown -R "$USER_NAME:$USER_NAME" "/home/$USER_NAME/.ssh"

# one known host key for every VM of the lab
rm -f "$ROOT"/etc/ssh/ssh_host_*
install -m 0600 "$WORK/host_ed25519" "$ROOT/etc/ssh/ssh_host_ed25519_key"
install -m 0644 "$WORK/host_ed25519.pub" "$ROOT/etc/ssh/ssh_host_ed25519_key.pub"
cat >"$ROOT/etc/ssh/sshd_config.d/lab.conf" <<'CONF'
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
MaxSessions 20
MaxStartups 100
CONF

# networking: DHCP on the user-mode NIC; the lab LAN NIC gets its static address from the kernel
# command line (pbr.lan=ADDR/PREFIX pbr.lanmac=MAC), written to /run before networkd starts
cat >"$ROOT/etc/systemd/network/50-dhcp.network" <<'CONF'
[Match]
Name=en* eth*

[Network]
DHCP=ipv4
LinkLocalAddressing=no
IPv6AcceptRA=no
CONF
cat >"$ROOT/usr/local/sbin/pbr-lab-net" <<'CONF'
#!/bin/sh
# Write the lab LAN's .network from pbr.lan= and pbr.lanmac= on the kernel command line.
set -eu
lan="" mac=""
for w in $(cat /proc/cmdline); do
  case "$w" in
    pbr.lan=*) lan="${w#pbr.lan=}" ;;
    pbr.lanmac=*) mac="${w#pbr.lanmac=}" ;;
  esac
done
[ -n "$lan" ] && [ -n "$mac" ] || exit 0
mkdir -p /run/systemd/network
printf '[Match]\nMACAddress=%s\n\n[Network]\nAddress=%s\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n' \
  "$mac" "$lan" >/run/systemd/network/10-lab-lan.network
CONF
chmod 0755 "$ROOT/usr/local/sbin/pbr-lab-net"
cat >"$ROOT/etc/systemd/system/pbr-lab-net.service" <<'CONF'
[Unit]
Description=Lab LAN address from the kernel command line
DefaultDependencies=no
Before=systemd-networkd.service
After=local-fs.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/pbr-lab-net

[Install]
WantedBy=sysinit.target
CONF
mkdir -p "$ROOT/etc/systemd/system/systemd-networkd-wait-online.service.d"
cat >"$ROOT/etc/systemd/system/systemd-networkd-wait-online.service.d/lab.conf" <<'CONF'
[Service]
ExecStart=
ExecStart=/usr/lib/systemd/systemd-networkd-wait-online --any --timeout=15
CONF
echo 'nameserver 10.0.2.3' >"$ROOT/etc/resolv.conf"

in_root systemctl enable ssh systemd-networkd pbr-lab-net.service >/dev/null 2>&1
# no timers or getty races on the serial console slowing a TCG boot
in_root systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer \
  man-db.timer dpkg-db-backup.timer >/dev/null 2>&1 || true

# Debian starts wpa_supplicant's D-Bus service (a supplicant with no interface) and hostapd's;
# Arch Linux ARM starts neither
in_root systemctl disable wpa_supplicant.service hostapd.service >/dev/null 2>&1 || true

# ping as the login user, as on a stock Debian
echo 'net.ipv4.ping_group_range = 0 2147483647' >"$ROOT/etc/sysctl.d/50-lab-ping.conf"

# a small initramfs (virtio disk + ext4 only): unpacking a 40 MB one costs seconds under TCG
printf 'MODULES=list\nCOMPRESS=zstd\n' >"$ROOT/etc/initramfs-tools/conf.d/lab.conf"
printf 'virtio_pci\nvirtio_blk\next4\n' >>"$ROOT/etc/initramfs-tools/modules"
mount -t proc proc "$ROOT/proc"
in_root update-initramfs -u -k all >"$WORK/initramfs.log" 2>&1 || { umount "$ROOT/proc"; cat "$WORK/initramfs.log" >&2; die "update-initramfs failed"; }
umount "$ROOT/proc"

# mkinitcpio v41 from its source, as Arch Linux ARM installs it, plus the Debian shims it needs:
# Arch's /usr/sbin is /usr/bin (mkinitcpio runs with PATH=/usr/bin:/bin), its libkmod sits in
# /usr/lib, and its `base` hook takes busybox from /usr/lib/initcpio/busybox.
log "mkinitcpio v41 from $VENDOR"
mkdir -p "$ROOT/usr/src"
tar -xzf "$VENDOR/mkinitcpio-41.tar.gz" -C "$ROOT/usr/src"
tar -xzf "$VENDOR/bcache-tools-initcpio.tar.gz" -C "$ROOT/usr/src"
in_root sh -c 'cd /usr/src/mkinitcpio-41 && PATH="$PATH:/usr/lib/systemd" meson setup build \
    -Ddocs=false -Dalpm=false -Dkernel_install=false -Dsystemd=enabled --prefix=/usr --libdir=lib \
    --sysconfdir=/etc && meson install -C build' >"$WORK/mkinitcpio.log" 2>&1 ||
  { tail -n 30 "$WORK/mkinitcpio.log" >&2; die "building mkinitcpio failed"; }
install -m 0644 "$ROOT/usr/src/bcache-tools-initcpio/initcpio/install" "$ROOT/usr/lib/initcpio/install/bcache"
rm -rf "$ROOT/usr/src/mkinitcpio-41" "$ROOT/usr/src/bcache-tools-initcpio"
install -m 0755 "$ROOT/usr/bin/busybox" "$ROOT/usr/lib/initcpio/busybox"
# (hard links to the real files: in an image /usr/sbin is a link to bin, so a symlink
# bin/x -> ../sbin/x would point at itself)
for f in "$ROOT"/usr/sbin/*; do
  n="${f##*/}"
  [ -e "$ROOT/usr/bin/$n" ] || [ -L "$ROOT/usr/bin/$n" ] && continue
  real="$(in_root readlink -f "/usr/sbin/$n")"
  if [ -f "$ROOT$real" ]; then ln "$ROOT$real" "$ROOT/usr/bin/$n"; fi
done
ln -sf x86_64-linux-gnu/libkmod.so.2 "$ROOT/usr/lib/libkmod.so.2"
# the udev hook takes /etc/udev/hwdb.bin too; the systemd hook takes systemd 258's validatefs,
# which trixie's systemd 257 does not have yet (a no-op stands in)
in_root systemd-hwdb update
[ -e "$ROOT/usr/lib/systemd/systemd-validatefs" ] ||
  install -m 0755 /dev/stdin "$ROOT/usr/lib/systemd/systemd-validatefs" <<<$'#!/bin/sh\nexit 0'
rm -f "$ROOT"/etc/mkinitcpio.d/*.preset
mkdir -p "$ROOT/etc/mkinitcpio.d"
cat >"$ROOT/etc/mkinitcpio.d/linux.preset" <<'CONF'
# The pi's kernel and initramfs live on its SD card's boot partition, mounted at /boot.
PRESETS=('default')
ALL_kver='/boot/vmlinuz-linux'
default_image='/boot/initramfs-linux.img'
CONF
# the pi's SD card: its first partition (label PIBOOT) is /boot, as on a Pi
echo 'LABEL=PIBOOT /boot vfat defaults,nofail,x-systemd.device-timeout=120s 0 0' >>"$ROOT/etc/fstab"

in_root apt-get clean
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/*

KVER="$(basename "$(ls -d "$ROOT"/lib/modules/* | sort -V | tail -n1)")"
cp "$ROOT/boot/vmlinuz-$KVER" "$WORK/vmlinuz"
cp "$ROOT/boot/initrd.img-$KVER" "$WORK/initrd.img"
chmod 0644 "$WORK/vmlinuz" "$WORK/initrd.img"

# The SD card: MBR, p1 FAT32 "PIBOOT" (256 MiB: the kernel as Arch names it, cmdline.txt), p2 the
# spare space. lab.sh copies it for the pi; its "firmware" boots from p1 after the first boot.
log "sd.img"
truncate -s 1G "$WORK/sd.img"
printf 'label: dos\nstart=2048, size=524288, type=c\nstart=526336, type=83\n' | sfdisk -q "$WORK/sd.img"
truncate -s 256M "$WORK/p1.img"
mkfs.vfat -F 32 -n PIBOOT "$WORK/p1.img" >/dev/null
echo 'console=ttyS0 root=/dev/vda rw panic=0 mitigations=off' >"$WORK/cmdline.txt"
MTOOLS_SKIP_CHECK=1 mcopy -i "$WORK/p1.img" "$ROOT/boot/vmlinuz-$KVER" ::vmlinuz-linux
MTOOLS_SKIP_CHECK=1 mcopy -i "$WORK/p1.img" "$WORK/cmdline.txt" ::cmdline.txt
dd if="$WORK/p1.img" of="$WORK/sd.img" bs=1M seek=1 conv=notrunc,sparse status=none
rm -f "$WORK/p1.img"
rm -f "$WORK/cmdline.txt"

log "mkfs.ext4 -d root.img $SIZE"
mkfs.ext4 -q -F -L labroot -d "$ROOT" "$WORK/root.img" "$SIZE"
rm -rf "$ROOT"
T2=$(date +%s)

printf 'key=%s\nsuite=%s\nkernel=%s\nuser=%s\ndebootstrap_s=%s\ntotal_s=%s\n' \
  "$KEY" "$SUITE" "$KVER" "$USER_NAME" "$((T1 - T0))" "$((T2 - T0))" >"$WORK/STAMP.tmp"
rm -f "$WORK/debootstrap.log" "$WORK/initramfs.log" "$WORK/mkinitcpio.log"
trap - EXIT
mv "$WORK/STAMP.tmp" "$WORK/STAMP.pending"
rm -rf "$OUT"
mv "$WORK" "$OUT"
mv "$OUT/STAMP.pending" "$OUT/STAMP"
# older images of other recipes
for d in "$CACHE"/*/; do
  d="${d%/}"
  [ "$d" = "$OUT" ] || [ ! -f "$d/STAMP" ] || rm -rf "$d"
done
# packages no longer in the archive's current versions pile up: keep the cache under ~1 GB
if [ "$(du -sm "$CACHE/debs" | cut -f1)" -gt 1024 ]; then rm -rf "$CACHE/debs"; fi
log "built $OUT in $((T2 - T0)) s (debootstrap $((T1 - T0)) s, kernel $KVER)"
echo "$OUT" >&3
