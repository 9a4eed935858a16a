//! The storage planners as pure functions, fed with outputs captured on the VM lab
//! (`fixtures/storage/`): create, no-op, grow, change mode, detach, and refusals.

use pbr_modules::storage_util::{self as su, DeviceInfo, LvmReport};
use pbr_modules::{bcache, filesystem, iscsi, lvg, lvm_cache, lvol, targetcli, vdo};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

fn fixture(name: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/storage").join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn params<T: DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap()
}

fn converged() -> LvmReport {
    su::parse_lvm_report(&fixture("lvm_converged.txt")).unwrap()
}

fn empty() -> LvmReport {
    su::parse_lvm_report(&fixture("lvm_empty.txt")).unwrap()
}

/// A probed block device with the signatures of a wipefs fixture.
fn dev(path: &str, real: &str, size: u64, wipefs: &str) -> DeviceInfo {
    DeviceInfo {
        path: path.into(),
        real: real.into(),
        exists: true,
        kind: "block".into(),
        size,
        signatures: su::parse_wipefs_json(&fixture(wipefs)).unwrap(),
    }
}

fn summaries(steps: &[su::Step]) -> Vec<String> {
    steps.iter().map(|s| s.summary.clone()).collect()
}

#[test]
fn lvm_report_parses_the_lab_stack() {
    let r = converged();
    assert_eq!(r.pvs.len(), 3);
    let dedup = r.pv("/dev/dm-2").expect("PV found by its resolved path");
    assert_eq!((dedup.name.as_str(), dedup.vg.as_str()), ("/dev/vdo/dedup", "pis"));
    assert_eq!(r.vg("pis").unwrap().extent_size, 4 << 20);
    let pi = r.lv("pis", "pi").unwrap();
    assert_eq!(
        (pi.segtype.as_str(), pi.cache_mode.as_str(), pi.pool_lv.as_str()),
        ("cache", "writeback", "pi_cache_cvol")
    );
    assert!(r.lv("pis", "pi_cache_cvol").unwrap().hidden);
    assert_eq!(r.lvs_of("pis").count(), 2, "hidden LVs are not the VG's own");
    let pool = r.lv("vdo", "vpool").unwrap();
    assert!(su::lvm_flag(&pool.vdo_deduplication) && !su::lvm_flag(&pool.vdo_compression));
    assert!(empty().pvs.is_empty() && empty().vgs.is_empty());
    assert!(su::parse_lvm_report("@@PVS\n{not json").is_err());
}

// ---------------------------------------------------------------- lvg

