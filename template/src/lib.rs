//! Templating: minijinja with Ansible's rules (undefined is an error, native types for
//! single-expression strings) and Ansible's filters, tests and lookups.
//!
//! Two environments share one configuration: a strict one renders everything, and a chainable
//! one is tried only when the strict one failed on an undefined value in a template that guards
//! against undefined values (`default`, `is defined`, `mandatory`): that is how Ansible lets
//! `a.b.c | default(1)` through while `a.b.c` alone is an error naming `a.b`.

mod checks;
mod crypt;
mod dates;
mod dump;
mod filters;
mod lookups;
pub use lookups::{disable_command_lookups, set_config};
mod pyfmt;
#[cfg(test)]
mod unit_tests;

// what the engine uses of the filters
pub use filters::{expand_user, merge_recursive};
pub use pyfmt::py_str;

use minijinja::value::Serde;
use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior};
use serde_json::Value;
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::PathBuf;

/// The value of `omit`: a parameter rendered to exactly this string is dropped by the engine.
pub const OMIT: &str = "__omit_place_holder__pbr__";

/// Prefix of template names whose name is their own source text.
const INLINE: char = '\u{1}';
/// State temps set by the formatter: the last emitted value and the number of emits.
const TEMP_NATIVE: &str = "__pbr_native";
const TEMP_EMITS: &str = "__pbr_emits";

/// What a template sees: the variables and where relative lookups look.
pub struct Scope<'a> {
    /// The variables (a map), built once per host and task.
    pub vars: &'a minijinja::Value,
    /// Directories for `lookup('file'|'template', ...)`: role dir first, then playbook dir.
    pub search: &'a [PathBuf],
}

/// A template failure. `undefined` names the missing variable when that was the cause.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateError {
    pub message: String,
    pub undefined: Option<String>,
    /// 1-based line within the template text, when known.
    pub line: Option<u32>,
}

impl std::fmt::Display for TemplateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TemplateError {}

/// The template engine, built once per run.
pub struct Templar {
    env: minijinja::Environment<'static>,
    chain: minijinja::Environment<'static>,
    /// Ansible's `ALLOW_BROKEN_CONDITIONALS`: a bare conditional whose value is a string such
    /// as `"false"` is read by Python truthiness (true) instead of refused.
    allow_broken_conditionals: bool,
}

impl Default for Templar {
    fn default() -> Self {
        Templar::new()
    }
}

/// The scope of the render in progress on this thread (lookups read it).
pub(crate) struct Current {
    pub vars: minijinja::Value,
    pub search: Vec<PathBuf>,
}

thread_local! {
    static CURRENT: RefCell<Vec<Current>> = const { RefCell::new(Vec::new()) };
}

struct CurrentGuard;

impl CurrentGuard {
    fn push(scope: &Scope) -> CurrentGuard {
        CURRENT.with(|c| c.borrow_mut().push(Current { vars: scope.vars.clone(), search: scope.search.to_vec() }));
        CurrentGuard
    }
}

impl Drop for CurrentGuard {
    fn drop(&mut self) {
        CURRENT.with(|c| {
            c.borrow_mut().pop();
        });
    }
}

/// Run `f` with the scope of the render in progress (None outside a render).
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&Current>) -> R) -> R {
    CURRENT.with(|c| f(c.borrow().last()))
}

/// The name under which an inline source is cached.
pub(crate) fn inline_name(source: &str) -> String {
    let mut name = String::with_capacity(source.len() + 1);
    name.push(INLINE);
    name.push_str(source);
    name
}

/// Ansible's rule for templates written in YAML: inside `{{ }}`, the backslashes of a string
/// literal are literal (`regex_replace('(a)b', '\1x')` means the backreference `\1`, and YAML
/// has already had its escapes), where Jinja would read `\1` as an octal escape. Each such
/// literal is re-encoded so that the template engine's unescaping gives its raw text back.
/// Blocks (`{% %}`), comments and `{% raw %}` sections are left as they are, as Ansible does.
pub(crate) fn escape_backslashes(src: &str) -> std::borrow::Cow<'_, str> {
    if !src.contains('\\') || !src.contains("{{") {
        return std::borrow::Cow::Borrowed(src);
    }
    let b = src.as_bytes();
    let n = b.len();
    // past the `%}` or `#}` that closes the block opened at `i` (`%}` in a string does not)
    let block_end = |i: usize, close: &[u8]| -> usize {
        let (mut j, mut quote) = (i + 2, None::<u8>);
        while j < n {
            match quote {
                Some(_) if b[j] == b'\\' => j += 1,
                Some(q) if b[j] == q => quote = None,
                Some(_) => {}
                None if close == b"%}" && (b[j] == b'\'' || b[j] == b'"') => quote = Some(b[j]),
                None if b[j..].starts_with(close) => return j + 2,
                None => {}
            }
            j += 1;
        }
        n
    };
    // the word of the `{% %}` block between `i` and `end` (`raw`, `endraw`...)
    let word = |i: usize, end: usize| {
        let inner = String::from_utf8_lossy(&b[i + 2..end.saturating_sub(2).max(i + 2)]).into_owned();
        inner.trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace()).to_string()
    };
    let mut out: Vec<u8> = Vec::with_capacity(n + 8);
    let mut i = 0;
    while i < n {
        let end = if b[i..].starts_with(b"{%") {
            let mut end = block_end(i, b"%}");
            if word(i, end) == "raw" {
                // through the block that ends the raw section
                loop {
                    match b[end..].windows(2).position(|w| w == b"{%") {
                        None => break n,
                        Some(p) => {
                            let e = block_end(end + p, b"%}");
                            if word(end + p, e) == "endraw" {
                                break e;
                            }
                            end = e;
                        }
                    }
                }
            } else {
                end
            }
        } else if b[i..].starts_with(b"{#") {
            block_end(i, b"#}")
        } else if b[i..].starts_with(b"{{") {
            let mut strings = vec![];
            // an unclosed expression is left for the parser to report
            let end = expression_end(b, i, |s, e| strings.push((s, e))).unwrap_or(n);
            let mut from = i;
            for (s, e) in strings {
                out.extend_from_slice(&b[from..s]);
                let q = b[s];
                out.push(q);
                for &x in &b[s + 1..e - 1] {
                    if x == b'\\' || x == q {
                        out.push(b'\\');
                    }
                    out.push(x);
                }
                out.push(q);
                from = e;
            }
            out.extend_from_slice(&b[from..end]);
            i = end;
            continue;
        } else {
            i + 1
        };
        out.extend_from_slice(&b[i..end]);
        i = end;
    }
    // only ASCII was inserted, at ASCII positions
    std::borrow::Cow::Owned(String::from_utf8(out).unwrap_or_else(|_| src.to_string()))
}

