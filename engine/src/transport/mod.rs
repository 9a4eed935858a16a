//! Transports: how the engine reaches a machine. Modules never see this layer.
//!
//! Both transports run POSIX `sh` on the target; privilege escalation and atomic file writes
//! are built here once as shell text so that every transport does them the same way.

pub mod inspect;
pub mod local;
pub mod ssh;

use crate::host::{Become, BecomeMethod, FileAttrs, sh_quote};

/// Wrap a script for `become`. Returns the command line and a prefix for stdin (the password
/// line, for methods that read it there). The password never appears on the command line.
pub fn become_wrap(script: &str, esc: Option<&Become>) -> (String, Option<Vec<u8>>) {
    let Some(b) = esc else {
        return (script.to_string(), None);
    };
    let inner = format!("sh -c {}", sh_quote(script));
    let user = sh_quote(&b.user);
    match b.method {
        BecomeMethod::Sudo => match &b.password {
            None => (format!("sudo -n -H -u {user} -- {inner}"), None),
            Some(p) => {
                // The password goes first on stdin and is read off by the wrapper, so the command
                // never sees it. sudo asks for it through an askpass helper (`printenv`, given the
                // variable's name as its prompt) only when it needs it: NOPASSWD rules and partial
                // NOPASSWD both work, and `env_reset` keeps the variable from the command.
                let mut pre = p.expose().as_bytes().to_vec();
                pre.push(b'\n');
                (
                    format!(
                        "IFS= read -r PBR_BECOME_PASS; export PBR_BECOME_PASS; \
                         SUDO_ASKPASS=$(command -v printenv) exec sudo -k -A -p PBR_BECOME_PASS -H -u {user} -- {inner}"
                    ),
                    Some(pre),
                )
            }
        },
        BecomeMethod::Doas => (format!("doas -n -u {user} {inner}"), None),
        BecomeMethod::Su => (format!("su -s /bin/sh {user} -c {}", sh_quote(script)), None),
    }
}

/// A script that reads stdin into a temp file beside `path`, applies `attrs` and renames it
/// over `path`: readers never see a half-written file, and a failure leaves the old one.
pub fn atomic_write_script(path: &str, attrs: &FileAttrs) -> String {
    let p = sh_quote(path);
    let mut s = format!(
        "set -e; d=$(dirname -- {p}); t=$(mktemp \"$d/.pbr.XXXXXX\"); trap 'rm -f \"$t\"' EXIT; cat > \"$t\"; "
    );
    match attrs.mode {
        Some(m) => s.push_str(&format!("chmod {m:o} \"$t\"; ")),
        // keep an existing file's mode, else the umask default for a new file
        None => s.push_str(&format!(
            "if [ -e {p} ]; then chmod \"$(stat -c %a -- {p})\" \"$t\"; else chmod \"$(printf '%o' $((0666 & ~$(umask))))\" \"$t\"; fi; "
        )),
    }
    let owner = match (&attrs.owner, &attrs.group) {
        (Some(o), Some(g)) => Some(format!("{o}:{g}")),
        (Some(o), None) => Some(o.clone()),
        (None, Some(g)) => Some(format!(":{g}")),
        (None, None) => None,
    };
    match owner {
        Some(og) => s.push_str(&format!("chown {} \"$t\"; ", sh_quote(&og))),
        None => s.push_str(&format!(
            "if [ -e {p} ]; then chown \"$(stat -c %u:%g -- {p})\" \"$t\" 2>/dev/null || true; fi; "
        )),
    }
    s.push_str(&format!("mv -f \"$t\" {p}; trap - EXIT"));
    s
}

/// A script that prints a file, or exits 3 with nothing when it does not exist.
pub fn read_script(path: &str) -> String {
    let p = sh_quote(path);
    format!("if [ -e {p} ]; then exec cat -- {p}; else exit 3; fi")
}