#[test]
fn lvg_creates_noops_grows_and_refuses() {
    let p: lvg::LvgParams = params(json!({"vg": "vdo", "pvs": "/dev/vdb"}));
    let st = lvg::LvgState { lvm: empty(), devices: vec![dev("/dev/vdb", "/dev/vdb", 12 << 30, "wipefs_empty.json")] };
    let s = lvg::steps(&p, &st).unwrap();
    assert_eq!(summaries(&s), ["/dev/vdb becomes an LVM PV", "VG vdo is created on /dev/vdb"]);
    assert_eq!(s[1].script, "vgcreate -y vdo /dev/vdb");

    // converged: the PV given by its LV path is found through its resolved device
    let p: lvg::LvgParams = params(json!({"vg": "pis", "pvs": ["/dev/vdo/dedup", "/dev/vdc"]}));
    let st = lvg::LvgState {
        lvm: converged(),
        devices: vec![
            dev("/dev/vdo/dedup", "/dev/dm-2", 24 << 30, "wipefs_empty.json"),
            dev("/dev/vdc", "/dev/vdc", 2 << 30, "wipefs_lvm_pv.json"),
        ],
    };
    assert!(lvg::steps(&p, &st).unwrap().is_empty());

    // grow with an empty disk
    let p: lvg::LvgParams = params(json!({"vg": "pis", "pvs": ["/dev/vdo/dedup", "/dev/vdc", "/dev/vdd"]}));
    let mut st2 = st.clone();
    st2.devices.push(dev("/dev/vdd", "/dev/vdd", 1 << 30, "wipefs_empty.json"));
    let s = lvg::steps(&p, &st2).unwrap();
    assert_eq!(summaries(&s), ["/dev/vdd becomes an LVM PV", "VG pis gains PV /dev/vdd"]);
    let d = s[1].diff.as_ref().unwrap();
    assert!(d.after.contains("/dev/vdd") && !d.before.contains("/dev/vdd"));

    // a disk with a filesystem: refused, naming device and signature; force wipes it first
    st2.devices[2] = dev("/dev/vdd", "/dev/vdd", 1 << 30, "wipefs_ext4.json");
    let e = lvg::steps(&p, &st2).unwrap_err();
    assert!(e.msg.contains("/dev/vdd") && e.msg.contains("ext4") && e.msg.contains("force: true"), "{}", e.msg);
    let forced: lvg::LvgParams =
        params(json!({"vg": "pis", "pvs": ["/dev/vdo/dedup", "/dev/vdc", "/dev/vdd"], "force": true}));
    let s = lvg::steps(&forced, &st2).unwrap();
    assert!(s[0].summary.contains("destroying ext4"), "{:?}", summaries(&s));
    assert!(s[0].script.starts_with("wipefs -a /dev/vdd"));

    // a PV of another VG is never taken
    let p: lvg::LvgParams = params(json!({"vg": "pis", "pvs": ["/dev/vdb"], "force": true}));
    let st3 =
        lvg::LvgState { lvm: converged(), devices: vec![dev("/dev/vdb", "/dev/vdb", 12 << 30, "wipefs_lvm_pv.json")] };
    assert!(lvg::steps(&p, &st3).unwrap_err().msg.contains("already a PV of VG vdo"));

    // reduce: a PV holding extents cannot leave; without reduce, extra PVs stay
    let p: lvg::LvgParams = params(json!({"vg": "pis", "pvs": ["/dev/vdo/dedup"], "reduce": true}));
    assert!(lvg::steps(&p, &st).unwrap_err().msg.contains("pvmove"));
    let p: lvg::LvgParams = params(json!({"vg": "pis", "pvs": ["/dev/vdo/dedup"]}));
    assert!(lvg::steps(&p, &st).unwrap().is_empty());

    // absent: refuses while LVs live in it
    let p: lvg::LvgParams = params(json!({"vg": "pis", "state": "absent"}));
    let e = lvg::steps(&p, &st).unwrap_err();
    assert!(e.msg.contains("pi, shared"), "{}", e.msg);
}

// ---------------------------------------------------------------- lvol

