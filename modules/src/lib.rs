//! pbr's modules, by domain: files, text edits, the system, the storage server, the boot chain.
//!
//! Every module talks to the host only through [`pbr_core::Host`] with POSIX `sh` scripts, so
//! targets need nothing but a shell and coreutils.

/// Files: content, attributes, metadata, archives, downloads.
pub mod files {
    pub mod copy;
    pub mod fetch;
    pub mod file;
    pub mod find;
    pub mod get_url;
    pub mod slurp;
    pub mod stat;
    pub mod template;
    pub mod unarchive;
}

/// Edits inside text files: lines, blocks, regular expressions, INI.
pub mod text {
    pub mod blockinfile;
    pub mod ini_file;
    pub mod lineinfile;
    pub mod replace;
}

/// The system: commands, packages, services, users, cron, kernel settings, mounts.
pub mod system {
    pub mod authorized_key;
    pub mod command;
    pub mod cron;
    pub mod hostname;
    pub mod known_hosts;
    pub mod modprobe;
    pub mod mount;
    pub mod package;
    pub mod service_facts;
    pub mod sysctl;
    pub mod systemd;
    pub mod timezone;
    pub mod user;
    pub mod wait_for;
}

/// The storage server: LVM (volumes, SSD cache), VDO, file systems, LIO iSCSI targets.
pub mod storage {
    pub mod filesystem;
    pub mod lvg;
    pub mod lvm_cache;
    pub mod lvol;
    pub mod storage_util;
    pub mod targetcli;
    pub mod vdo;
}

/// The network boot chain of a Pi: initramfs hooks, kernel command line, networkd, Wi-Fi,
/// bcache, the iSCSI initiator, the root file system, and the link diagnosis.
pub mod boot {
    pub mod bcache;
    pub mod boot_util;
    pub mod iscsi;
    pub mod kernel_cmdline;
    pub mod link_check;
    pub mod mkinitcpio_hook;
    pub mod networkd;
    pub mod rootfs;
    pub mod wpa;
}

/// Helpers the modules share (file probes, content writes, regular expressions).
pub mod util;

// each module also by its own name (`pbr_modules::copy`), as before the grouping
pub use boot::{bcache, boot_util, iscsi, kernel_cmdline, link_check, mkinitcpio_hook, networkd, rootfs, wpa};
pub use files::{copy, fetch, file, find, get_url, slurp, stat, template, unarchive};
pub use storage::{filesystem, lvg, lvm_cache, lvol, storage_util, targetcli, vdo};
pub use system::{
    authorized_key, command, cron, hostname, known_hosts, modprobe, mount, package, service_facts, sysctl, systemd,
    timezone, user, wait_for,
};
pub use text::{blockinfile, ini_file, lineinfile, replace};

/// Adds every module to `r` (the engine's `Registry`).
pub fn register(r: &mut impl pbr_core::ModuleSet) {
    r.add(authorized_key::AuthorizedKey);
    r.add(blockinfile::Blockinfile);
    r.add(command::Command);
    r.add(command::Shell);
    r.add(command::Raw);
    r.add(copy::Copy);
    r.add(cron::Cron);
    r.add(fetch::Fetch);
    r.add(file::File);
    r.add(find::Find);
    r.add(ini_file::IniFile);
    r.add(known_hosts::KnownHosts);
    r.add(lineinfile::Lineinfile);
    r.add(package::Package);
    r.add(replace::Replace);
    r.add(stat::Stat);
    r.add(slurp::Slurp);
    r.add(service_facts::ServiceFacts);
    r.add(sysctl::Sysctl);
    r.add(systemd::Systemd);
    r.add(template::Template);
    r.add(user::Group);
    r.add(user::User);
    r.add(kernel_cmdline::KernelCmdline);
    r.add(wpa::Wpa);
    r.add(lvg::Lvg);
    r.add(lvol::Lvol);
    r.add(lvm_cache::LvmCache);
    r.add(filesystem::Filesystem);
    r.add(vdo::Vdo);
    r.add(bcache::Bcache);
    r.add(targetcli::Targetcli);
    r.add(iscsi::Iscsi);
    r.add(hostname::Hostname);
    r.add(get_url::GetUrl);
    r.add(link_check::LinkCheck);
    r.add(networkd::Networkd);
    r.add(mkinitcpio_hook::MkinitcpioHook);
    r.add(mount::Mount);
    r.add(modprobe::Modprobe);
    r.add(unarchive::Unarchive);
    r.add(timezone::Timezone);
    r.add(wait_for::WaitFor);
    r.add(rootfs::Rootfs);
}
