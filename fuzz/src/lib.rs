//! Fuzz targets for pbr's input side, and a small mutator, on stable Rust.
//!
//! Every target takes bytes and must return without panicking, whatever they are: a parser
//! either accepts its input or returns a diagnostic (which is rendered too, since rendering
//! spans is where byte offsets meet multi-byte characters). Nothing here connects anywhere
//! or runs a command: inventories are parsed (never used), and templates render with the
//! command lookups (`pipe`, `lines`) disabled.
//!
//! - [`TARGETS`]: the names, each with a corpus directory `fuzz/corpus/<name>/`.
//! - [`run`]: one input through one target (what the regression test and the fuzzer call).
//! - [`Mutator`]: byte-level mutations, splices and dictionary tokens for each target.
//! - [`seeds`]: the starting inputs: the corpus plus the repository's own files of that kind.

use pbr_engine::inventory::Inventory;
use pbr_engine::template::{Scope, Templar};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The targets: YAML loading, INI and YAML inventories, templating, the playbook loader.
pub const TARGETS: &[&str] = &["yaml", "inventory_ini", "inventory_yaml", "template", "playbook"];

/// A target that fails on purpose (not in [`TARGETS`]): the harness's own test.
pub const SELFTEST: &str = "selftest";

/// The repository root (the fuzz crate's parent directory).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

/// The regression corpus of a target: every file in it is run by `cargo test`.
pub fn corpus_dir(target: &str) -> PathBuf {
    repo_root().join("fuzz").join("corpus").join(target)
}

/// Make this process safe for untrusted templates (no command lookups). Idempotent.
pub fn harden() {
    pbr_engine::template::disable_command_lookups();
}

/// A scratch directory for targets that read files (one per process, reused).
fn scratch() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::Builder::new().prefix("pbr-fuzz-").tempdir().expect("a temp dir")).path()
}

/// Run one input through `target`. Panics are the bugs this looks for; an unknown target
/// name is an error.
pub fn run(target: &str, data: &[u8]) -> Result<(), String> {
    harden();
    match target {
        "yaml" => yaml(data),
        "inventory_ini" => inventory(data, "hosts.ini"),
        "inventory_yaml" => inventory(data, "hosts.yml"),
        "template" => template(data),
        "playbook" => playbook(data),
        // proves the harness: an input with `panic` panics, one with `abort` aborts
        SELFTEST => {
            if data.windows(5).any(|w| w == b"abort") {
                std::process::abort();
            }
            assert!(!data.windows(5).any(|w| w == b"panic"), "selftest: the input asked for a panic");
        }
        other => return Err(format!("unknown fuzz target `{other}` (known: {})", TARGETS.join(", "))),
    }
    Ok(())
}

fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

fn yaml(data: &[u8]) {
    match pbr_engine::yaml::load_str("fuzz.yml", &text(data)) {
        Ok(docs) => {
            for d in &docs {
                let _ = d.to_value();
                let _ = d.type_name();
            }
        }
        Err(d) => {
            let _ = d.render(false);
        }
    }
}

/// Write the input as an inventory file (the bytes as they are, invalid UTF-8 included) and
/// load it, then ask it what a run asks: host patterns, variables, groups.
fn inventory(data: &[u8], name: &str) {
    let dir = scratch().join("inv");
    let _ = std::fs::remove_dir_all(&dir);
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    let path = dir.join(name);
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let inv = match Inventory::load(&[path]) {
        Ok(inv) => inv,
        Err(d) => {
            let _ = d.render(false);
            return;
        }
    };
    for pattern in ["all", "*", "ungrouped", "all:!ungrouped", "~.*", "all[0]", "all[1:]"] {
        let _ = inv.select(pattern);
    }
    let hosts: Vec<String> = inv.hosts.keys().take(50).cloned().collect();
    for h in &hosts {
        let _ = inv.host_vars(h);
        let _ = inv.group_names(h);
        let _ = inv.select(h);
    }
    let _ = inv.limit(&hosts, "all:&ungrouped");
    let _ = inv.groups_map();
    let _ = inv.to_list_json();
    let _ = inv.graph(None);
}

