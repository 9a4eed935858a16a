#!/usr/bin/env bash
# Run the lab: two Debian 13 VMs under qemu, "storage" and "pi", on a private LAN.
#
#   tests/lab/lab.sh up DIR [--owner PID]   build the image if needed, boot both VMs, wait for ssh
#   tests/lab/lab.sh ssh DIR VM [CMD...]    ssh into a VM as the login user (sudo works without password)
#   tests/lab/lab.sh wait DIR VM [SECONDS]  wait until VM's sshd answers again (after a reboot)
#   tests/lab/lab.sh down DIR               power both VMs off
#
# The storage VM reboots in place. The pi boots first from the lab's image (root disk /dev/vda);
# every later boot (after `reboot` in the guest) is from its SD card, as a Pi's firmware does:
# the kernel, initramfs-linux.img and cmdline.txt of its FAT boot partition, and no root disk.
#
# `up` writes into DIR: lab.env (ports, key, user), known_hosts, ssh_config (`ssh -F DIR/ssh_config
# storage`), inventory.ini (for `pbr run -i`), and per VM a directory with its disks, its serial
# console log (serial.log) and its qemu pid. With --owner PID, each VM is powered off as soon as
# PID exits (tests pass their own pid, so a crashed test leaves no VM behind).
#
# storage: /dev/vda root, /dev/vdb "hdd" (12G sparse), /dev/vdc "ssd" (2G);  LAN 10.99.0.1/24
# pi:      /dev/vda root, /dev/vdb "sd" (1G: p1 FAT /boot, p2 spare);      LAN 10.99.0.2/24
#
# Environment: PBR_LAB_ACCEL (tcg, the default, or kvm), PBR_LAB_MEM (MiB, 2048), PBR_LAB_SMP (2),
# PBR_LAB_BOOT_TIMEOUT (seconds, 420).
set -euo pipefail

LAB="$(cd "$(dirname "$0")" && pwd)"
USER_NAME=pbr
VMS=(storage pi)

log() { echo "[lab] $*" >&2; }
die() { echo "[lab] error: $*" >&2; exit 1; }

ssh_opts() { # DIR
  echo "-F /dev/null -o BatchMode=yes -o IdentitiesOnly=yes -o UserKnownHostsFile=$1/known_hosts \
-o StrictHostKeyChecking=yes -o LogLevel=ERROR -o ConnectTimeout=10 -i $1/id_ed25519"
}

vm_index() { case "$1" in storage) echo 1 ;; pi) echo 2 ;; *) die "unknown VM '$1' (storage, pi)" ;; esac; }

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
  local p
  for _ in $(seq 50); do
    p=$((20000 + RANDOM % 40000))
    if port_free "$p"; then echo "$p"; return; fi
  done
  die "no free port"
}

is_qemu() { [ -n "${1:-}" ] && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -q "qemu-system"; }

