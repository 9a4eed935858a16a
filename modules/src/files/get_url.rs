//! `get_url`: download a file on the host (with its `curl` or `wget`), as Ansible's `get_url`:
//! an existing file is kept unless `force` or a `checksum` says otherwise.

use crate::util::params_with_file_attrs;
use crate::util::{self};
use async_trait::async_trait;
use pbr_core::params::bool_lenient;
use pbr_core::{Change, Ctx, Diff, Doc, Module, ModuleError, Op, Plan, ReadHost, sh_quote};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};

fn yes() -> bool {
    true
}
fn ten() -> u64 {
    10
}

params_with_file_attrs! {
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetUrlParams {
    /// `http`, `https` or `ftp` URL, fetched by the host.
    pub url: String,
    /// Where to put it: a file, or a directory (the URL's last part names the file).
    pub dest: String,
    /// `ALGORITHM:HEX` (`sha256:9f86...`; sha1, sha224, sha256, sha384, sha512, md5): the download
    /// must have it, and an existing file that has it is not fetched again.
    #[serde(default)]
    pub checksum: Option<String>,
    /// Fetch even when the file exists (it is replaced only if the content differs).
    #[serde(default, deserialize_with = "bool_lenient")]
    pub force: bool,
    /// Extra HTTP headers.
    #[serde(default)]
    pub headers: Option<Map<String, Value>>,
    /// Seconds for the request.
    #[serde(default = "ten")]
    pub timeout: u64,
    /// Check the server's TLS certificate.
    #[serde(default = "yes", deserialize_with = "bool_lenient")]
    pub validate_certs: bool,
    /// HTTP basic authentication.
    #[serde(default)]
    pub url_username: Option<String>,
    #[serde(default)]
    pub url_password: Option<String>,
    /// Keep a copy of a replaced file as `dest.YYYY-mm-dd@HH:MM:SS~`.
    #[serde(default, deserialize_with = "bool_lenient")]
    pub backup: bool,
}
}

const ALGORITHMS: &[(&str, &str)] = &[
    ("md5", "md5sum"),
    ("sha1", "sha1sum"),
    ("sha224", "sha224sum"),
    ("sha256", "sha256sum"),
    ("sha384", "sha384sum"),
    ("sha512", "sha512sum"),
];

/// The checksum's tool and lowercase hex.
fn parse_checksum(c: &str) -> Result<(&'static str, String), String> {
    let (alg, hex) = c.split_once(':').ok_or_else(|| format!("checksum must be ALGORITHM:HEX, got {c:?}"))?;
    let tool =
        ALGORITHMS.iter().find(|(a, _)| a.eq_ignore_ascii_case(alg.trim())).map(|(_, t)| *t).ok_or_else(|| {
            format!("unsupported checksum algorithm {alg:?} (md5, sha1, sha224, sha256, sha384, sha512)")
        })?;
    let hex = hex.trim().to_ascii_lowercase();
    if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("the checksum is not hexadecimal: {hex:?}"));
    }
    Ok((tool, hex))
}

/// The script printing the URL's content (curl, else wget).
fn fetch_cmd(p: &GetUrlParams) -> String {
    let u = sh_quote(&p.url);
    let t = p.timeout;
    let mut curl = format!("curl -fsSL --max-time {t}");
    let mut wget = format!("wget -q -O - -T {t}");
    if !p.validate_certs {
        curl.push_str(" -k");
        wget.push_str(" --no-check-certificate");
    }
    for (k, v) in p.headers.iter().flatten() {
        let v = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let h = sh_quote(&format!("{k}: {v}"));
        curl.push_str(&format!(" -H {h}"));
        wget.push_str(&format!(" --header={h}"));
    }
    if let Some(u) = &p.url_username {
        let up = sh_quote(&format!("{u}:{}", p.url_password.as_deref().unwrap_or("")));
        curl.push_str(&format!(" -u {up}"));
        wget.push_str(&format!(
            " --user={} --password={}",
            sh_quote(u),
            sh_quote(p.url_password.as_deref().unwrap_or(""))
        ));
    }
    format!(
        "if command -v curl >/dev/null 2>&1; then {curl} {u}; elif command -v wget >/dev/null 2>&1; then {wget} {u}; \
         else echo 'the host has neither curl nor wget' >&2; exit 127; fi"
    )
}

pub struct GetUrl;