fn template_vars() -> minijinja::Value {
    minijinja::Value::from(minijinja::value::Serde(serde_json::json!({
        "inventory_hostname": "h1",
        "s": "a string with 'quotes' and ünïcödé",
        "n": 42,
        "f": 2.5,
        "b": true,
        "none": null,
        "l": [1, "two", [3], {"k": "v"}],
        "d": {"a": 1, "b": {"c": [1, 2]}, "yes": "no"},
        "ip": "192.0.2.10/24",
        "groups": {"all": ["h1", "h2"], "web": ["h1"]},
        "hostvars": {"h1": {"x": 1}, "h2": {"x": 2}},
    })))
}

/// Work a template may do here: far more than any real template needs, little enough that a
/// runaway one (nested `range(99999)` loops) stops within a second or so.
pub const TEMPLATE_FUEL: u64 = 1_000_000;

fn bounded_templar() -> Templar {
    let mut t = Templar::new();
    t.set_fuel(Some(TEMPLATE_FUEL));
    t
}

fn template(data: &[u8]) {
    static T: OnceLock<Templar> = OnceLock::new();
    let t = T.get_or_init(bounded_templar);
    let vars = template_vars();
    let scope = Scope { vars: &vars, search: &[] };
    let s = text(data);
    let _ = t.render_text(&s, &scope);
    let _ = t.render_str(&s, &scope);
    let _ = t.eval_expr(&s, &scope);
    let _ = t.eval_bool(&s, &scope);
    let _ = t.referenced_vars(&s);
}

/// Load the input as a playbook (imports and roles resolve beside it) and run the preflight
/// checks on it, as `pbr run` does before touching a host.
fn playbook(data: &[u8]) {
    static REG: OnceLock<pbr_engine::Registry> = OnceLock::new();
    let registry = REG.get_or_init(|| pbr_engine::Registry::with(pbr_modules::register));
    let dir = scratch().join("pb");
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("site.yml");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let is_module = |n: &str| registry.contains(n);
    let mut loader = pbr_engine::playbook::Loader::new(&is_module);
    let pb = match loader.load_playbook(&path) {
        Ok(pb) => pb,
        Err(d) => {
            let _ = pbr_lint::with_module_hint(d, registry).render(false);
            return;
        }
    };
    // the errors of the tasks left out render too (and the rest is analyzed, as lint does)
    for d in std::mem::take(&mut loader.recovered) {
        let _ = pbr_lint::with_module_hint(d, registry).render(false);
    }
    let inv = Inventory::load(&[]).unwrap_or_default();
    static T: OnceLock<Templar> = OnceLock::new();
    let templar = T.get_or_init(bounded_templar);
    for d in pbr_lint::check(std::slice::from_ref(&pb), &inv, registry, templar) {
        let _ = d.render(false);
    }
}

/// Files under `dir` (recursively, skipping `target/` and hidden dirs) whose name `want`s.
fn files_under(dir: &Path, want: &dyn Fn(&Path) -> bool, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') || name == "target" {
            continue;
        }
        if p.is_dir() {
            files_under(&p, want, out);
        } else if want(&p) {
            out.push(p);
        }
    }
}

fn ext_is(p: &Path, exts: &[&str]) -> bool {
    p.extension().and_then(|e| e.to_str()).is_some_and(|e| exts.contains(&e))
}

/// The corpus files of a target (sorted).
pub fn corpus_files(target: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    files_under(&corpus_dir(target), &|_| true, &mut out);
    out
}