/// Past the `}}` that closes the `{{` at `start`, as Jinja's lexer finds it: the first `}}`
/// outside string literals and brackets (`{{ {'a': {'b': 1}} }}`, `{{ '}}' }}`). `on_string`
/// gets the byte range of each string literal, quotes included. `None`: it does not close.
fn expression_end(b: &[u8], start: usize, mut on_string: impl FnMut(usize, usize)) -> Option<usize> {
    let (mut depth, mut i) = (0usize, start + 2);
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"') => {
                let mut j = i + 1;
                while j < b.len() && b[j] != q {
                    j += if b[j] == b'\\' { 2 } else { 1 };
                }
                if j >= b.len() {
                    return None;
                }
                on_string(i, j + 1);
                i = j;
            }
            b'(' | b'[' | b'{' => depth += 1,
            b'}' if depth == 0 && b.get(i + 1) == Some(&b'}') => return Some(i + 2),
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    None
}

/// `x | ansible.builtin.to_json`, `x is ansible.builtin.version(...)`: drop the collection
/// prefix of filters and tests (the same length of text on the same line, so positions hold).
fn strip_fqcn(src: &str) -> std::borrow::Cow<'_, str> {
    if !src.contains("ansible.") {
        return std::borrow::Cow::Borrowed(src);
    }
    static RE: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        regex::Regex::new(r"(\|\s*|\bis\s+(?:not\s+)?)ansible\.(?:builtin|netcommon|utils|_protomatter)\.([A-Za-z_])")
            .ok()
    });
    match re {
        Some(re) => re.replace_all(src, "$1$2"),
        None => std::borrow::Cow::Borrowed(src),
    }
}

fn loader(name: &str) -> Result<Option<String>, Error> {
    if let Some(src) = name.strip_prefix(INLINE) {
        return Ok(Some(strip_fqcn(src).into_owned()));
    }
    // An included file: `join_path` made the name an absolute path when it could.
    let path = std::path::Path::new(name);
    if path.is_absolute() && path.is_file() {
        // an included or imported file loses one trailing newline, as Jinja's default
        // (keep_trailing_newline=False) does it in Ansible
        let strip = |mut t: String| {
            if t.ends_with('\n') {
                t.pop();
            }
            t
        };
        return pbr_syntax::source::read_text(path).map(|t| Some(strip(t))).map_err(|e| match e {
            pbr_syntax::source::ReadError::NotUtf8(_, m) => Error::new(ErrorKind::InvalidOperation, m),
            e => Error::new(ErrorKind::InvalidOperation, format!("cannot read {name}: {e}")),
        });
    }
    Ok(None)
}

fn join_path(name: &str, _parent: &str) -> String {
    if std::path::Path::new(name).is_absolute() {
        return name.to_string();
    }
    // absolute, so that the loader takes it (a playbook run by a relative path has relative
    // search directories)
    with_current(|cur| {
        cur.and_then(|c| lookups::find_in_search(&c.search, "templates", name))
            .map(|p| std::path::absolute(&p).unwrap_or(p).to_string_lossy().into_owned())
            .unwrap_or_else(|| name.to_string())
    })
}

