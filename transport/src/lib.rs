//! pbr's transports: how the engine reaches a machine (`local`, `ssh`). Modules never see this
//! layer: they depend on `pbr-core` alone.
//!
//! Both transports run POSIX `sh` on the target; privilege escalation and atomic file writes
//! are built here once as shell text so that every transport does them the same way.

pub use pbr_core::inspect;
pub mod local;
pub mod ssh;

use pbr_core::host::{Become, BecomeMethod, FileAttrs, sh_quote};

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

/// What the host must have received before a write is committed: the byte count and two
/// checksums (SHA-256 for `sha256sum`, the POSIX CRC for `cksum`), so that the host can check
/// with whichever tool it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    pub len: u64,
    pub sha256: String,
    pub crc: u32,
}

impl Expect {
    /// The expectation for these bytes.
    pub fn of(data: &[u8]) -> Expect {
        let mut s = ExpectSum::default();
        s.update(data);
        s.finish()
    }

    /// The expectation for a local file's content, read in chunks.
    pub fn of_file(path: &std::path::Path) -> std::io::Result<Expect> {
        use std::io::Read;
        let mut f = std::fs::File::open(path)?;
        let mut s = ExpectSum::default();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                return Ok(s.finish());
            }
            s.update(&buf[..n]);
        }
    }
}

/// POSIX `cksum`'s CRC-32 (polynomial 0x04C11DB7, most significant bit first, complemented).
static CKSUM: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_CKSUM);

/// The running sums of [`Expect`].
struct ExpectSum {
    len: u64,
    sha: sha2::Sha256,
    crc: crc::Digest<'static, u32>,
}

impl Default for ExpectSum {
    fn default() -> ExpectSum {
        ExpectSum { len: 0, sha: Default::default(), crc: CKSUM.digest() }
    }
}

impl ExpectSum {
    fn update(&mut self, data: &[u8]) {
        use sha2::Digest;
        self.len += data.len() as u64;
        self.sha.update(data);
        self.crc.update(data);
    }

    fn finish(mut self) -> Expect {
        use sha2::Digest;
        // POSIX cksum: the length follows the data, least significant byte first, as few bytes
        // as it takes
        let mut n = self.len;
        while n > 0 {
            self.crc.update(&[(n & 0xff) as u8]);
            n >>= 8;
        }
        Expect { len: self.len, sha256: hex::encode(self.sha.finalize()), crc: self.crc.finalize() }
    }
}

/// A script that reads stdin into a temp file beside `path`, checks that it received exactly
/// what `expect` says (byte count, then `sha256sum`, else `cksum`, whichever the host has),
/// applies `attrs`, flushes the file to disk (`sync FILE`, else `sync`) and renames it over
/// `path`. End of input is not success: a transfer cut short (the controller killed, the
/// connection lost) fails the check, and the temp file is removed, also when the shell is
/// signalled (HUP, INT, PIPE, TERM). Readers never see a half-written file, and every failure
/// leaves the old one.
pub fn atomic_write_script(path: &str, attrs: &FileAttrs, expect: &Expect) -> String {
    let p = sh_quote(path);
    let Expect { len, sha256, crc } = expect;
    let mut s = format!(
        "set -e; t=; c() {{ [ -z \"$t\" ] || rm -f \"$t\"; }}; trap c EXIT; trap 'c; exit 129' HUP; \
         trap 'c; exit 130' INT; trap 'c; exit 141' PIPE; trap 'c; exit 143' TERM; \
         d=$(dirname -- {p}); t=$(mktemp \"$d/.pbr.XXXXXX\"); cat > \"$t\"; \
         f={p}; bad() {{ rm -f \"$t\"; echo \"incomplete transfer: $1; $f was left as it was\" >&2; exit 1; }}; \
         n=$(wc -c < \"$t\" | tr -d ' '); [ \"$n\" = {len} ] || bad \"received $n of {len} bytes\"; \
         if command -v sha256sum >/dev/null 2>&1; then h=$(sha256sum < \"$t\"); \
         [ \"${{h%% *}}\" = {sha256} ] || bad 'SHA-256 differs'; \
         elif command -v cksum >/dev/null 2>&1; then h=$(cksum < \"$t\"); \
         [ \"${{h%% *}}\" = {crc} ] || bad 'CRC differs'; fi; "
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
    if let Some(v) = &attrs.validate {
        // in the same script, so that no temp file outlives a failure or an interruption
        let cmd = v.replace("%s", "\"$t\"");
        s.push_str(&format!(
            "o=$(exec 2>&1; {cmd}\n) && r=0 || r=$?; if [ \"$r\" != 0 ]; then c; \
             printf '%s %s\\n%s\\n' {} \"$r\" \"$o\" >&2; exit 1; fi; ",
            pbr_core::host::VALIDATE_FAILED
        ));
    }
    s.push_str(&format!("sync -- \"$t\" 2>/dev/null || sync; mv -f \"$t\" {p}; trap - EXIT"));
    s
}

/// A script that prints a file, or exits 3 with nothing when it does not exist.
pub fn read_script(path: &str) -> String {
    let p = sh_quote(path);
    format!("if [ -e {p} ]; then exec cat -- {p}; else exit 3; fi")
}