/// The starting inputs of a target: its corpus, then the repository's files of that kind
/// (playbooks, inventories, templates, the lint corpus), at most 64 KiB each. Corpus files
/// named `big-*` are left out: they are valid but costly (a range of 59 049 hosts, a loop that
/// runs out of fuel), and mutations of them (the same hosts with 16 KiB of variables each) are
/// slow by nature, not by a bug; `cargo test` still runs them (each within 10 s).
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    if target == SELFTEST {
        return vec![std::env::var("PBR_FUZZ_SELFTEST").unwrap_or_default().into_bytes()];
    }
    let root = repo_root();
    let mut files: Vec<PathBuf> = corpus_files(target)
        .into_iter()
        .filter(|f| !f.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("big-")))
        .collect();
    let yaml = |p: &Path| ext_is(p, &["yml", "yaml"]);
    let dirs = ["tests", "playbooks", "inventory", "benches"];
    for d in dirs {
        let d = root.join(d);
        match target {
            "yaml" | "playbook" | "inventory_yaml" => files_under(&d, &yaml, &mut files),
            "inventory_ini" => files_under(
                &d,
                &|p: &Path| ext_is(p, &["ini"]) || p.file_name().is_some_and(|n| n == "hosts" || n == "inventory"),
                &mut files,
            ),
            "template" => files_under(&d, &|p: &Path| ext_is(p, &["j2"]), &mut files),
            _ => {}
        }
    }
    let mut out: Vec<Vec<u8>> =
        files.iter().filter_map(|f| std::fs::read(f).ok()).filter(|d| d.len() <= 64 * 1024).collect();
    if target == "template" {
        // template expressions from the YAML files
        let mut ymls = Vec::new();
        for d in dirs {
            files_under(&root.join(d), &yaml, &mut ymls);
        }
        for f in ymls {
            let Ok(t) = std::fs::read_to_string(&f) else { continue };
            for line in t.lines().filter(|l| l.contains("{{") || l.contains("{%")) {
                let v = line.split_once(": ").map(|(_, v)| v).unwrap_or(line).trim().trim_matches('"');
                out.push(v.as_bytes().to_vec());
            }
        }
    }
    if out.is_empty() {
        out.push(Vec::new());
    }
    out.sort();
    out.dedup();
    out
}