fn formatter(out: &mut minijinja::Output, state: &mut minijinja::State, value: &minijinja::Value) -> Result<(), Error> {
    let emits = state.get_temp(TEMP_EMITS).and_then(|v| v.as_i64()).unwrap_or(0);
    if value.is_undefined() {
        // The strict environment stops plain undefined values before the formatter: what gets
        // here is the silent undefined of `'x' if cond` without `else`, which renders empty.
        if state.undefined_behavior() == UndefinedBehavior::Strict {
            state.set_temp(TEMP_EMITS, minijinja::Value::from(emits + 1));
            state.set_temp(TEMP_NATIVE, minijinja::Value::from(""));
            return Ok(());
        }
        return Err(Error::new(ErrorKind::UndefinedError, "an undefined value was rendered"));
    }
    state.set_temp(TEMP_EMITS, minijinja::Value::from(emits + 1));
    state.set_temp(TEMP_NATIVE, value.clone());
    let mut s = String::new();
    pyfmt::py_str(value, &mut s)?;
    out.write_str(&s).map_err(|e| Error::new(ErrorKind::WriteFailure, e.to_string()))
}

/// Python methods: minijinja-contrib's `pycompat` plus `list.index` and `list.count`.
fn unknown_method(
    state: &mut minijinja::State,
    value: &minijinja::Value,
    method: &str,
    args: &[minijinja::Value],
) -> Result<minijinja::Value, Error> {
    if value.kind() == minijinja::value::ValueKind::Seq
        && let ("index" | "count", [needle]) = (method, args)
    {
        let items: Vec<minijinja::Value> = value.try_iter()?.collect();
        return if method == "count" {
            Ok(minijinja::Value::from(items.iter().filter(|x| *x == needle).count()))
        } else {
            items
                .iter()
                .position(|x| x == needle)
                .map(minijinja::Value::from)
                .ok_or_else(|| Error::new(ErrorKind::InvalidOperation, format!("{needle} is not in list")))
        };
    }
    minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args)
}

/// A variable (a map) the engine sets when some variables are defined through themselves:
/// their names, each with the cycle. A use of one of them names the recursion.
pub const RECURSIVE_VARS: &str = "__pbr_recursive_vars";

/// The default evaluation budget of one render (minijinja's fuel: about one unit per
/// instruction or per 64 bytes of data), so that a runaway template stops with an error
/// rather than running out of memory.
pub const DEFAULT_BUDGET: u64 = 20_000_000;

/// The environment variable that sets the budget (`0`: no limit).
pub const BUDGET_VAR: &str = "PBR_TEMPLATE_BUDGET";

/// The evaluation budget of one render: `PBR_TEMPLATE_BUDGET`, else [`DEFAULT_BUDGET`].
pub fn budget() -> Option<u64> {
    match std::env::var(BUDGET_VAR).ok().and_then(|v| v.trim().parse::<u64>().ok()) {
        Some(0) => None,
        Some(n) => Some(n),
        None => Some(DEFAULT_BUDGET),
    }
}

pub use pbr_core::SyntaxOptions;

/// The syntax options a `template` task's params give (`*_start_string`...; the rest default).
pub fn syntax_from_params(args: &serde_json::Value) -> SyntaxOptions {
    let d = SyntaxOptions::default();
    let s = |k: &str, def: &str| args.get(k).and_then(serde_json::Value::as_str).unwrap_or(def).to_string();
    let b = |k: &str, def: bool| args.get(k).map(truthy).unwrap_or(def);
    SyntaxOptions {
        trim_blocks: b("trim_blocks", d.trim_blocks),
        lstrip_blocks: b("lstrip_blocks", d.lstrip_blocks),
        block: (s("block_start_string", &d.block.0), s("block_end_string", &d.block.1)),
        variable: (s("variable_start_string", &d.variable.0), s("variable_end_string", &d.variable.1)),
        comment: (s("comment_start_string", &d.comment.0), s("comment_end_string", &d.comment.1)),
    }
}

fn syntax_config(o: &SyntaxOptions) -> Result<minijinja::syntax::SyntaxConfig, String> {
    minijinja::syntax::SyntaxConfig::builder()
        .block_delimiters(o.block.0.clone(), o.block.1.clone())
        .variable_delimiters(o.variable.0.clone(), o.variable.1.clone())
        .comment_delimiters(o.comment.0.clone(), o.comment.1.clone())
        .trim_blocks(o.trim_blocks)
        .lstrip_blocks(o.lstrip_blocks)
        .keep_trailing_newline(true)
        .build()
        .map_err(|e| format!("invalid template delimiters: {e}"))
}

fn build_env(behavior: UndefinedBehavior) -> Environment<'static> {
    build_env_with(behavior, &SyntaxOptions::default()).expect("the default syntax is valid")
}

fn build_env_with(behavior: UndefinedBehavior, syntax: &SyntaxOptions) -> Result<Environment<'static>, String> {
    let mut env = Environment::new();
    env.set_fuel(budget());
    env.set_debug(true);
    env.set_undefined_behavior(behavior);
    env.set_syntax(syntax_config(syntax)?);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.set_loader(loader);
    env.set_path_join_callback(|name, parent| std::borrow::Cow::Owned(join_path(name, parent)));
    env.set_formatter(formatter);
    env.set_unknown_method_callback(unknown_method);
    minijinja_contrib::add_to_environment(&mut env);
    filters::register(&mut env);
    checks::register(&mut env);
    lookups::register(&mut env);
    dates::register(&mut env);
    env.add_global("omit", OMIT);
    Ok(env)
}