#[test]
fn lvol_noop_grow_shrink_and_remove() {
    let r = converged();
    let p: lvol::LvolParams = params(json!({"vg": "pis", "lv": "shared", "size": "1G"}));
    assert!(lvol::steps(&p, &r).unwrap().is_empty());
    // sizes round up to whole extents like LVM does: 1G - 1 byte is still 1G
    let p: lvol::LvolParams = params(json!({"vg": "pis", "lv": "shared", "size": "1073741823b"}));
    assert!(lvol::steps(&p, &r).unwrap().is_empty());

    let p: lvol::LvolParams = params(json!({"vg": "pis", "lv": "shared", "size": "1.5G", "resizefs": true}));
    let s = lvol::steps(&p, &r).unwrap();
    assert_eq!(summaries(&s), ["LV pis/shared grows 1 GiB → 1.50 GiB"]);
    assert_eq!(s[0].script, format!("lvextend -y -r -L {}b pis/shared", 3u64 << 29));

    let p: lvol::LvolParams = params(json!({"vg": "pis", "lv": "shared", "size": "512M"}));
    let e = lvol::steps(&p, &r).unwrap_err();
    assert!(e.msg.contains("shrink: true") && e.msg.contains("1 GiB") && e.msg.contains("512 MiB"), "{}", e.msg);
    let p: lvol::LvolParams = params(json!({"vg": "pis", "lv": "shared", "size": "512M", "shrink": true}));
    let s = lvol::steps(&p, &r).unwrap();
    assert!(s[0].script.starts_with("lvreduce -y -L 536870912b"), "{}", s[0].script);

    // 100%FREE grows over all the free space once; smaller shares only size new LVs
    let p: lvol::LvolParams = params(json!({"vg": "pis", "lv": "shared", "size": "100%FREE"}));
    let s = lvol::steps(&p, &r).unwrap();
    assert!(s[0].summary.starts_with("LV pis/shared grows 1 GiB →"), "{:?}", summaries(&s));
    let p: lvol::LvolParams = params(json!({"vg": "pis", "lv": "shared", "size": "50%FREE"}));
    assert!(lvol::steps(&p, &r).unwrap().is_empty());

    let p: lvol::LvolParams = params(json!({"vg": "pis", "lv": "pi4", "size": "2G", "pvs": "/dev/vdo/dedup"}));
    let s = lvol::steps(&p, &r).unwrap();
    assert_eq!(s[0].summary, "LV pis/pi4 is created (2 GiB)");
    assert_eq!(s[0].script, "lvcreate -y --wipesignatures y -L 2147483648b -n pi4 pis /dev/vdo/dedup");

    let p: lvol::LvolParams = params(json!({"vg": "pis", "lv": "shared", "state": "absent"}));
    assert!(lvol::steps(&p, &r).unwrap_err().msg.contains("force: true"));
    let p: lvol::LvolParams = params(json!({"vg": "pis", "lv": "shared", "state": "absent", "force": true}));
    assert_eq!(lvol::steps(&p, &r).unwrap()[0].script, "lvremove -y pis/shared");
}

// ---------------------------------------------------------------- lvm_cache

#[test]
fn lvm_cache_noop_mode_change_detach_and_attach() {
    let r = converged();
    let base = json!({"vg": "pis", "lv": "pi", "cache_pv": "/dev/vdc", "size": "256M", "cache_mode": "writeback"});
    assert!(lvm_cache::steps(&params(base.clone()), &r).unwrap().is_empty());

    let mut p = base.clone();
    p["cache_mode"] = json!("writethrough");
    let s = lvm_cache::steps(&params(p), &r).unwrap();
    assert_eq!(summaries(&s), ["LV pis/pi's cache switches writeback → writethrough"]);
    assert_eq!(s[0].script, "lvchange -y --cachemode writethrough pis/pi");

    // detaching a writeback cache: the plan says the dirty blocks are flushed first
    let mut p = base.clone();
    p["state"] = json!("absent");
    let s = lvm_cache::steps(&params(p), &r).unwrap();
    assert_eq!(s.len(), 1);
    assert!(s[0].summary.contains("dirty blocks are flushed to the origin first"), "{}", s[0].summary);
    assert_eq!(s[0].script, "lvconvert -y --uncache pis/pi");

    // attach to an uncached LV
    let s = lvm_cache::steps(
        &params(
            json!({"vg": "pis", "lv": "shared", "cache_pv": "/dev/vdc", "size": "256M", "cache_mode": "writeback"}),
        ),
        &r,
    )
    .unwrap();
    assert_eq!(s[0].summary, "LV pis/shared gains an SSD cache (writeback, 256 MiB on /dev/vdc)");
    assert!(s[0].script.contains("lvcreate -y --wipesignatures y -L 268435456b -n shared_cache pis /dev/vdc"));
    assert!(s[0].script.contains("lvconvert -y --type cache --cachevol shared_cache --cachemode writeback pis/shared"));

    // writecache: the cache volume is deactivated before the conversion
    let s = lvm_cache::steps(
        &params(json!({"vg": "pis", "lv": "shared", "cache_pv": "/dev/vdc", "type": "writecache"})),
        &r,
    )
    .unwrap();
    let sc = &s[0].script;
    let an = sc.find("lvchange -an pis/shared_cache").expect("deactivated");
    assert!(an < sc.find("lvconvert -y --type writecache").unwrap(), "{sc}");
    assert!(sc.contains("-l 100%PVS"), "default size: the whole cache PV");

    // switching the kind: detach (flush) then attach
    let s =
        lvm_cache::steps(&params(json!({"vg": "pis", "lv": "pi", "cache_pv": "/dev/vdc", "type": "writecache"})), &r)
            .unwrap();
    assert_eq!(s.len(), 2);
    assert!(s[0].summary.contains("loses its SSD cache") && s[1].summary.contains("gains an SSD cache"));
}

