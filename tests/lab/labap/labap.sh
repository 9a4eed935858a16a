#!/bin/sh
# The VM lab's access point (see install/labap): mac80211_hwsim's second radio and the LAN NIC
# in a network namespace `ap`, bridged, with hostapd (WPA2) and udhcpd. Run in the initramfs by
# the busybox run_hook or by labap.service; its processes outlive the switch to the real root.
ip=/usr/lib/labap/ip
iw=/usr/lib/labap/iw
say() { echo "lab: $*" >&2; }
modprobe mac80211_hwsim radios=2 || { say "mac80211_hwsim did not load"; exit 1; }
n=0
while [ ! -e /sys/class/net/wlan1 ] && [ "$n" -lt 20 ]; do sleep 1; n=$((n + 1)); done
# the LAN NIC (under the systemd init, udev may still be loading its driver)
lan=""
n=0
while :; do
    for d in /sys/class/net/*; do
        [ "$(cat "$d/address")" = 52:54:00:99:00:02 ] && lan="${d##*/}"
    done
    [ -n "$lan" ] && break
    [ "$n" -ge 20 ] && { say "no LAN NIC (52:54:00:99:00:02) after 20s"; exit 1; }
    sleep 1
    n=$((n + 1))
done
$ip netns add ap
$iw phy "$(cat /sys/class/net/wlan1/phy80211/name)" set netns name ap
$ip link set "$lan" netns ap
$ip netns exec ap /bin/sh -c "
    $ip link set lo up
    $ip link add br0 type bridge
    $ip link set $lan master br0
    # qemu's multicast LAN hands every frame back to its sender: the bridge must not learn
    # the pi's (or its own) addresses on the LAN port from those echoes
    $ip link set dev $lan type bridge_slave learning off
    $ip link set $lan up
    $ip link set br0 up
    $ip addr add 10.99.0.3/24 dev br0
    PATH=/usr/lib/labap:\$PATH
    export PATH
    @hostapd -B -f /run/labap-hostapd.log -P /run/labap-hostapd.pid /usr/lib/labap/hostapd.conf
    udhcpd /usr/lib/labap/udhcpd.conf
" || { say "the access point did not start"; exit 1; }
n=0
until grep -q AP-ENABLED /run/labap-hostapd.log 2>/dev/null; do
    if [ "$n" -ge 20 ]; then
        sed 's/^/lab: hostapd: /' /run/labap-hostapd.log >&2
        say "the access point is not enabled after 20s"
        exit 1
    fi
    sleep 1
    n=$((n + 1))
done
say "access point pbr-lab up (LAN NIC $lan bridged in namespace ap)"
# A path-MTU black hole on the way to the portal (the lab_wifi test's fault case), when the test
# asked for one: both bridge ports at a lower MTU. A bridge drops a bigger frame silently (no ICMP
# "fragmentation needed", as when a router's ICMP is filtered).
if [ -r /usr/lib/labap/mtu ]; then
    m=$(cat /usr/lib/labap/mtu)
    $ip netns exec ap $ip link set "$lan" mtu "$m" && $ip netns exec ap $ip link set wlan1 mtu "$m" ||
        { say "could not set the black hole's MTU $m"; exit 1; }
    say "path MTU $m on the access point's bridge (a black hole: no ICMP)"
fi