/// Tokens that mean something to a target's grammar, inserted by the mutator.
pub fn dictionary(target: &str) -> &'static [&'static str] {
    const YAML: &[&str] = &[
        "- ",
        ": ",
        "\n",
        "\n  ",
        "\n- ",
        "{",
        "}",
        "[",
        "]",
        ",",
        "#",
        "'",
        "\"",
        "|",
        "|-",
        ">",
        ">+",
        "&a ",
        "*a",
        "<<: ",
        "<<: *a",
        "!!str ",
        "!!binary ",
        "!!int ",
        "!!map ",
        "!vault |",
        "!unsafe ",
        "? ",
        "---\n",
        "...\n",
        "%YAML 1.1\n",
        "%TAG ! tag:x,2000:\n",
        "0644",
        "0o17",
        "0x1F",
        "yes",
        "off",
        "~",
        "null",
        ".inf",
        "-.nan",
        "1e400",
        "9223372036854775808",
        "2001-12-14",
        "\t",
        "\r\n",
        "\u{feff}",
        "\\u0000",
        "\\x",
        "é",
        "\u{85}",
        "{{ x }}",
        "{% if %}",
    ];
    const INI: &[&str] = &[
        "[",
        "]",
        "[all]\n",
        "[g:children]\n",
        "[g:vars]\n",
        "[all:vars]\n",
        ":children",
        ":vars",
        "=",
        " = ",
        "\n",
        "h[1:3]",
        "h[a:c]",
        "h[01:10:2]",
        "[1:]",
        "[:",
        "ansible_host=",
        "ansible_port=",
        "ansible_port=99999",
        "ansible_user=",
        "'",
        "\"",
        "#",
        ";",
        "\\",
        " ",
        "\t",
        "{'a': [1, 2]}",
        "[1, 2",
        "True",
        "None",
        "0x10",
        "1e5",
        "-",
        "é",
        "\u{feff}",
        "\r\n",
        "localhost",
        "h1:2222",
        "[::1]:22",
    ];
    const TEMPLATE: &[&str] = &[
        "{{",
        "}}",
        "{%",
        "%}",
        "{#",
        "#}",
        "{{ s }}",
        "{{ l }}",
        "{{ d }}",
        "|",
        "(",
        ")",
        "[",
        "]",
        ".",
        ",",
        "'",
        "\"",
        "~",
        "+",
        "*",
        "**",
        "//",
        "%",
        " if ",
        " else ",
        " is ",
        " not ",
        " in ",
        "for x in l",
        "endfor",
        "range(",
        "default(",
        "d(",
        "int",
        "float",
        "bool",
        "string",
        "list",
        "dict",
        "join(",
        "split(",
        "replace(",
        "regex_replace(",
        "regex_search(",
        "regex_findall(",
        "combine(",
        "to_json",
        "to_nice_json",
        "to_yaml",
        "to_nice_yaml",
        "from_json",
        "from_yaml",
        "b64encode",
        "b64decode",
        "hash(",
        "password_hash(",
        "ternary(",
        "ipaddr",
        "ipv4",
        "version(",
        "match(",
        "search(",
        "quote",
        "basename",
        "dirname",
        "splitext",
        "mandatory",
        "selectattr(",
        "map(",
        "select(",
        "reject(",
        "sum",
        "min",
        "max",
        "unique",
        "flatten",
        "zip",
        "product",
        "lookup(",
        "query(",
        "'file'",
        "'env'",
        "'vars'",
        "'first_found'",
        "'fileglob'",
        "'dict'",
        "'items'",
        "'template'",
        "'pipe'",
        "hostvars",
        "groups",
        "inventory_hostname",
        "omit",
        "undefined",
        "none",
        "true",
        "9999999999999999999",
        "-1",
        "1e308",
        "é",
        "\u{0}",
        "\n",
        "{%- ",
        " -%}",
        "{% set x = ",
        "{% raw %}",
        "{% endraw %}",
        "{% macro m() %}",
        "{% endmacro %}",
        "loop.index",
        "namespace(",
        "strftime(",
        "to_datetime(",
        "format(",
        "%s",
        "%d",
        "center(",
        "indent(",
        "wordwrap(",
        "truncate(",
        "batch(",
        "slice(",
    ];
    const PLAYBOOK: &[&str] = &[
        "- hosts: all\n",
        "  tasks:\n",
        "    - ",
        "name: ",
        "block:",
        "rescue:",
        "always:",
        "when: ",
        "loop: ",
        "with_items: ",
        "with_dict: ",
        "with_sequence: ",
        "loop_control:",
        "register: ",
        "notify: ",
        "handlers:",
        "listen: ",
        "roles:",
        "- role: ",
        "import_playbook: ",
        "import_tasks: ",
        "include_tasks: ",
        "include_role:",
        "import_role:",
        "vars_files:",
        "vars:",
        "become: ",
        "become_user: ",
        "delegate_to: ",
        "serial: ",
        "strategy: free",
        "tags: ",
        "until: ",
        "retries: ",
        "delay: ",
        "changed_when: ",
        "failed_when: ",
        "ignore_errors: ",
        "no_log: ",
        "environment:",
        "args:",
        "copy: ",
        "file: ",
        "template: ",
        "command: ",
        "shell: ",
        "lineinfile: ",
        "debug: ",
        "assert:",
        "set_fact:",
        "meta: flush_handlers",
        "reboot:",
        "pause:",
        "src=",
        "dest=",
        "state=",
        "mode=",
        "{{ item }}",
        "- ",
        ": ",
        "\n",
        "\n  ",
        "{",
        "}",
        "[",
        "]",
        "&a ",
        "*a",
        "<<: *a",
        "!vault |",
        "../",
        "/",
        "site.yml",
        "~",
    ];
    match target {
        "yaml" | "inventory_yaml" => YAML,
        "inventory_ini" => INI,
        "template" => TEMPLATE,
        "playbook" => PLAYBOOK,
        _ => YAML,
    }
}