// ---------------------------------------------------------------- vdo

#[test]
fn vdo_lvm_noop_grow_switch_and_facts() {
    let r = converged();
    let base = json!({"vg": "vdo", "pool": "vpool", "name": "dedup", "size": "10G", "logical_size": "24G",
                      "deduplication": true, "compression": false});
    let p: vdo::VdoParams = params(base.clone());
    assert!(vdo::lvm_steps(&p, &r).unwrap().is_empty());

    let mut q = base.clone();
    q["compression"] = json!(true);
    q["logical_size"] = json!("30G");
    let s = vdo::lvm_steps(&params(q), &r).unwrap();
    assert_eq!(
        summaries(&s),
        ["VDO volume vdo/dedup grows 24 GiB → 30 GiB (logical)", "VDO pool vdo/vpool: compression off → on"]
    );
    assert_eq!(s[1].script, "lvchange --compression y vdo/vpool");

    let mut q = base.clone();
    q["logical_size"] = json!("20G");
    assert!(vdo::lvm_steps(&params(q), &r).unwrap_err().msg.contains("cannot shrink"));

    let s = vdo::lvm_steps(&p, &empty()).unwrap();
    assert_eq!(
        s[0].script,
        "lvcreate -y --type vdo -n dedup -L 10737418240b -V 25769803776b --compression n --deduplication y vdo/vpool"
    );
    assert!(s[0].summary.contains("deduplication on, compression off"), "{}", s[0].summary);

    let mut q = base.clone();
    q["state"] = json!("absent");
    assert!(vdo::lvm_steps(&params(q), &r).unwrap_err().msg.contains("force: true"));

    // facts: how much VDO saved
    use pbr_engine::Module;
    let data = vdo::Vdo.data(&p, &vdo::VdoState::Lvm(r));
    assert_eq!(data["saving"], json!("98% saved"));
    assert_eq!(data["deduplication"], json!(true));
    assert_eq!(data["compression"], json!(false));
}

#[test]
fn vdo_legacy_status_and_plans() {
    let text = fixture("vdo_legacy_status.yml");
    let v = vdo::parse_legacy_status(&text, "vdo1").unwrap();
    assert_eq!(v.device, "/dev/disk/by-id/scsi-36001405f2a1c3e8d");
    assert_eq!((v.logical_size, v.physical_size), (20 << 30, 10 << 30));
    assert!(v.deduplication && !v.compression);
    assert_eq!(v.saving_percent.as_deref(), Some("97"));
    let v2 = vdo::parse_legacy_status(&text, "vdo2").unwrap();
    assert!(v2.compression && v2.logical_size == 100 << 30);
    assert!(vdo::parse_legacy_status(&text, "vdo3").is_none());

    let p: vdo::VdoParams = params(json!({"backend": "legacy", "name": "vdo1", "logical_size": "20G",
                                          "deduplication": true, "compression": false}));
    assert!(vdo::legacy_steps(&p, Some(&v), None).unwrap().is_empty());
    let p: vdo::VdoParams =
        params(json!({"backend": "legacy", "name": "vdo1", "logical_size": "40G", "compression": true}));
    let s = vdo::legacy_steps(&p, Some(&v), None).unwrap();
    assert_eq!(s[0].script, format!("vdo growLogical --name=vdo1 --vdoLogicalSize={}K", 40u64 << 20));
    assert_eq!(s[1].script, "vdo enableCompression --name=vdo1");

    // creating on a device that holds a filesystem is refused without force
    let p: vdo::VdoParams =
        params(json!({"backend": "legacy", "name": "vdo9", "device": "/dev/sdb", "logical_size": "20G"}));
    let d = dev("/dev/sdb", "/dev/sdb", 10 << 30, "wipefs_ext4.json");
    let e = vdo::legacy_steps(&p, None, Some(&d)).unwrap_err();
    assert!(e.msg.contains("/dev/sdb") && e.msg.contains("ext4"), "{}", e.msg);
    let clean = dev("/dev/sdb", "/dev/sdb", 10 << 30, "wipefs_empty.json");
    let s = vdo::legacy_steps(&p, None, Some(&clean)).unwrap();
    assert_eq!(s[0].script, format!("vdo create --name=vdo9 --device=/dev/sdb --vdoLogicalSize={}K", 20u64 << 20));
}