pub struct GetUrlState {
    dest: String,
    /// The file at dest (None: missing).
    file: Option<pbr_core::FileStat>,
    /// The existing file's checksum with the wanted algorithm (or sha1).
    have_sum: Option<String>,
    /// With `force` (and no checksum): the sha1 of what the URL serves now.
    remote_sum: Option<String>,
}

#[async_trait]
impl Module for GetUrl {
    type Params = GetUrlParams;
    type State = GetUrlState;
    const NAME: &'static str = "get_url";

    fn doc(&self) -> Doc {
        Doc {
            description: "Download a URL to a file on the host, with the host's own `curl` (or `wget`), into a \
                          temp file beside `dest` that replaces it only when complete (and, with `checksum`, \
                          verified). An existing file is not fetched again unless `force` (then replaced only \
                          if the content differs: `--check` fetches to compare) or its checksum is not \
                          `checksum`. Unlike Ansible, a download with the wrong checksum leaves the existing \
                          file as it was (Ansible removes it). Result: `dest`, `url`, `checksum_src`/`checksum_dest` (sha1), `size`.",
            examples: r#"- name: Arch Linux ARM's root filesystem for a new Pi
  get_url:
    url: http://os.archlinuxarm.org/os/ArchLinuxARM-rpi-aarch64-latest.tar.gz
    dest: /srv/images/
    checksum: "md5:{{ alarm_md5 }}"
    mode: "0644"
"#,
        }
    }

    fn validate(&self, p: &GetUrlParams) -> Result<(), String> {
        if let Some(c) = &p.checksum {
            parse_checksum(c)?;
        }
        if !["http://", "https://", "ftp://", "file://"].iter().any(|s| p.url.starts_with(s)) {
            return Err(format!("url must be http(s)://, ftp:// or file://: {}", p.url));
        }
        Ok(())
    }

    async fn probe(&self, _ctx: &Ctx<'_>, p: &GetUrlParams, host: &ReadHost) -> Result<GetUrlState, ModuleError> {
        let mut dest = p.dest.clone();
        let mut file = host.stat(&dest).await?;
        if dest.ends_with('/') || file.as_ref().is_some_and(|s| s.kind == "directory") {
            let name = p.url.split(['?', '#']).next().unwrap_or("").rsplit('/').next().unwrap_or("");
            let name = if name.is_empty() { "index.html" } else { name };
            dest = format!("{}/{name}", dest.trim_end_matches('/'));
            file = host.stat(&dest).await?;
        }
        if file.as_ref().is_some_and(|f| f.kind == "directory") {
            return Err(ModuleError::new(format!("{dest} is a directory")));
        }
        let tool = match &p.checksum {
            Some(c) => parse_checksum(c).map_err(ModuleError::new)?.0,
            None => "sha1sum",
        };
        let mut have_sum = None;
        if file.is_some() {
            let out = host.query_sh(format!("{tool} -- {}", sh_quote(&dest))).await?;
            have_sum = out.stdout_str().split_whitespace().next().map(str::to_string);
        }
        let mut remote_sum = None;
        if p.force && p.checksum.is_none() && file.is_some() {
            // the fetch's status, after its errors, on stderr (a pipe's status is its last command's)
            let out = host.query_sh(format!("{{ ( {} ); echo \"pbr-rc=$?\" >&2; }} | sha1sum", fetch_cmd(p))).await?;
            let err = out.stderr_str();
            if !out.ok() || !err.trim_end().ends_with("pbr-rc=0") {
                let err = err.trim_end().rsplit_once('\n').map(|(e, _)| e).unwrap_or("");
                return Err(ModuleError::new(format!("Request failed: {} ({})", p.url, err.trim())));
            }
            remote_sum = out.stdout_str().split_whitespace().next().map(str::to_string);
        }
        Ok(GetUrlState { dest, file, have_sum, remote_sum })
    }