/// One render's result.
struct Rendered {
    output: String,
    /// The value of the only `{{ }}` when the source is exactly one expression.
    native: Option<minijinja::Value>,
}

/// Does the template guard against undefined values somewhere (worth a chainable retry)?
fn guards_undefined(src: &str) -> bool {
    if src.contains("default") || src.contains("defined") || src.contains("mandatory") {
        return true;
    }
    // `| d(...)`, `|d`
    let b = src.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'|' {
            let mut j = i + 1;
            while j < b.len() && b[j].is_ascii_whitespace() {
                j += 1;
            }
            if j < b.len()
                && b[j] == b'd'
                && (j + 1 == b.len() || !(b[j + 1].is_ascii_alphanumeric() || b[j + 1] == b'_'))
            {
                return true;
            }
        }
        i += 1;
    }
    false
}

/// Is some use of `name` in `src` inside a tag (`{{ }}`, `{% %}`; the whole text when it has
/// none) that guards undefined values (`default`, `d`, `defined`...)? `x | f(y) | default(z)`
/// guards `y` too, where undefined propagates through the filter; `{% for p in y %}` does not.
fn guarded_in_tag(src: &str, name: &str) -> bool {
    src.match_indices(name).any(|(i, _)| {
        let before = &src[..i];
        let word_start = before.chars().next_back().is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '.'));
        let after = &src[i + name.len()..];
        let word_end = after.chars().next().is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        if !(word_start && word_end) {
            return false;
        }
        let open = before.rfind("{{").into_iter().chain(before.rfind("{%")).max();
        let close = [after.find("}}"), after.find("%}")].into_iter().flatten().min();
        let tag = match (open, close) {
            (Some(o), Some(c)) => &src[o..i + name.len() + c],
            _ => src,
        };
        guards_undefined(tag)
    })
}

/// Is every use of `name` in `src` followed by `| default`, `| d`, `| mandatory` or
/// `is [not] defined/undefined` (possibly after more attribute lookups)?
fn always_guarded(src: &str, name: &str) -> bool {
    let mut found = false;
    for (i, _) in src.match_indices(name) {
        let before_ok = src[..i].chars().next_back().is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '.'));
        if !before_ok {
            continue;
        }
        found = true;
        let rest = &src[i + name.len()..];
        // Skip further `.attr` / `['key']` lookups.
        let rest = rest.trim_start_matches(|c: char| c.is_alphanumeric() || c == '_' || c == '.');
        let rest = rest.trim_start();
        let guarded = if let Some(r) = rest.strip_prefix('|') {
            let r = r.trim_start();
            r.starts_with("default")
                || r.starts_with("mandatory")
                || (r.starts_with('d') && !r[1..].starts_with(|c: char| c.is_alphanumeric() || c == '_'))
        } else if let Some(r) = rest.strip_prefix("is") {
            let r = r.trim_start();
            let r = r.strip_prefix("not").map(str::trim_start).unwrap_or(r);
            r.starts_with("defined") || r.starts_with("undefined")
        } else {
            false
        };
        if !guarded {
            return false;
        }
    }
    found
}

/// Is `src` one `{{ ... }}` and nothing else? (`{{ '{{' }} x }}` is an expression and text.)
fn single_expression(src: &str) -> bool {
    src.starts_with("{{") && expression_end(src.as_bytes(), 0, |_, _| {}) == Some(src.len())
}

impl Templar {
    pub fn new() -> Templar {
        Templar {
            env: build_env(UndefinedBehavior::Strict),
            chain: build_env(UndefinedBehavior::Chainable),
            allow_broken_conditionals: false,
        }
    }

    /// Ansible's `ALLOW_BROKEN_CONDITIONALS` (see [`Self::eval_bool`]).
    pub fn set_allow_broken_conditionals(&mut self, on: bool) {
        self.allow_broken_conditionals = on;
    }

    /// Bound every render to `fuel` units of work (about one per instruction; `None`: no
    /// bound, the default, as in Ansible). The fuzzer sets one so that a legitimately huge
    /// computation (`range(99999)` nested in itself) ends with an error instead of running on.
    pub fn set_fuel(&mut self, fuel: Option<u64>) {
        self.env.set_fuel(fuel);
        self.chain.set_fuel(fuel);
    }

    /// Does the string contain template syntax (`{{`, `{%`, `{#`)?
    pub fn is_template(s: &str) -> bool {
        pbr_syntax::is_template(s)
    }

    fn run_in(env: &Environment<'static>, src: &str, scope: &Scope) -> Result<Rendered, Error> {
        let tmpl = env.get_template(&inline_name(src))?;
        let _guard = CurrentGuard::push(scope);
        let captured = tmpl.render_captured(scope.vars.clone())?;
        let emits = captured.state().get_temp(TEMP_EMITS).and_then(|v| v.as_i64()).unwrap_or(0);
        // One emitted value and no other text (`{{ x }}`, `{% if c %}{{ x }}{% endif %}`): native.
        let native = match (emits, captured.state().get_temp(TEMP_NATIVE)) {
            (1, Some(v)) if single_expression(src) || pyfmt::to_py_str(&v).is_ok_and(|s| s == captured.output()) => {
                Some(v)
            }
            _ => None,
        };
        Ok(Rendered { output: captured.into_output(), native })
    }