// ---------------------------------------------------------------- filesystem

#[test]
fn filesystem_plans_and_refusals() {
    let p: filesystem::FilesystemParams = params(json!({"dev": "/dev/pis/shared", "fstype": "ext4"}));
    let fresh =
        filesystem::FsState { dev: dev("/dev/pis/shared", "/dev/dm-9", 1 << 30, "wipefs_empty.json"), fs_size: None };
    assert_eq!(filesystem::steps(&p, &fresh).unwrap()[0].script, "mkfs.ext4 -q -F /dev/dm-9");
    let done =
        filesystem::FsState { dev: dev("/dev/pis/shared", "/dev/dm-9", 1 << 30, "wipefs_ext4.json"), fs_size: None };
    assert!(filesystem::steps(&p, &done).unwrap().is_empty());
    let pv = filesystem::FsState { dev: dev("/dev/vdc", "/dev/vdc", 2 << 30, "wipefs_lvm_pv.json"), fs_size: None };
    let p: filesystem::FilesystemParams = params(json!({"dev": "/dev/vdc", "fstype": "xfs"}));
    let e = filesystem::steps(&p, &pv).unwrap_err();
    assert!(e.msg.contains("/dev/vdc holds LVM2_member"), "{}", e.msg);
    let p: filesystem::FilesystemParams = params(json!({"dev": "/dev/vdc", "fstype": "xfs", "force": true}));
    let s = filesystem::steps(&p, &pv).unwrap();
    assert_eq!(s.len(), 1);
    assert!(s[0].summary.contains("destroying LVM2_member"));
    assert_eq!(s[0].script, "wipefs -a /dev/vdc\nmkfs.xfs /dev/vdc");
    assert_eq!(
        filesystem::parse_dumpe2fs("Block count:              262144\nBlock size:               4096\n"),
        Some(1 << 30)
    );
}

// ---------------------------------------------------------------- bcache

#[test]
fn bcache_noop_mode_change_make_and_refuse() {
    let st = bcache::parse_probe(&fixture("bcache_probe_converged.txt"), true).unwrap();
    assert_eq!(st.sys.as_ref().unwrap().device, "bcache0");
    assert_eq!(st.backing.real, "/dev/sda");
    let backing = "/dev/disk/by-path/ip-10.99.0.1:3260-iscsi-iqn.2024-01.lan.storage:pi-lun-0";
    let base = json!({"backing": backing, "cache": "/dev/vdb", "cache_mode": "writeback", "sequential_cutoff": "4M"});
    assert!(bcache::steps(&params(base.clone()), &st).unwrap().is_empty());

    let mut q = base.clone();
    q["cache_mode"] = json!("writethrough");
    let s = bcache::steps(&params(q), &st).unwrap();
    assert_eq!(summaries(&s), [format!("bcache on {backing} switches to writethrough (was writeback)")]);
    assert!(s[0].script.ends_with("echo writethrough > \"$b/cache_mode\""));

    // fresh disks: format both, attach, set the mode
    let mut fresh = st.clone();
    fresh.backing.signatures.clear();
    fresh.backing_sb = None;
    fresh.sys = None;
    let mut c = fresh.cache.clone().unwrap();
    c.signatures.clear();
    fresh.cache = Some(c);
    fresh.cache_sb = None;
    fresh.cache_registered = false;
    let s = bcache::steps(&params(base.clone()), &fresh).unwrap();
    assert_eq!(s.len(), 5, "{:?}", summaries(&s));
    assert!(s[0].script.contains("make-bcache -B /dev/sda"));
    assert!(s[1].script.contains("make-bcache -C /dev/vdb"));
    assert!(s[2].script.contains("/attach"));

    // a backing disk with a filesystem: refused without force
    let mut ext = fresh.clone();
    ext.backing.signatures = su::parse_wipefs_json(&fixture("wipefs_ext4.json")).unwrap();
    let e = bcache::steps(&params(base.clone()), &ext).unwrap_err();
    assert!(e.msg.contains(backing) && e.msg.contains("ext4") && e.msg.contains("force"), "{}", e.msg);

    // a cache too small for 128 buckets
    let mut small = fresh.clone();
    if let Some(c) = small.cache.as_mut() {
        c.size = 32 << 20;
    }
    assert!(bcache::steps(&params(base), &small).unwrap_err().msg.contains("128 buckets"));
}

