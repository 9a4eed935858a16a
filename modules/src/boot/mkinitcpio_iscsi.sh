#!/bin/sh
# Managed by pbr (mkinitcpio_hook @NAME@): logs in to the iSCSI root disk from the initramfs.
# Run by the busybox init's run_hook, or by pbr-@NAME@.service under the systemd init.
say() { echo "pbr-@NAME@: $*" >&2; }

@NETLIB@
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