    fn run(&self, src: &str, scope: &Scope) -> Result<Rendered, TemplateError> {
        match Self::run_in(&self.env, src, scope) {
            Ok(r) => Ok(r),
            Err(err) => {
                // the chainable pass is for a guarded value (`x.y | default(z)`); an undefined
                // value the template does not guard fails, wherever else it guards another
                // (`{% for p in missing %}` iterates nothing in a chainable pass)
                let unguarded = backticked_undefined(err.detail().unwrap_or(""))
                    .or_else(|| self.convert_err(&err, src, Some(scope)).undefined)
                    // (by its variable: the error may name `list_var[1]` for `list_var.1.x`)
                    .is_some_and(|n| !guarded_in_tag(src, n.split(['[', '.']).next().unwrap_or(&n)));
                if is_undefined_error(&err) && guards_undefined(src) && !unguarded {
                    match Self::run_in(&self.chain, src, scope) {
                        Ok(r) => return Ok(r),
                        Err(e2)
                            if is_undefined_error(&e2) && backticked_undefined(e2.detail().unwrap_or("")).is_none() =>
                        {
                            // The chainable pass failed on a value the template does not guard:
                            // name that one rather than the guarded one the strict pass met first.
                            if let Some(name) = self.guess_undefined(src, scope, true) {
                                let mut te = self.convert_err(&e2, src, Some(scope));
                                if te.undefined.is_none() || te.message.starts_with('\'') {
                                    te.message = format!("'{name}' is undefined");
                                }
                                te.undefined = Some(name);
                                return Err(te);
                            }
                        }
                        Err(_) => {}
                    }
                }
                Err(self.convert_err(&err, src, Some(scope)))
            }
        }
    }

    /// Render a string value. A string that is exactly one `{{ expr }}` yields the expression's
    /// native value (list, dict, int, bool); anything else yields a string. Non-templates are
    /// returned unchanged.
    ///
    /// The string comes from YAML (task args, variables), so a backslash in a string literal
    /// inside `{{ }}` is literal, as Ansible reads it (see [`escape_backslashes`]).
    pub fn render_str(&self, s: &str, scope: &Scope) -> Result<Value, TemplateError> {
        if !Self::is_template(s) {
            return Ok(Value::String(s.to_string()));
        }
        let r = self.run(&escape_backslashes(s), scope)?;
        match r.native {
            Some(v) => to_json(&v),
            // text that a string filter made (`to_nice_json`...) stays text, as in Ansible
            None if ends_in_string_filter(s) => Ok(Value::String(r.output)),
            None => Ok(literal_container(&r.output).unwrap_or(Value::String(r.output))),
        }
    }

    /// Render a template text to a string (the `template` module, `lookup('template')`).
    /// [`Self::render_text`] with other syntax options than Ansible's defaults (the
    /// `template` module's `trim_blocks`, `lstrip_blocks`, `*_start_string`...).
    pub fn render_text_with(&self, s: &str, scope: &Scope, o: &SyntaxOptions) -> Result<String, TemplateError> {
        if *o == SyntaxOptions::default() {
            return self.render_text(s, scope);
        }
        let err = |m: String| TemplateError { message: m, undefined: None, line: None };
        let t = Templar {
            env: build_env_with(UndefinedBehavior::Strict, o).map_err(err)?,
            chain: build_env_with(UndefinedBehavior::Chainable, o).map_err(err)?,
            allow_broken_conditionals: self.allow_broken_conditionals,
        };
        Ok(t.run(s, scope)?.output)
    }

    pub fn render_text(&self, s: &str, scope: &Scope) -> Result<String, TemplateError> {
        if !Self::is_template(s) {
            return Ok(s.to_string());
        }
        Ok(self.run(s, scope)?.output)
    }

    /// Render every string inside a value (maps, lists), keeping types elsewhere.
    pub fn render_value(&self, v: &Value, scope: &Scope) -> Result<Value, TemplateError> {
        Ok(match v {
            Value::String(s) => self.render_str(s, scope)?,
            Value::Array(a) => Value::Array(a.iter().map(|x| self.render_value(x, scope)).collect::<Result<_, _>>()?),
            Value::Object(m) => {
                let mut out = serde_json::Map::with_capacity(m.len());
                for (k, x) in m {
                    let key = if Self::is_template(k) {
                        match self.render_str(k, scope)? {
                            Value::String(s) => s,
                            other => other.to_string(),
                        }
                    } else {
                        k.clone()
                    };
                    out.insert(key, self.render_value(x, scope)?);
                }
                Value::Object(out)
            }
            other => other.clone(),
        })
    }

    fn expr_source(expr: &str) -> String {
        let t = expr.trim();
        if single_expression(t) && !t[2..t.len() - 2].contains("{{") { t.to_string() } else { format!("{{{{ {t} }}}}") }
    }

