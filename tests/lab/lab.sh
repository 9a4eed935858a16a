#!/usr/bin/env bash
# Run the lab: two Debian 13 VMs under qemu, "storage" and "pi", on a private LAN.
#
#   tests/lab/lab.sh up DIR [--owner PID]   build the image if needed, boot both VMs, wait for ssh
#   tests/lab/lab.sh ssh DIR VM [CMD...]    ssh into a VM as the login user (sudo works without password)
#   tests/lab/lab.sh down DIR               power both VMs off
#
# `up` writes into DIR: lab.env (ports, key, user), known_hosts, ssh_config (`ssh -F DIR/ssh_config
# storage`), inventory.ini (for `pbr run -i`), and per VM a directory with its disks, its serial
# console log (serial.log) and its qemu pid. With --owner PID, each VM is powered off as soon as
# PID exits (tests pass their own pid, so a crashed test leaves no VM behind).
#
# storage: /dev/vda root, /dev/vdb "hdd" (12G sparse), /dev/vdc "ssd" (2G);  LAN 10.99.0.1/24
# pi:      /dev/vda root, /dev/vdb "sd" (1G);                                LAN 10.99.0.2/24
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

boot_vm() { # DIR VM IMG MCAST_GROUP:PORT
  local dir="$1" vm="$2" img="$3" mport="$4" i port accel cpu
  i="$(vm_index "$vm")"
  mkdir -p "$dir/$vm"
  local disks=()
  if [ "$vm" = storage ]; then
    truncate -s 12G "$dir/$vm/hdd.raw"
    truncate -s 2G "$dir/$vm/ssd.raw"
    disks+=(-drive "file=$dir/$vm/hdd.raw,format=raw,if=none,id=hdd,cache=unsafe,discard=unmap"
      -device virtio-blk-pci,drive=hdd,serial=hdd
      -drive "file=$dir/$vm/ssd.raw,format=raw,if=none,id=ssd,cache=unsafe,discard=unmap"
      -device virtio-blk-pci,drive=ssd,serial=ssd)
  else
    truncate -s 1G "$dir/$vm/sd.raw"
    disks+=(-drive "file=$dir/$vm/sd.raw,format=raw,if=none,id=sd,cache=unsafe,discard=unmap"
      -device virtio-blk-pci,drive=sd,serial=sd)
  fi
  accel="${PBR_LAB_ACCEL:-tcg}"
  if [ "$accel" = kvm ]; then cpu=host; else cpu=max; fi
  for _ in 1 2 3 4 5; do
    port="$(free_port)"
    rm -f "$dir/$vm/qemu.pid"
    if qemu-system-x86_64 -name "pbr-lab-$vm" -accel "$accel" -cpu "$cpu" \
      -m "${PBR_LAB_MEM:-2048}" -smp "${PBR_LAB_SMP:-2}" \
      -nodefaults -display none -daemonize -pidfile "$dir/$vm/qemu.pid" -no-reboot \
      -serial "file:$dir/$vm/serial.log" -monitor none \
      -kernel "$img/vmlinuz" -initrd "$img/initrd.img" \
      -append "console=ttyS0 root=/dev/vda rw quiet panic=5 mitigations=off systemd.hostname=$vm pbr.lan=10.99.0.$i/24 pbr.lanmac=52:54:00:99:00:0$i" \
      -drive "file=$img/root.img,format=raw,if=none,id=root,snapshot=on,cache=unsafe" \
      -device virtio-blk-pci,drive=root,serial=root \
      "${disks[@]}" \
      -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$port-:22" \
      -device "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:0$i" \
      -netdev "socket,id=n1,mcast=$mport,localaddr=127.0.0.1" \
      -device "virtio-net-pci,netdev=n1,mac=52:54:00:99:00:0$i" \
      2>"$dir/$vm/qemu.err"; then
      echo "$port" >"$dir/$vm/port"
      return 0
    fi
    grep -qi "could not set up host forwarding\|address already in use" "$dir/$vm/qemu.err" ||
      die "qemu for $vm failed: $(cat "$dir/$vm/qemu.err")"
  done
  die "qemu for $vm: no free port"
}

wait_ssh() { # DIR VM DEADLINE
  local dir="$1" vm="$2" deadline="$3" port pid
  port="$(cat "$dir/$vm/port")"
  pid="$(cat "$dir/$vm/qemu.pid")"
  # shellcheck disable=SC2046
  until ssh $(ssh_opts "$dir") -p "$port" "$USER_NAME@127.0.0.1" true 2>/dev/null; do
    is_qemu "$pid" || { log "$vm: qemu exited; serial log tail:"; tail -n 30 "$dir/$vm/serial.log" >&2; return 1; }
    if [ "$(date +%s)" -ge "$deadline" ]; then
      log "$vm: no ssh on port $port in time; serial log tail:"
      tail -n 30 "$dir/$vm/serial.log" >&2
      return 1
    fi
    sleep 2
  done
}

cmd_up() {
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
  for vm in "${VMS[@]}"; do boot_vm "$dir" "$vm" "$img" "$mgroup:$mport"; done
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
  if [ "$ok" != 0 ]; then cmd_down "$dir"; die "the lab did not come up"; fi
  echo "LAB_BUILD_S=$((t1 - t0))" >>"$dir/lab.env"
  echo "LAB_BOOT_S=$((t2 - t1))" >>"$dir/lab.env"
  log "up: image $((t1 - t0)) s, boot $((t2 - t1)) s (accel ${PBR_LAB_ACCEL:-tcg}); ssh -F $dir/ssh_config storage|pi"
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
  ssh) [ $# -ge 3 ] || die "usage: lab.sh ssh DIR VM [CMD...]"; d="$2"; v="$3"; shift 3; cmd_ssh "$d" "$v" "$@" ;;
  *) die "usage: lab.sh up|down|ssh DIR ..." ;;
esac