cmd_down() {
  local dir="$1" vm pid
  : >"$dir/down"
  pid="$(cat "$dir/firmware.pid" 2>/dev/null || true)"
  [ -z "$pid" ] || kill "$pid" 2>/dev/null || true
  for vm in "${VMS[@]}"; do
    pid="$(cat "$dir/$vm/qemu.pid" 2>/dev/null || true)"
    if is_qemu "$pid"; then kill "$pid" 2>/dev/null || true; fi
  done
  for vm in "${VMS[@]}"; do
    pid="$(cat "$dir/$vm/qemu.pid" 2>/dev/null || true)"
    for _ in $(seq 50); do is_qemu "$pid" || break; sleep 0.1; done
    if is_qemu "$pid"; then kill -9 "$pid" 2>/dev/null || true; fi
    rm -f "$dir/$vm"/*.raw
  done
}

# The pi's "firmware": what a Raspberry Pi's boot loader reads from the SD card's first (FAT)
# partition: the kernel, the initramfs and cmdline.txt. Copied out of DIR/pi/sd.raw into DIR/pi/fw/.
read_sd_boot() { # DIR
  local dir="$1" fw="$1/pi/fw" f
  rm -rf "$fw"; mkdir -p "$fw"
  for f in vmlinuz-linux initramfs-linux.img cmdline.txt; do
    MTOOLS_SKIP_CHECK=1 mcopy -n -i "$dir/pi/sd.raw@@1M" "::$f" "$fw/$f" 2>>"$dir/pi/qemu.err" ||
      { log "pi: no $f on the SD card's boot partition"; return 1; }
  done
}

# start qemu for VM; MODE is `image` (the lab's kernel, initrd and root disk) or `sd` (pi only:
# the kernel, initramfs and cmdline.txt of its SD card, and no root disk)
start_qemu() { # DIR VM IMG MCAST_GROUP:PORT PORT MODE
  local dir="$1" vm="$2" img="$3" mport="$4" port="$5" mode="$6" i accel cpu
  i="$(vm_index "$vm")"
  local disks=() boot=() reboot=()
  if [ "$vm" = storage ]; then
    disks+=(-drive "file=$dir/$vm/hdd.raw,format=raw,if=none,id=hdd,cache=unsafe,discard=unmap"
      -device virtio-blk-pci,drive=hdd,serial=hdd
      -drive "file=$dir/$vm/ssd.raw,format=raw,if=none,id=ssd,cache=unsafe,discard=unmap"
      -device virtio-blk-pci,drive=ssd,serial=ssd)
  else
    disks+=(-drive "file=$dir/$vm/sd.raw,format=raw,if=none,id=sd,cache=unsafe,discard=unmap"
      -device virtio-blk-pci,drive=sd,serial=sd)
    # a reboot ends this qemu: the firmware loop starts the next boot from the SD card
    reboot=(-no-reboot)
  fi
  if [ "$mode" = sd ]; then
    local fw="$dir/pi/fw"
    boot=(-kernel "$fw/vmlinuz-linux" -initrd "$fw/initramfs-linux.img" -append "$(tr '\n' ' ' <"$fw/cmdline.txt")")
  else
    boot=(-kernel "$img/vmlinuz" -initrd "$img/initrd.img"
      -append "console=ttyS0 root=/dev/vda rw quiet panic=5 mitigations=off systemd.hostname=$vm pbr.lan=10.99.0.$i/24 pbr.lanmac=52:54:00:99:00:0$i"
      -drive "file=$img/root.img,format=raw,if=none,id=root,snapshot=on,cache=unsafe"
      -device virtio-blk-pci,drive=root,serial=root)
  fi
  accel="${PBR_LAB_ACCEL:-tcg}"
  if [ "$accel" = kvm ]; then cpu=host; else cpu=max; fi
  rm -f "$dir/$vm/qemu.pid"
  qemu-system-x86_64 -name "pbr-lab-$vm" -accel "$accel" -cpu "$cpu" \
    -m "${PBR_LAB_MEM:-2048}" -smp "${PBR_LAB_SMP:-2}" \
    -nodefaults -display none -daemonize -pidfile "$dir/$vm/qemu.pid" "${reboot[@]}" \
    -chardev "socket,id=s0,path=$dir/$vm/console.sock,server=on,wait=off,logfile=$dir/$vm/serial.log,logappend=on" \
    -serial chardev:s0 -monitor none \
    "${boot[@]}" "${disks[@]}" \
    -netdev "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:$port-:22" \
    -device "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:0$i" \
    -netdev "socket,id=n1,mcast=$mport,localaddr=127.0.0.1" \
    -device "virtio-net-pci,netdev=n1,mac=52:54:00:99:00:0$i" \
    2>"$dir/$vm/qemu.err"
}

boot_vm() { # DIR VM IMG MCAST_GROUP:PORT
  local dir="$1" vm="$2" img="$3" mport="$4" port
  mkdir -p "$dir/$vm"
  if [ "$vm" = storage ]; then
    truncate -s 12G "$dir/$vm/hdd.raw"
    truncate -s 2G "$dir/$vm/ssd.raw"
  else
    cp --sparse=always "$img/sd.img" "$dir/$vm/sd.raw"
  fi
  echo "$mport" >"$dir/mcast"
  for _ in 1 2 3 4 5; do
    port="$(free_port)"
    if start_qemu "$dir" "$vm" "$img" "$mport" "$port" image; then
      echo "$port" >"$dir/$vm/port"
      return 0
    fi
    grep -qi "could not set up host forwarding\|address already in use" "$dir/$vm/qemu.err" ||
      die "qemu for $vm failed: $(cat "$dir/$vm/qemu.err")"
  done
  die "qemu for $vm: no free port"
}

# Runs in the background for the lab's life: each time the pi's qemu ends (the guest rebooted or
# powered off) and the lab is not going down, boot it again from its SD card, as a Pi does.
# DIR/pi/boots logs every boot. At most PBR_LAB_PI_BOOTS (8) boots, so a boot loop ends.
cmd_firmware() { # DIR IMG
  local dir="$1" img="$2" pid n=1 port mport
  port="$(cat "$dir/pi/port")"; mport="$(cat "$dir/mcast")"
  echo "$(date +%s) image" >>"$dir/pi/boots"
  while :; do
    pid="$(cat "$dir/pi/qemu.pid" 2>/dev/null || true)"
    while is_qemu "$pid"; do sleep 0.5; done
    [ -e "$dir/down" ] && return 0
    n=$((n + 1))
    if [ "$n" -gt "${PBR_LAB_PI_BOOTS:-8}" ]; then log "pi: boot limit reached"; return 1; fi
    mv -f "$dir/pi/serial.log" "$dir/pi/serial.$((n - 1)).log" 2>/dev/null || true
    read_sd_boot "$dir" || { echo "$(date +%s) no-boot-files" >>"$dir/pi/boots"; return 1; }
    [ -e "$dir/down" ] && return 0
    local ok=1
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      if start_qemu "$dir" pi "$img" "$mport" "$port" sd; then ok=0; break; fi
      sleep 1 # the old qemu's forwarded port may take a moment to close
    done
    if [ "$ok" != 0 ]; then log "pi: qemu from the SD card failed: $(cat "$dir/pi/qemu.err")"; return 1; fi
    echo "$(date +%s) sd $(cat "$dir/pi/qemu.pid")" >>"$dir/pi/boots"
  done
}

wait_ssh() { # DIR VM DEADLINE
  local dir="$1" vm="$2" deadline="$3" port pid fail=""
  port="$(cat "$dir/$vm/port")"
  # shellcheck disable=SC2046
  until ssh $(ssh_opts "$dir") -p "$port" "$USER_NAME@127.0.0.1" true 2>/dev/null; do
    pid="$(cat "$dir/$vm/qemu.pid" 2>/dev/null || true)"
    if ! is_qemu "$pid"; then
      # the pi's firmware loop may be starting its next boot
      if [ "$vm" != pi ] || ! kill -0 "$(cat "$dir/firmware.pid" 2>/dev/null || echo 0)" 2>/dev/null; then
        fail="qemu exited"
      fi
    fi
    if grep -qa "Kernel panic\|Unable to find root device\|dropped into an emergency shell\|You are in emergency mode" "$dir/$vm/serial.log" 2>/dev/null; then
      fail="the boot failed"
    fi
    if grep -qa "$STALL" "$dir/$vm/serial.log" 2>/dev/null; then
      fail="the guest's timer stalled (seen under TCG now and then; a new boot does not)"
    fi
    [ "$(date +%s)" -lt "$deadline" ] || fail="no ssh on port $port in time"
    if [ -n "$fail" ]; then
      log "$vm: $fail; serial log tail:"
      tail -n 40 "$dir/$vm/serial.log" >&2
      return 1
    fi
    sleep 2
  done
}

# An RCU stall of a guest's timer early in its first boot: under TCG it now and then never ends
# (the VM then never answers). A fresh boot does not repeat it, so `up` boots the lab once more.
STALL="rcu_preempt kthread timer wakeup didn't happen"

cmd_up() {
  local dir="$1" owner="${2:-}" vm
  cmd_up_once "$dir" "$owner" && return 0
  for vm in "${VMS[@]}"; do
    grep -qa "$STALL" "$dir/$vm/serial.log" 2>/dev/null && break
    vm=""
  done
  [ -n "$vm" ] || die "the lab did not come up"
  log "$vm: its timer stalled at boot; booting the lab once more"
  for vm in "${VMS[@]}"; do
    [ ! -e "$dir/$vm/serial.log" ] || mv "$dir/$vm/serial.log" "$dir/$vm/serial.stalled.log"
  done
  cmd_up_once "$dir" "$owner" || die "the lab did not come up"
}

cmd_up_once() {
  local dir="$1" owner="${2:-}" img t0 t1 t2 vm mgroup mport
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  for bin in qemu-system-x86_64 ssh; do
    command -v "$bin" >/dev/null || [ "$bin" = qemu-system-x86_64 ] || die "$bin is missing"
  done
  t0=$(date +%s)
  img="$("$LAB/build-image.sh")"
  t1=$(date +%s)
  command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 is missing"
  install -m 0600 "$img/id_ed25519" "$dir/id_ed25519"
  # a group and port of its own: two labs on one machine never share a LAN
  mgroup="230.$((RANDOM % 250 + 1)).$((RANDOM % 250 + 1)).$((RANDOM % 250 + 1))"
  mport=$((20000 + RANDOM % 40000))
  rm -f "$dir/down" "$dir/pi/boots"
  for vm in "${VMS[@]}"; do boot_vm "$dir" "$vm" "$img" "$mgroup:$mport"; done
  setsid "$LAB/lab.sh" firmware "$dir" "$img" </dev/null >>"$dir/firmware.log" 2>&1 &
  echo $! >"$dir/firmware.pid"
  if [ -n "$owner" ]; then
    # power the VMs off when the owner exits
    setsid sh -c 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; exec "$2" down "$3"' \
      lab-watch "$owner" "$LAB/lab.sh" "$dir" </dev/null >/dev/null 2>&1 &
  fi
  : >"$dir/known_hosts"
  : >"$dir/ssh_config"
  local hostkey inv="[storage]
" pis="[pi]
"
  hostkey="$(cut -d' ' -f1,2 "$img/host_ed25519.pub")"
  {
    echo "LAB_DIR=$dir"
    echo "LAB_IMAGE=$img"
    echo "LAB_USER=$USER_NAME"
    echo "LAB_KEY=$dir/id_ed25519"
    echo "LAB_KNOWN_HOSTS=$dir/known_hosts"
    echo "LAB_ACCEL=${PBR_LAB_ACCEL:-tcg}"
  } >"$dir/lab.env"
  for vm in "${VMS[@]}"; do
    local port; port="$(cat "$dir/$vm/port")"
    echo "[127.0.0.1]:$port $hostkey" >>"$dir/known_hosts"
    printf 'Host %s\n  HostName 127.0.0.1\n  Port %s\n  User %s\n  IdentityFile %s\n  IdentitiesOnly yes\n  UserKnownHostsFile %s\n  StrictHostKeyChecking yes\n\n' \
      "$vm" "$port" "$USER_NAME" "$dir/id_ed25519" "$dir/known_hosts" >>"$dir/ssh_config"
    echo "LAB_PORT_${vm^^}=$port" >>"$dir/lab.env"
    echo "LAB_PID_${vm^^}=$(cat "$dir/$vm/qemu.pid")" >>"$dir/lab.env"
    local line="$vm ansible_host=127.0.0.1 ansible_port=$port ansible_user=$USER_NAME ansible_ssh_private_key_file=$dir/id_ed25519 lan_ip=10.99.0.$(vm_index "$vm")"
    if [ "$vm" = storage ]; then inv+="$line
"; else pis+="$line
"; fi
  done
  printf '%s\n%s\n[all:vars]\nansible_ssh_common_args=-o UserKnownHostsFile=%s -o IdentitiesOnly=yes\n' "$inv" "$pis" "$dir/known_hosts" >"$dir/inventory.ini"

  local deadline=$(( $(date +%s) + ${PBR_LAB_BOOT_TIMEOUT:-420} )) pids=() ok=0
  for vm in "${VMS[@]}"; do wait_ssh "$dir" "$vm" "$deadline" & pids+=($!); done
  for p in "${pids[@]}"; do wait "$p" || ok=1; done
  t2=$(date +%s)
  if [ "$ok" != 0 ]; then cmd_down "$dir"; return 1; fi
  echo "LAB_BUILD_S=$((t1 - t0))" >>"$dir/lab.env"
  echo "LAB_BOOT_S=$((t2 - t1))" >>"$dir/lab.env"
  log "up: image $((t1 - t0)) s, boot $((t2 - t1)) s (accel ${PBR_LAB_ACCEL:-tcg}); ssh -F $dir/ssh_config storage|pi"
}

cmd_wait() { # DIR VM [TIMEOUT]
  local dir="$1" vm="$2" t="${3:-${PBR_LAB_BOOT_TIMEOUT:-420}}" deadline
  deadline=$(( $(date +%s) + t ))
  wait_ssh "$dir" "$vm" "$deadline"
}

cmd_ssh() {
  local dir="$1" vm="$2"; shift 2
  local port; port="$(cat "$dir/$vm/port" 2>/dev/null)" || die "no VM '$vm' in $dir"
  # shellcheck disable=SC2046
  exec ssh $(ssh_opts "$dir") -p "$port" "$USER_NAME@127.0.0.1" "$@"
}

case "${1:-}" in
  up)
    [ $# -ge 2 ] || die "usage: lab.sh up DIR [--owner PID]"
    owner=""
    if [ "${3:-}" = --owner ]; then owner="${4:?--owner needs a pid}"; fi
    cmd_up "$2" "$owner" ;;
  down) [ $# -ge 2 ] || die "usage: lab.sh down DIR"; cmd_down "$2" ;;
  wait) [ $# -ge 3 ] || die "usage: lab.sh wait DIR VM [TIMEOUT]"; cmd_wait "$2" "$3" "${4:-}" ;;
  firmware) cmd_firmware "$2" "$3" ;;
  ssh) [ $# -ge 3 ] || die "usage: lab.sh ssh DIR VM [CMD...]"; d="$2"; v="$3"; shift 3; cmd_ssh "$d" "$v" "$@" ;;
  *) die "usage: lab.sh up|down|ssh DIR ..." ;;
esac