    /// Evaluate a bare expression (`when:`, `failed_when:`, `that:`; `{{ }}` also accepted)
    /// to Ansible truthiness.
    ///
    /// A bare expression whose value is a false word in a string (`when: flag` with
    /// `flag: "false"`, as `-e flag=false` gives) is where Ansible versions disagree: 2.18 and
    /// older run the task (a non-empty string is true), 2.19 refuses the conditional. pbr refuses
    /// it too, naming the fix, unless `ALLOW_BROKEN_CONDITIONALS` is set, which gives the
    /// old reading. (Other strings keep Python truthiness, where the versions that accept them
    /// agree.) A whole-template conditional (`when: "{{ flag }}"`) renders to the
    /// expression `false`, which both versions read as false, and so does pbr.
    pub fn eval_bool(&self, expr: &str, scope: &Scope) -> Result<bool, TemplateError> {
        let t = expr.trim();
        // `!unsafe` (kept in a raw block) is data, never code: not an expression to evaluate
        if t.starts_with("{% raw %}") {
            return Err(TemplateError {
                message: "Conditional is marked as unsafe, and cannot be evaluated (an untrusted template or \
                          expression: `!unsafe` text is never evaluated)"
                    .into(),
                undefined: None,
                line: None,
            });
        }
        // a template inside an expression (`'x' in '{{ list | join(" ") }}'`): rendered first,
        // then the result evaluated, as Ansible does with such conditionals
        if Self::embedded_template(t) {
            let rendered = self.render_text(t, scope)?;
            return Ok(truthy(&self.eval_expr(&rendered, scope)?));
        }
        let v = self.eval_expr(expr, scope)?;
        if let Value::String(s) = &v
            && !single_expression(t)
            && !s.is_empty()
            && filters::bool_word(s) == Some(false)
        {
            if self.allow_broken_conditionals {
                // a non-empty string is true, as Ansible 2.18 reads it
                return Ok(true);
            }
            return Err(TemplateError {
                message: format!(
                    "the conditional `{t}` has the string value {s:?}, not a boolean: Ansible 2.19 refuses it \
                     and Ansible 2.18 and older read it as true (a non-empty string). Write `{t} | bool` to \
                     read the word as a boolean, or set ANSIBLE_ALLOW_BROKEN_CONDITIONALS=1 for the old reading"
                ),
                undefined: None,
                line: None,
            });
        }
        Ok(truthy(&v))
    }

    /// Evaluate a bare expression to a value (`debug: var=`, `loop: "{{ x }}"` stripped).
    pub fn eval_expr(&self, expr: &str, scope: &Scope) -> Result<Value, TemplateError> {
        let t = expr.trim();
        if t.is_empty() {
            return Err(TemplateError { message: "empty expression".into(), undefined: None, line: None });
        }
        let src = Self::expr_source(t);
        let r = self.run(&src, scope)?;
        match r.native {
            Some(v) => to_json(&v),
            None => Ok(Value::String(r.output)),
        }
    }

    /// Variables a template string refers to, excluding globals, filters, tests and names it
    /// sets itself (for lint).
    pub fn referenced_vars(&self, s: &str) -> Result<BTreeSet<String>, TemplateError> {
        if !Self::is_template(s) {
            return Ok(BTreeSet::new());
        }
        let tmpl = self.env.get_template(&inline_name(s)).map_err(|e| self.convert_err(&e, s, None))?;
        Ok(self.without_globals(tmpl.undeclared_variables(false)))
    }

    /// [`Self::referenced_vars`] of a template file read with other delimiters.
    pub fn referenced_vars_with(&self, s: &str, o: &SyntaxOptions) -> Result<BTreeSet<String>, TemplateError> {
        if *o == SyntaxOptions::default() {
            return self.referenced_vars(s);
        }
        let err = |m: String| TemplateError { message: m, undefined: None, line: None };
        let env = build_env_with(UndefinedBehavior::Strict, o).map_err(err)?;
        let tmpl = env.get_template(&inline_name(s)).map_err(|e| self.convert_err(&e, s, None))?;
        Ok(self.without_globals(tmpl.undeclared_variables(false)))
    }

    /// Same for a bare expression.
    pub fn referenced_vars_expr(&self, expr: &str) -> Result<BTreeSet<String>, TemplateError> {
        if Self::embedded_template(expr) {
            return self.referenced_vars(expr.trim());
        }
        let src = Self::expr_source(expr);
        self.referenced_vars(&src)
    }

    /// An expression with templates inside it (`{{ n }} == 2`), rendered before it is evaluated.
    fn embedded_template(expr: &str) -> bool {
        let t = expr.trim();
        t.contains("{{") && (!single_expression(t) || t[2..t.len() - 2].contains("{{"))
    }

    fn without_globals(&self, names: std::collections::HashSet<String>) -> BTreeSet<String> {
        names.into_iter().filter(|n| !self.env.globals().any(|(g, _)| g == n)).collect()
    }

    /// Run a lookup plugin (`with_file`, `with_first_found`... loops): `query(name, *terms)`.
    pub fn lookup(&self, name: &str, terms: &[Value], scope: &Scope) -> Result<Vec<Value>, TemplateError> {
        let _guard = CurrentGuard::push(scope);
        let state = self.env.empty_state();
        let terms: Vec<minijinja::Value> = terms.iter().map(from_json).collect();
        let kwargs = minijinja::value::Kwargs::from_iter(std::iter::empty::<(&str, minijinja::Value)>());
        let out = lookups::run(&state, name, &terms, &kwargs).map_err(|e| self.convert_err(&e, "", None))?;
        out.iter().map(to_json).collect()
    }

