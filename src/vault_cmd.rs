//! Vault on the command line: the password options every command that loads files takes, and
//! `pbr vault`, whose files and values `ansible-vault` reads and writes.

use clap::{Args, Subcommand};
use pbr_engine::vault::{self, Secret};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Where the run's vault passwords come from.
#[derive(Args, Default, Clone)]
pub struct VaultOpts {
    /// A vault password file (repeatable); an executable one is run and what it prints is used.
    #[arg(long = "vault-password-file", alias = "vault-pass-file", value_name = "FILE")]
    pub password_files: Vec<PathBuf>,
    /// A vault id with its password source: LABEL@FILE, LABEL@prompt, FILE or prompt (repeatable).
    #[arg(long = "vault-id", value_name = "[LABEL@]SOURCE")]
    pub ids: Vec<String>,
    /// Ask for the vault password.
    #[arg(short = 'J', long = "ask-vault-pass", alias = "ask-vault-password")]
    pub ask: bool,
}

fn prompt(label: &str) -> Result<Vec<u8>, String> {
    let p = if label == "default" { "Vault password: ".to_string() } else { format!("Vault password ({label}): ") };
    match crate::rpassword_prompt(&p) {
        Some(s) if !s.is_empty() => Ok(s.into_bytes()),
        Some(_) => Err("an empty vault password".into()),
        None => Err("could not read the vault password".into()),
    }
}

fn from_source(label: &str, src: &str) -> Result<Secret, String> {
    let password = if src == "prompt" || src == "prompt_ask_vault_pass" {
        prompt(label)?
    } else {
        vault::read_password_file(Path::new(src))?
    };
    Ok(Secret { id: label.to_string(), password })
}

impl VaultOpts {
    /// The passwords: `--vault-id`s, `--vault-password-file`s and `--ask-vault-pass` in that
    /// order; with none of them, `ANSIBLE_VAULT_PASSWORD_FILE` or ansible.cfg's
    /// `vault_password_file` (as Ansible).
    pub fn secrets(&self) -> Result<Vec<Secret>, String> {
        let mut out = vec![];
        for id in &self.ids {
            let (label, src) = id.split_once('@').unwrap_or(("default", id.as_str()));
            out.push(from_source(label, src)?);
        }
        for f in &self.password_files {
            out.push(from_source("default", &f.display().to_string())?);
        }
        if self.ask {
            out.push(Secret { id: "default".into(), password: prompt("default")? });
        }
        if out.is_empty() {
            let f = std::env::var("PBR_VAULT_PASSWORD_FILE")
                .ok()
                .or_else(|| std::env::var("ANSIBLE_VAULT_PASSWORD_FILE").ok())
                .filter(|f| !f.trim().is_empty())
                .or_else(|| crate::ansible_cfg_path("vault_password_file"));
            if let Some(f) = f {
                let f = crate::expand_home(f.trim());
                out.push(from_source("default", &f)?);
            }
        }
        Ok(out)
    }

    /// Set the run's passwords; an error is printed and is the exit code.
    pub fn install(&self) -> Result<(), ExitCode> {
        match self.secrets() {
            Ok(s) => {
                vault::set_secrets(s);
                Ok(())
            }
            Err(e) => {
                eprintln!("error: {e}");
                Err(ExitCode::from(crate::EXIT_INPUT))
            }
        }
    }
}

#[derive(Args)]
pub struct VaultArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Args)]
struct EncryptWith {
    #[command(flatten)]
    opts: VaultOpts,
    /// Which vault id encrypts, when several are given.
    #[arg(long, value_name = "LABEL")]
    encrypt_vault_id: Option<String>,
}