// ---------------------------------------------------------------- targetcli

fn lab_targetcli(pw: &str) -> Value {
    json!({
        "backstores": [{"name": "pi", "dev": "/dev/pis/pi"}],
        "targets": [{
            "iqn": "iqn.2024-01.lan.storage:pi",
            "luns": [{"backstore": "pi"}],
            "portals": [{"ip": "10.99.0.1"}],
            "acls": [{"initiator": "iqn.2024-01.lan.pi:initiator", "chap_userid": "pi", "chap_password": pw}],
            "attributes": {"authentication": 1, "generate_node_acls": 0}
        }]
    })
}

#[test]
fn targetcli_noop_additions_purge_and_secrets() {
    let st = targetcli::parse_probe(&fixture("lio_converged.txt")).unwrap();
    let tp = &st.targets["iqn.2024-01.lan.storage:pi"][&1];
    assert_eq!(tp.luns[&0], "block/pi");
    assert_eq!(tp.portals, ["10.99.0.1:3260"]);
    let p: targetcli::TargetcliParams = params(lab_targetcli("s3cret-chap-pw"));
    assert!(targetcli::steps(&p, &st).unwrap().is_empty());

    // a changed password: one step, the password only in the targetcli input
    let p: targetcli::TargetcliParams = params(lab_targetcli("another-secret-1"));
    let s = targetcli::steps(&p, &st).unwrap();
    assert_eq!(s.len(), 1);
    assert!(!s[0].summary.contains("another-secret-1") && s[0].summary.contains("not shown"));
    assert!(!format!("{:?}", p).contains("another-secret-1"), "Debug of params redacts the password");

    // a second Pi: backstore, LUN 1, a second ACL seeing only LUN 1
    let mut v = lab_targetcli("s3cret-chap-pw");
    v["backstores"].as_array_mut().unwrap().push(json!({"name": "pi2", "dev": "/dev/pis/pi2"}));
    v["targets"][0]["luns"].as_array_mut().unwrap().push(json!({"backstore": "pi2"}));
    v["targets"][0]["acls"][0]["mapped_luns"] = json!([0]);
    v["targets"][0]["acls"]
        .as_array_mut()
        .unwrap()
        .push(json!({"initiator": "iqn.2024-01.lan.pi2:initiator", "mapped_luns": [1]}));
    let p: targetcli::TargetcliParams = params(v);
    let s = targetcli::steps(&p, &st).unwrap();
    assert_eq!(
        summaries(&s),
        [
            "backstore block/pi2 exports /dev/pis/pi2",
            "iqn.2024-01.lan.storage:pi LUN 1 exports backstore pi2",
            "iqn.2024-01.lan.storage:pi: initiator iqn.2024-01.lan.pi2:initiator is allowed in (ACL)",
            "iqn.2024-01.lan.storage:pi: iqn.2024-01.lan.pi2:initiator sees LUN 1",
        ]
    );
    let batch = targetcli::batch(&p, &s);
    assert!(batch.starts_with("set global auto_add_default_portal=false auto_add_mapped_luns=false"));
    assert!(batch.ends_with("saveconfig\nexit\n"));

    // nothing declared: nothing removed without purge; everything with it
    let none: targetcli::TargetcliParams = params(json!({}));
    assert!(targetcli::steps(&none, &st).unwrap().is_empty());
    let purge: targetcli::TargetcliParams = params(json!({"purge": true}));
    let s = targetcli::steps(&purge, &st).unwrap();
    assert_eq!(
        summaries(&s),
        [
            "target iqn.2024-01.lan.storage:pi is removed (not declared)",
            "backstore block/pi (/dev/pis/pi) is removed (not declared)"
        ]
    );
}