    /// Check syntax only.
    pub fn check_syntax(&self, s: &str) -> Result<(), TemplateError> {
        if !Self::is_template(s) {
            return Ok(());
        }
        self.env.get_template(&inline_name(s)).map(|_| ()).map_err(|e| self.convert_err(&e, s, None))
    }

    /// Turn a minijinja error into a [`TemplateError`], naming the undefined variable.
    fn convert_err(&self, err: &Error, src: &str, scope: Option<&Scope>) -> TemplateError {
        let line = err.line().and_then(|l| u32::try_from(l).ok());
        let detail = err.detail().unwrap_or("");
        let mut undefined = backticked_undefined(detail);
        if undefined.is_none()
            && is_undefined_error(err)
            && let Some(scope) = scope
        {
            undefined = self.guess_undefined(src, scope, false);
        }
        let message = match (&undefined, err.kind()) {
            (_, ErrorKind::OutOfFuel) => format!(
                "the template used up its evaluation budget ({} steps) and was stopped; a template \
                 that loops without end or builds huge values does this. If it is meant to do \
                 that much work, raise the budget with {BUDGET_VAR}=N (0: no limit)",
                budget().unwrap_or(0)
            ),
            (Some(name), ErrorKind::UndefinedError) if detail == filters::MANDATORY_MSG => {
                format!("Mandatory variable '{name}' not defined.")
            }
            (Some(name), ErrorKind::UndefinedError)
                if detail.is_empty()
                    || detail.contains("` is undefined")
                    || detail.starts_with("an undefined value") =>
            {
                format!("'{name}' is undefined")
            }
            (_, ErrorKind::UndefinedError) if !detail.is_empty() && !detail.starts_with("an undefined value") => {
                detail.to_string()
            }
            _ => {
                let mut m = err.kind().to_string();
                if !detail.is_empty() {
                    m.push_str(": ");
                    m.push_str(detail);
                }
                let mut source = std::error::Error::source(err);
                while let Some(s) = source {
                    m.push_str(": ");
                    m.push_str(&s.to_string());
                    source = s.source();
                }
                m
            }
        };
        // undefined because it is defined through itself: say so
        let message = match (&undefined, scope) {
            (Some(name), Some(scope)) if err.kind() == ErrorKind::UndefinedError => {
                let top = name.split(['.', '[']).next().unwrap_or(name);
                match scope.vars.get_attr(RECURSIVE_VARS).and_then(|m| m.get_attr(top)) {
                    Ok(why) if !why.is_undefined() => format!("{why}: recursion, not a missing variable"),
                    _ => message,
                }
            }
            _ => message,
        };
        TemplateError { message, undefined, line }
    }

    /// The first variable path the template reads that the variables do not resolve.
    fn guess_undefined(&self, src: &str, scope: &Scope, skip_guarded: bool) -> Option<String> {
        let tmpl = self.env.get_template(&inline_name(src)).ok()?;
        let mut names: Vec<String> = tmpl.undeclared_variables(true).into_iter().collect();
        names.sort_by_key(|n| (src.find(n.as_str()).unwrap_or(usize::MAX), n.clone()));
        for name in names {
            if skip_guarded && always_guarded(src, &name) {
                continue;
            }
            let mut cur = scope.vars.clone();
            let mut path = String::new();
            for part in name.split('.') {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(part);
                match cur.get_attr(part) {
                    Ok(v) if !v.is_undefined() => cur = v,
                    _ => {
                        if self.env.globals().any(|(g, _)| g == path) {
                            break;
                        }
                        return Some(path);
                    }
                }
            }
        }
        None
    }
}

fn is_undefined_error(err: &Error) -> bool {
    err.kind() == ErrorKind::UndefinedError || err.detail().is_some_and(|d| d.contains("` is undefined"))
}

/// `x.y` out of "... `x.y` is undefined ...".
fn backticked_undefined(detail: &str) -> Option<String> {
    let end = detail.find("` is undefined")?;
    let start = detail[..end].rfind('`')?;
    Some(detail[start + 1..end].to_string())
}

/// Does the template's last expression end in one of Ansible's string-type filters (`string`,
/// `to_json`, `to_nice_json`, `to_yaml`, `to_nice_yaml`, `ppretty`, `json`) right before its
/// `}}`, with only space after it? Ansible keeps such a result text, never reading it back as a
/// list or dict.
fn ends_in_string_filter(src: &str) -> bool {
    static RE: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        regex::Regex::new(
            r"\|\s*(?:string|to_json|to_nice_json|to_yaml|to_nice_yaml|ppretty|json)\b(?:\([^}]*\))?\s*\)?\s*\}\}",
        )
        .ok()
    })
    .as_ref()
    // the last expression, with nothing but space after it (`{{ d | to_nice_json }}\n`); a
    // string filter inside a larger literal (`[{"k": {{ v | to_json }}}]`) builds the literal
    .is_some_and(|re| re.find_iter(src).last().is_some_and(|m| src[m.end()..].trim().is_empty()))
}

