//! pbr's everyday modules: files, text edits, commands, packages and services.
//!
//! Every module talks to the host only through [`pbr_core::Host`] with POSIX `sh` scripts, so
//! targets need nothing but a shell and coreutils.

pub mod authorized_key;
pub mod bcache;
pub mod blockinfile;
pub mod boot_util;
pub mod command;
pub mod copy;
pub mod cron;
pub mod fetch;
pub mod file;
pub mod filesystem;
pub mod find;
pub mod get_url;
pub mod hostname;
pub mod ini_file;
pub mod iscsi;
pub mod kernel_cmdline;
pub mod known_hosts;
pub mod lineinfile;
pub mod link_check;
pub mod lvg;
pub mod lvm_cache;
pub mod lvol;
pub mod mkinitcpio_hook;
pub mod modprobe;
pub mod mount;
pub mod networkd;
pub mod package;
pub mod replace;
pub mod rootfs;
pub mod service_facts;
pub mod slurp;
pub mod stat;
pub mod storage_util;
pub mod sysctl;
pub mod systemd;
pub mod targetcli;
pub mod template;
pub mod timezone;
pub mod unarchive;
pub mod user;
pub mod util;
pub mod vdo;
pub mod wait_for;
pub mod wpa;

/// All modules of this crate.
/// Adds every module to `r` (the engine's `Registry`).
pub fn register(r: &mut impl pbr_core::ModuleSet) {
    r.add(authorized_key::AuthorizedKey);
    r.add(blockinfile::Blockinfile);
    r.add(command::Command);
    r.add(command::Shell);
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
