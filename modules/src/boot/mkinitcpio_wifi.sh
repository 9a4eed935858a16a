#!/bin/sh
# Managed by pbr (mkinitcpio_hook @NAME@): brings up Wi-Fi in the initramfs, before the root is
# reached over it. Run by the busybox init's run_hook, or by pbr-@NAME@.service under systemd.
say() { echo "pbr-@NAME@: $*" >&2; }

@NETLIB@
_if=@IFACE@
_ctrl=@CTRL@
_pid=@PIDFILE@

wpa_state() { wpa_cli -p "$_ctrl" -i "$_if" status 2>/dev/null | sed -n 's/^wpa_state=//p'; }

# 1. the interface: its driver probes (and loads its firmware) asynchronously
say "waiting up to @WAIT@s for $_if"
wait_iface "$_if" @WAIT@ || {
    say "no interface $_if after @WAIT@s: is its driver (and firmware) in the image? interfaces: $(ls /sys/class/net | tr '\n' ' ')"
    exit 1
}
ip link set "$_if" up
# 2. power save off: a dozing radio drops the frames of a long-lived TCP session
@POWERSAVE@
# 3. the supplicant. With the busybox init it is named @wpa_supplicant, so that systemd's final
#    kill at shutdown spares it (the root depends on it), and the real root's
#    pbr-wpa-$_if.service adopts it; with the systemd init that unit runs it from here on.
if [ -n "$(wpa_state)" ]; then
    say "a supplicant already runs on $_if"
else
    @START@
fi
# 4. associated and keyed: wpa_state=COMPLETED
#    A wrong passphrase shows as handshakes that never complete: the supplicant falls back to
#    scanning between tries, so any handshake seen while waiting names it.
_n=0
_state=""
_keyed=""
while :; do
    _state=$(wpa_state)
    [ "$_state" = COMPLETED ] && break
    case "$_state" in 4WAY_HANDSHAKE | GROUP_HANDSHAKE) _keyed=1 ;; esac
    if [ "$_n" -ge @ASSOC@ ]; then
        if [ -n "$_keyed" ]; then
            _state="$_state, handshakes seen"
            _why="the 4-way handshake does not complete: is the passphrase right?"
        else
            case "$_state" in
            SCANNING | DISCONNECTED | INACTIVE | "")
                _why="the network is not found or refuses the association: is the SSID in range and right?" ;;
            *) _why="" ;;
            esac
        fi
        say "$_if is not associated after @ASSOC@s (wpa_state=${_state:-none}): $_why"
        exit 1
    fi
    [ $((_n % 10)) -eq 9 ] && say "$_if: wpa_state=${_state:-none}, waiting"
    sleep 1
    _n=$((_n + 1))
done
say "$_if is associated (after ${_n}s)"
# 5. the MTU
@MTU@
# 6. the address
net_up "$_if" || exit 1
exit 0