/// A small, fast, seedable PRNG (SplitMix64).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// Mutates inputs of one target: bit flips, byte and token insertions, deletions,
/// duplications (deep nesting, long lines), splices with other seeds.
pub struct Mutator {
    pub rng: Rng,
    dict: &'static [&'static str],
    /// The biggest input it makes.
    pub max_len: usize,
}

const INTERESTING: &[u8] = b"{}[]:-#'\"|>&*!%@`=,?\n\t\r \\/.~0189aZ\x00\x7f\xff\xc3\xa9";

impl Mutator {
    pub fn new(target: &str, seed: u64) -> Mutator {
        Mutator { rng: Rng::new(seed), dict: dictionary(target), max_len: 16 * 1024 }
    }

    /// A new input from `base` (and sometimes `other`), after 1 to 8 mutations.
    pub fn mutate(&mut self, base: &[u8], other: &[u8]) -> Vec<u8> {
        let mut d = base.to_vec();
        let rounds = 1 + self.rng.below(8);
        for _ in 0..rounds {
            self.mutate_once(&mut d, other);
        }
        d.truncate(self.max_len);
        d
    }

    fn pos(&mut self, d: &[u8]) -> usize {
        self.rng.below(d.len() + 1)
    }

    fn mutate_once(&mut self, d: &mut Vec<u8>, other: &[u8]) {
        match self.rng.below(11) {
            0 if !d.is_empty() => {
                let i = self.rng.below(d.len());
                d[i] ^= 1 << self.rng.below(8);
            }
            1 if !d.is_empty() => {
                let i = self.rng.below(d.len());
                d[i] = INTERESTING[self.rng.below(INTERESTING.len())];
            }
            2 => {
                let i = self.pos(d);
                d.insert(i, INTERESTING[self.rng.below(INTERESTING.len())]);
            }
            3 | 4 => {
                let tok = self.dict[self.rng.below(self.dict.len())].as_bytes();
                let i = self.pos(d);
                d.splice(i..i, tok.iter().copied());
            }
            5 if !d.is_empty() => {
                let a = self.rng.below(d.len());
                let n = 1 + self.rng.below((d.len() - a).min(64));
                d.drain(a..a + n);
            }
            6 if !d.is_empty() => {
                // repeat a short chunk many times: deep nesting, long lines
                let a = self.rng.below(d.len());
                let n = 1 + self.rng.below((d.len() - a).min(8));
                let chunk = d[a..a + n].to_vec();
                let most = if self.rng.below(8) == 0 { 4000 } else { 16 };
                let times = 1 + self.rng.below(most);
                let rep: Vec<u8> = chunk.iter().copied().cycle().take(n * times).collect();
                d.splice(a..a, rep);
            }
            7 if !other.is_empty() => {
                // splice: a piece of another input
                let a = self.rng.below(other.len());
                let n = 1 + self.rng.below((other.len() - a).min(256));
                let i = self.pos(d);
                d.splice(i..i, other[a..a + n].iter().copied());
            }
            8 if !d.is_empty() => {
                let n = self.rng.below(d.len());
                d.truncate(n);
            }
            9 if d.len() > 1 => {
                // swap two lines' worth of bytes
                let a = self.rng.below(d.len());
                let b = self.rng.below(d.len());
                d.swap(a, b);
            }
            _ => {
                let tok = self.dict[self.rng.below(self.dict.len())].as_bytes();
                let i = self.pos(d);
                let n = self.rng.below(1 + (d.len() - i).min(16));
                d.splice(i..i + n, tok.iter().copied());
            }
        }
    }
}

/// A short stable name for an input (FNV-1a, hex), for crash files.
pub fn input_name(data: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}