#[test]
fn targetcli_validates_iqns() {
    for bad in ["iqn.2021-03.target:name", "iqn.21-03.lan.x", "IQN.2024-01.lan.x:y", "iqn.2024-13.lan.x"] {
        assert!(targetcli::validate_wwn(bad).is_err(), "{bad} accepted");
    }
    for good in ["iqn.2024-01.lan.storage:pi", "iqn.2003-01.org.linux-iscsi.storage.x8664:sn.1", "naa.6001405f2a1c3e8d"]
    {
        targetcli::validate_wwn(good).unwrap_or_else(|e| panic!("{good}: {e}"));
    }
    use pbr_engine::Module;
    let p: targetcli::TargetcliParams = params(json!({"targets": [{"iqn": "iqn.2021-03.target:name", "luns": []}]}));
    let e = targetcli::Targetcli.validate(&p).unwrap_err();
    assert!(e.contains("iqn.YYYY-MM.reversed.domain"), "{e}");
}

// ---------------------------------------------------------------- iscsi

#[test]
fn iscsi_noop_login_logout() {
    let text = "@@NAME\nInitiatorName=iqn.2024-01.lan.pi:initiator\n@@SESSIONS\n\
                tcp: [1] 10.99.0.1:3260,1 iqn.2024-01.lan.storage:pi (non-flash)\n@@NODES\n\
                10.99.0.1:3260,1 iqn.2024-01.lan.storage:pi\n@@NODE\nnode.startup = automatic\n\
                node.session.auth.authmethod = CHAP\nnode.session.auth.username = pi\n";
    let st = iscsi::parse_probe(text);
    let base = json!({"initiator_name": "iqn.2024-01.lan.pi:initiator", "portal": "10.99.0.1",
                      "target": "iqn.2024-01.lan.storage:pi", "startup": "automatic",
                      "chap_userid": "pi", "chap_password": "s3cret-chap-pw"});
    assert!(iscsi::steps(&params(base.clone()), &st).unwrap().is_empty());

    // nothing known yet: name, discovery, startup, CHAP, login, in that order
    let fresh = iscsi::parse_probe("@@NAME\nInitiatorName=iqn.1993-08.org.debian:01:abc\n@@SESSIONS\n@@NODES\n");
    let s = iscsi::steps(&params(base.clone()), &fresh).unwrap();
    assert_eq!(s.len(), 5, "{:?}", summaries(&s));
    assert!(s[1].script.contains("\niscsiadm -m discovery -t sendtargets -p 10.99.0.1:3260"));
    let chap = &s[3];
    assert!(!chap.script.contains("s3cret-chap-pw") && !chap.summary.contains("s3cret-chap-pw"));
    assert_eq!(chap.stdin.as_deref(), Some("s3cret-chap-pw\n"));
    assert!(s[4].script.contains("--login"));

    let mut q = base;
    q["state"] = json!("logged_out");
    let s = iscsi::steps(&params(q), &st).unwrap();
    assert_eq!(summaries(&s), ["this host logs out of iqn.2024-01.lan.storage:pi at 10.99.0.1:3260"]);
}