#[derive(Subcommand)]
enum Action {
    /// Encrypt files in place (`-` reads standard input and writes standard output).
    Encrypt {
        files: Vec<PathBuf>,
        /// Write here instead of in place (`-`: standard output).
        #[arg(long)]
        output: Option<PathBuf>,
        #[command(flatten)]
        with: EncryptWith,
    },
    /// Decrypt files in place (`-` reads standard input and writes standard output).
    Decrypt {
        files: Vec<PathBuf>,
        /// Write here instead of in place (`-`: standard output).
        #[arg(long)]
        output: Option<PathBuf>,
        #[command(flatten)]
        opts: VaultOpts,
    },
    /// Print decrypted files.
    View {
        files: Vec<PathBuf>,
        #[command(flatten)]
        opts: VaultOpts,
    },
    /// Create an encrypted file with $EDITOR.
    Create {
        file: PathBuf,
        #[command(flatten)]
        with: EncryptWith,
    },
    /// Edit an encrypted file with $EDITOR (the plain text lives in a 0600 temp file meanwhile).
    Edit {
        file: PathBuf,
        #[command(flatten)]
        opts: VaultOpts,
    },
    /// Encrypt files again with a new password.
    Rekey {
        files: Vec<PathBuf>,
        #[command(flatten)]
        opts: VaultOpts,
        /// The new password's file.
        #[arg(long, value_name = "FILE")]
        new_vault_password_file: Option<PathBuf>,
        /// The new vault id: LABEL@FILE, LABEL@prompt, FILE or prompt.
        #[arg(long, value_name = "[LABEL@]SOURCE")]
        new_vault_id: Option<String>,
    },
    /// Encrypt values for a YAML file (`name: !vault |` blocks); `-` or no value reads standard input.
    #[command(name = "encrypt_string", alias = "encrypt-string")]
    EncryptString {
        values: Vec<String>,
        /// The variable name of each value, in order.
        #[arg(short = 'n', long = "name")]
        names: Vec<String>,
        /// Read the value from standard input under this name.
        #[arg(long, value_name = "NAME")]
        stdin_name: Option<String>,
        /// Ask for the value (no echo).
        #[arg(short = 'p', long)]
        prompt: bool,
        #[command(flatten)]
        with: EncryptWith,
    },
}

fn pick(secrets: &[Secret], id: Option<&str>) -> Result<Secret, String> {
    match (id, secrets) {
        (_, []) => Err("no vault password given (--vault-password-file, --vault-id or --ask-vault-pass)".into()),
        (Some(id), s) => {
            s.iter().find(|x| x.id == id).cloned().ok_or_else(|| format!("no vault password with id {id:?} was given"))
        }
        (None, [one]) => Ok(one.clone()),
        (None, _) => Err("several vault ids were given: say which encrypts with --encrypt-vault-id".into()),
    }
}

fn read_input(p: &Path) -> Result<Vec<u8>, String> {
    if p == Path::new("-") {
        let mut b = vec![];
        std::io::stdin().read_to_end(&mut b).map_err(|e| format!("standard input: {e}"))?;
        Ok(b)
    } else {
        std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))
    }
}

/// Write a file whole or not at all (a temp file beside it, renamed over it), keeping its mode.
fn write_output(p: &Path, data: &[u8]) -> Result<(), String> {
    if p == Path::new("-") {
        let mut o = std::io::stdout().lock();
        return o.write_all(data).and_then(|_| o.flush()).map_err(|e| format!("standard output: {e}"));
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mode = std::fs::metadata(p).map(|m| m.permissions().mode() & 0o7777).unwrap_or(0o600);
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    tmp.write_all(data).and_then(|_| tmp.as_file().sync_all()).map_err(|e| format!("{}: {e}", p.display()))?;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("{}: {e}", p.display()))?;
    tmp.persist(p).map_err(|e| format!("{}: {e}", p.display()))?;
    Ok(())
}

fn text(b: &[u8], p: &Path) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|_| format!("{}: not vault text", p.display()))
}

fn decrypt_file(p: &Path, secrets: &[Secret]) -> Result<Vec<u8>, String> {
    let t = text(&read_input(p)?, p)?;
    if !vault::is_vaulted(&t) {
        return Err(format!("{}: input is not vault encrypted data", p.display()));
    }
    vault::decrypt_with(&t, secrets).map_err(|e| format!("{}: {e}", p.display()))
}

/// The label a vault text names (1.2), if any.
fn label_of(t: &str) -> Option<String> {
    let header = t.trim_start().lines().next()?;
    let f: Vec<&str> = header.split(';').collect();
    (f.len() >= 4).then(|| f[3].trim().to_string())
}

fn edit_in_editor(initial: &[u8], dir: &Path) -> Result<Vec<u8>, String> {
    let mut tmp = tempfile::Builder::new()
        .prefix(".pbr-vault-")
        .suffix(".yml")
        .tempfile_in(std::env::temp_dir())
        .or_else(|_| tempfile::NamedTempFile::new_in(dir))
        .map_err(|e| format!("a temp file: {e}"))?;
    tmp.write_all(initial).and_then(|_| tmp.flush()).map_err(|e| format!("a temp file: {e}"))?;
    let editor = std::env::var("EDITOR").ok().filter(|e| !e.trim().is_empty()).unwrap_or_else(|| "vi".into());
    let st = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(tmp.path())
        .status()
        .map_err(|e| format!("{editor}: {e}"))?;
    if !st.success() {
        return Err(format!("{editor} exited with {st}: nothing written"));
    }
    std::fs::read(tmp.path()).map_err(|e| format!("the temp file: {e}"))
}