/// Jinja's native concatenation (which Ansible uses): a rendered text that is a list or dict
/// literal becomes that list or dict (`"[{% for x in l %}{{ x }},{% endfor %}]"`).
fn literal_container(out: &str) -> Option<Value> {
    let t = out.trim_end();
    let looks = (t.starts_with('[') && t.ends_with(']')) || (t.starts_with('{') && t.ends_with('}'));
    if !looks {
        return None;
    }
    if let Ok(v) = serde_json::from_str::<Value>(t) {
        return Some(v);
    }
    // Python literals (single quotes, True/False/None, trailing commas) as `ast.literal_eval`
    // reads them: `[[], globals()]` is no literal and stays text
    let v = pbr_syntax::pylit::parse_value(t);
    matches!(v, Value::Array(_) | Value::Object(_)).then_some(v)
}

pub(crate) fn to_json(v: &minijinja::Value) -> Result<Value, TemplateError> {
    serde_json::to_value(v).map_err(|e| TemplateError {
        message: format!("cannot convert the template result: {e}"),
        undefined: None,
        line: None,
    })
}

pub fn from_json(v: &Value) -> minijinja::Value {
    minijinja::Value::from(Serde(v))
}

/// Ansible's reading of a conditional's result: booleans as is, bool words in strings
/// (`yes`, `false`...) as booleans, everything else by Python truthiness.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => match filters::bool_word(s) {
            Some(b) => b,
            None => !s.is_empty(),
        },
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

/// Ansible's `sequence` (`with_sequence`, `lookup('sequence', ...)`): `start=1 end=5 stride=1
/// format=%d`, or `count=N` instead of `end`, or the short form `[start-]end[/stride][:format]`.
/// At most 100,000 items.
pub fn sequence(spec: &str) -> Result<Vec<String>, String> {
    let spec = spec.trim();
    let (mut start, mut end, mut stride, mut count, mut fmt) = (1i64, None, 1i64, None, "%d".to_string());
    let num = |k: &str, v: &str| -> Result<i64, String> {
        let v = v.trim();
        let parsed = if let Some(h) = v.strip_prefix("0x") {
            i64::from_str_radix(h, 16)
        } else if let Some(o) = v.strip_prefix("0o") {
            i64::from_str_radix(o, 8)
        } else {
            v.parse()
        };
        parsed.map_err(|_| format!("sequence: can't parse {k}={v}"))
    };
    if spec.contains('=') {
        let (kv, _) = pbr_syntax::kv::parse_kv(spec, None);
        for (k, v) in &kv {
            let v = v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
            match k.as_str() {
                "start" => start = num(k, &v)?,
                "end" => end = Some(num(k, &v)?),
                "stride" => stride = num(k, &v)?,
                "count" => count = Some(num(k, &v)?),
                "format" => fmt = v,
                other => return Err(format!("sequence: unrecognized arguments to with_sequence: {other}")),
            }
        }
    } else if !spec.is_empty() {
        // [start-]end[/stride][:format]
        let (rest, f) = spec.split_once(':').map(|(a, b)| (a, Some(b))).unwrap_or((spec, None));
        let (range, st) = rest.split_once('/').map(|(a, b)| (a, Some(b))).unwrap_or((rest, None));
        match range.split_once('-') {
            Some((a, b)) => {
                start = num("start", a)?;
                end = Some(num("end", b)?);
            }
            None => end = Some(num("end", range)?),
        }
        if let Some(s) = st {
            stride = num("stride", s)?;
        }
        if let Some(f) = f {
            fmt = f.to_string();
        }
    }
    let end = match (end, count) {
        (Some(_), Some(_)) => return Err("sequence: can't specify both count and end".into()),
        (Some(e), None) => e,
        (None, Some(c)) if c <= 0 => return Ok(vec![]),
        (None, Some(c)) => start + (c - 1) * stride,
        (None, None) => return Err("sequence: must specify count or end".into()),
    };
    if stride == 0 {
        return Err("sequence: stride must not be 0".into());
    }
    if (stride > 0 && end < start) || (stride < 0 && end > start) {
        return Err("sequence: to count backwards make stride negative".into());
    }
    let mut out = vec![];
    let mut i = start;
    while (stride > 0 && i <= end) || (stride < 0 && i >= end) {
        if out.len() >= 100_000 {
            return Err("sequence: more than 100000 items".into());
        }
        out.push(pyfmt::format_int(&fmt, i));
        i += stride;
    }
    Ok(out)
}

#[cfg(test)]
mod literal_tests {
    use super::*;

    #[test]
    fn rendered_container_literals_become_values() {
        assert_eq!(literal_container("[1, 2]"), Some(serde_json::json!([1, 2])));
        assert_eq!(literal_container("[ {'a': 'x'}, ]"), Some(serde_json::json!([{"a": "x"}])));
        assert_eq!(literal_container("{\"k\": [true]}\n"), Some(serde_json::json!({"k": [true]})));
        assert_eq!(literal_container("[not, closed"), None);
        assert_eq!(literal_container("plain text"), None);
    }
}