    fn plan(&self, p: &GetUrlParams, st: &GetUrlState) -> Result<Plan, ModuleError> {
        let attrs = p.attrs();
        let dest = &st.dest;
        let want = p.checksum.as_deref().map(parse_checksum).transpose().map_err(ModuleError::new)?;
        let fetch = match (&st.file, &want) {
            (None, _) => true,
            (Some(_), Some((_, hex))) => st.have_sum.as_deref() != Some(hex.as_str()),
            (Some(_), None) => p.force && st.remote_sum != st.have_sum,
        };
        let mut plan = Plan::empty();
        if fetch {
            let c = if st.file.is_none() {
                Change::create(format!("download {} to {dest}{}", p.url, util::attrs_suffix(attrs)))
            } else {
                Change::new(format!("download {} to {dest} (the content differs)", p.url))
            };
            let before = st.have_sum.as_deref().map(|s| format!("checksum: {s}\n")).unwrap_or_default();
            let after = match &want {
                Some((_, hex)) => format!("checksum: {hex}\n"),
                None => st
                    .remote_sum
                    .as_deref()
                    .map(|s| format!("checksum: {s}\n"))
                    .unwrap_or("checksum: (new download)\n".into()),
            };
            plan.push(c.with_diff(Diff::file(dest, before, after)));
            let q = sh_quote(dest);
            let verify = match &want {
                Some((tool, hex)) => format!(
                    "got=$({tool} < \"$tmp\" | cut -d' ' -f1); [ \"$got\" = {h} ] || {{ echo \"The checksum for {d} did not match {h}; it was $got.\" >&2; exit 1; }}\n",
                    h = sh_quote(hex),
                    d = dest.replace(['"', '$', '`', '\\'], "")
                ),
                None => String::new(),
            };
            let backup = if p.backup && st.file.is_some() {
                format!("cp -p -- {q} {q}.\"$(date +%Y-%m-%d@%H:%M:%S~)\"\n")
            } else {
                String::new()
            };
            let keep_mode = if st.file.is_some() && p.mode.is_none() {
                format!("chmod \"$(stat -c %a -- {q})\" \"$tmp\"\n")
            } else {
                "chmod 0644 \"$tmp\"\n".into()
            };
            let script = format!(
                "dir=$(dirname -- {q}); tmp=$(mktemp \"$dir/.pbr.get_url.XXXXXX\") || exit 1\n\
                 trap 'rm -f \"$tmp\"' EXIT\n\
                 ( {fetch} ) > \"$tmp\" || {{ echo \"Request failed: {u}\" >&2; exit 1; }}\n\
                 {verify}{keep_mode}{backup}mv -f -- \"$tmp\" {q}\ntrap - EXIT\n",
                fetch = fetch_cmd(p),
                u = p.url.replace(['"', '$', '`', '\\'], "")
            );
            plan.op(Op::Run {
                what: format!("download {}", p.url),
                script,
                stdin: None,
                makes: vec![dest.clone()],
                removes: vec![],
            });
            if !attrs.is_empty() {
                plan.op(Op::SetAttrs { path: dest.clone(), attrs: util::op_attrs(attrs), recurse: false, link: false });
            }
        } else if let Some(s) = &st.file {
            util::attr_changes(dest, attrs, s, &mut plan);
            if !plan.is_empty() {
                plan.op(Op::SetAttrs { path: dest.clone(), attrs: util::op_attrs(attrs), recurse: false, link: false });
            }
        }
        Ok(plan)
    }

    fn data(&self, p: &GetUrlParams, st: &GetUrlState) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("dest".into(), json!(st.dest));
        m.insert("url".into(), json!(p.url));
        if let Some(s) = &st.have_sum {
            m.insert("checksum_dest".into(), json!(s));
        }
        if let Some(f) = &st.file {
            m.insert("size".into(), json!(f.size));
        }
        m
    }

    async fn report(
        &self,
        _p: &GetUrlParams,
        st: &GetUrlState,
        host: &ReadHost,
    ) -> Result<Map<String, Value>, ModuleError> {
        let mut m = Map::new();
        let out = host.query_sh(format!("sha1sum -- {0}; stat -c %s -- {0}", sh_quote(&st.dest))).await?;
        let text = out.stdout_str();
        let mut lines = text.lines();
        if let Some(sum) = lines.next().and_then(|l| l.split_whitespace().next()) {
            m.insert("checksum_src".into(), json!(sum));
            m.insert("checksum_dest".into(), json!(sum));
        }
        if let Some(size) = lines.next().and_then(|l| l.trim().parse::<u64>().ok()) {
            m.insert("size".into(), json!(size));
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums() {
        assert_eq!(parse_checksum("sha256:ABcd").unwrap(), ("sha256sum", "abcd".to_string()));
        assert!(parse_checksum("crc32:00").is_err());
        assert!(parse_checksum("abcd").is_err());
        assert!(parse_checksum("sha1:xyz").is_err());
    }
}
