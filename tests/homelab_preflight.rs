//! The reference homelab's preflight: Pi LVs that do not fit in the VDO volume stop the storage
//! play at its first task, before anything is touched. Runs against this machine with
//! `connection: local` (check mode; no other host is contacted).

mod common;
use std::path::PathBuf;

#[test]
fn pi_lvs_larger_than_the_vdo_volume_stop_the_storage_play_first() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let d = tempfile::tempdir().unwrap();
    let inv = common::write(
        d.path(),
        "hosts.ini",
        "[storage]\nstorage ansible_connection=local\n\n[pis]\npi1 pi_lv_size=30G\npi2\n\n[pis:vars]\npi_lv_size_default=4G\n\
         # made-up hosts, never contacted; local if anything ever did\nansible_connection=local\n",
    );
    let inv = inv.display().to_string();
    let args = ["run", "playbooks/storage.yml", "-i", inv.as_str(), "--check", "-e", "vdo_logical_size=32G"];
    let r = common::pbr(&repo, &args);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stdout.contains("the Pi LVs need 34.0 GiB but the VDO volume offers 32G"), "{}", r.stdout);
    assert_eq!(r.recap("storage")["ok"], 1, "only fact gathering ran before the assert:\n{}", r.stdout);
}
