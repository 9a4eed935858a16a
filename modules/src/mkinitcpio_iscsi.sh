#!/bin/sh
# Managed by pbr (mkinitcpio_hook @NAME@): logs in to the iSCSI root disk from the initramfs.
# Run by the busybox init's run_hook, or by pbr-@NAME@.service under the systemd init.
say() { echo "pbr-@NAME@: $*" >&2; }

# udhcpc calls this script back with the lease in its environment
case "${1:-}" in
deconfig) ip -4 addr flush dev "$interface"; ip link set "$interface" up; exit 0 ;;
bound | renew)
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    [ -z "${router:-}" ] || ip route replace default via "${router%% *}" dev "$interface"
    say "$interface has $ip/${mask:-24} from DHCP"
    exit 0 ;;
leasefail | nak) exit 0 ;;
esac

prefix_of() { # 255.255.255.0 -> 24
    _p=0
    for _o in $(echo "$1" | tr . ' '); do
        case "$_o" in 255) _p=$((_p + 8)) ;; 254) _p=$((_p + 7)) ;; 252) _p=$((_p + 6)) ;; 248) _p=$((_p + 5)) ;;
        240) _p=$((_p + 4)) ;; 224) _p=$((_p + 3)) ;; 192) _p=$((_p + 2)) ;; 128) _p=$((_p + 1)) ;; esac
    done
    echo "$_p"
}

has_addr() { ip -4 -o addr show dev "$1" 2>/dev/null | grep -q inet; }

wait_iface() { # NAME SECONDS
    _n=0
    while [ ! -e "/sys/class/net/$1" ]; do
        [ "$_n" -ge "$2" ] && return 1
        sleep 1; _n=$((_n + 1))
    done
}

net_up() {
    _spec=""
    for _w in $(cat /proc/cmdline); do
        case "$_w" in ip=*) _spec="${_w#ip=}" ;; esac
    done
    [ -n "$_spec" ] || { say "no ip= on the kernel command line: the network is left as it is"; return 0; }
    case "$_spec" in
    dhcp | on | any | both)
        _dev="" ;;
    *)
        _client=$(echo "$_spec" | cut -d: -f1)
        _gw=$(echo "$_spec" | cut -d: -f3)
        _mask=$(echo "$_spec" | cut -d: -f4)
        _dev=$(echo "$_spec" | cut -d: -f6)
        _auto=$(echo "$_spec" | cut -d: -f7) ;;
    esac
    if [ -n "$_dev" ]; then
        wait_iface "$_dev" 20 || { say "no interface $_dev"; return 1; }
        _devs="$_dev"
    else
        sleep 1
        _devs=$(ls /sys/class/net | grep -v '^lo$')
    fi
    for _d in $_devs; do
        if has_addr "$_d"; then say "$_d is configured already"; return 0; fi
    done
    for _d in $_devs; do
        ip link set "$_d" up
        if [ -n "${_client:-}" ] && [ "${_auto:-off}" = off -o "${_auto:-off}" = none ]; then
            ip addr add "$_client/$(prefix_of "${_mask:-255.255.255.0}")" dev "$_d" || return 1
            [ -z "$_gw" ] || ip route replace default via "$_gw" dev "$_d"
            say "$_d has $_client"
            return 0
        fi
        if udhcpc -i "$_d" -n -q -t 10 -T 2 -s "$0" >/dev/null 2>&1; then return 0; fi
    done
    say "no address for ${_devs:-any interface}"
    return 1
}

modprobe -q iscsi_tcp
@NET@
say "iSCSI login to @TARGET_SHOWN@ at @PORTAL_SHOWN@:@PORT@"
_try=0
until iscsistart -i @INITIATOR@ -t @TARGET@ -g @TPGT@ -a @PORTAL@ -p @PORT@@AUTH@@SETTINGS@; do
    _try=$((_try + 1))
    if [ "$_try" -ge 5 ]; then say "iscsistart failed for @TARGET_SHOWN@"; exit 1; fi
    sleep 2
done
_n=0
while [ "$_n" -lt @WAIT@ ]; do
    for _d in /sys/class/iscsi_session/session*/device/target*/*:*:*:@LUN@/block/*; do
        if [ -e "$_d" ]; then
            command -v udevadm >/dev/null && udevadm settle --timeout=30
            exit 0
        fi
    done
    sleep 1
    _n=$((_n + 1))
done
say "LUN @LUN@ of @TARGET_SHOWN@ did not appear within @WAIT@s"
exit 1
