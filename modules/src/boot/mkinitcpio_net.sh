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

# Configure the network from ip= on the kernel command line (dhcp, or the kernel's
# CLIENT::GATEWAY:NETMASK:HOSTNAME:DEVICE:off). With an interface argument, only that interface
# is configured, by DHCP when ip= names no address; an ip= for another device is left alone.
net_up() {
    _only="${1:-}"
    _spec=""
    for _w in $(cat /proc/cmdline); do
        case "$_w" in ip=*) _spec="${_w#ip=}" ;; esac
    done
    if [ -z "$_spec" ]; then
        [ -n "$_only" ] || { say "no ip= on the kernel command line: the network is left as it is"; return 0; }
        _spec=dhcp
    fi
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
    if [ -n "$_only" ]; then
        if [ -n "$_dev" ] && [ "$_dev" != "$_only" ]; then
            say "ip= is for $_dev: $_only is left to it"
            return 0
        fi
        _dev="$_only"
    fi
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