fn run(a: VaultArgs) -> Result<(), String> {
    match a.action {
        Action::Encrypt { files, output, with } => {
            let s = pick(&with.opts.secrets()?, with.encrypt_vault_id.as_deref())?;
            let files = if files.is_empty() { vec![PathBuf::from("-")] } else { files };
            for f in &files {
                let plain = read_input(f)?;
                if std::str::from_utf8(&plain).is_ok_and(vault::is_vaulted) {
                    return Err(format!("{}: input is already encrypted", f.display()));
                }
                let out = vault::encrypt(&plain, &s)?;
                write_output(output.as_deref().unwrap_or(f), out.as_bytes())?;
            }
            eprintln!("Encryption successful");
        }
        Action::Decrypt { files, output, opts } => {
            let secrets = opts.secrets()?;
            let files = if files.is_empty() { vec![PathBuf::from("-")] } else { files };
            for f in &files {
                let plain = decrypt_file(f, &secrets)?;
                write_output(output.as_deref().unwrap_or(f), &plain)?;
            }
            eprintln!("Decryption successful");
        }
        Action::View { files, opts } => {
            let secrets = opts.secrets()?;
            for f in &files {
                write_output(Path::new("-"), &decrypt_file(f, &secrets)?)?;
            }
        }
        Action::Create { file, with } => {
            if file.exists() {
                return Err(format!("{} exists: use `pbr vault edit`", file.display()));
            }
            let s = pick(&with.opts.secrets()?, with.encrypt_vault_id.as_deref())?;
            let dir = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            let plain = edit_in_editor(b"", dir)?;
            write_output(&file, vault::encrypt(&plain, &s)?.as_bytes())?;
        }
        Action::Edit { file, opts } => {
            let secrets = opts.secrets()?;
            let t = text(&read_input(&file)?, &file)?;
            let plain = decrypt_file(&file, &secrets)?;
            // the same id encrypts again: the file's own label when one of ours has it
            let label = label_of(&t);
            let s = secrets
                .iter()
                .find(|s| Some(&s.id) == label.as_ref())
                .or_else(|| secrets.iter().find(|s| vault::decrypt_with(&t, std::slice::from_ref(s)).is_ok()))
                .cloned()
                .ok_or("no password opens it")?;
            let dir = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            let edited = edit_in_editor(&plain, dir)?;
            if edited != plain {
                write_output(&file, vault::encrypt(&edited, &s)?.as_bytes())?;
            }
        }
        Action::Rekey { files, opts, new_vault_password_file, new_vault_id } => {
            let secrets = opts.secrets()?;
            let new = match (new_vault_id, new_vault_password_file) {
                (Some(id), _) => {
                    let (label, src) = id.split_once('@').unwrap_or(("default", id.as_str()));
                    from_source(label, src)?
                }
                (None, Some(f)) => from_source("default", &f.display().to_string())?,
                (None, None) => Secret { id: "default".into(), password: prompt("new")? },
            };
            for f in &files {
                let plain = decrypt_file(f, &secrets)?;
                write_output(f, vault::encrypt(&plain, &new)?.as_bytes())?;
            }
            eprintln!("Rekey successful");
        }
        Action::EncryptString { values, names, stdin_name, prompt: ask, with } => {
            let s = pick(&with.opts.secrets()?, with.encrypt_vault_id.as_deref())?;
            let mut items: Vec<(Option<String>, Vec<u8>)> = vec![];
            if ask {
                let v = crate::rpassword_prompt("String to encrypt: ").ok_or("could not read the value")?;
                items.push((names.first().cloned(), v.into_bytes()));
            } else if values.is_empty() || values.iter().any(|v| v == "-") || stdin_name.is_some() {
                let b = read_input(Path::new("-"))?;
                items.push((stdin_name.or_else(|| names.first().cloned()), b));
            } else {
                for (i, v) in values.iter().enumerate() {
                    items.push((names.get(i).cloned(), v.clone().into_bytes()));
                }
            }
            let mut out = String::new();
            for (name, v) in items {
                let enc = vault::encrypt(&v, &s)?;
                if let Some(n) = name {
                    out.push_str(&format!("{n}: "));
                }
                out.push_str("!vault |\n");
                for l in enc.lines() {
                    out.push_str(&format!("          {l}\n"));
                }
            }
            write_output(Path::new("-"), out.as_bytes())?;
            eprintln!("Encryption successful");
        }
    }
    Ok(())
}

pub fn cmd_vault(a: VaultArgs) -> ExitCode {
    match run(a) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(crate::EXIT_INPUT)
        }
    }
}
