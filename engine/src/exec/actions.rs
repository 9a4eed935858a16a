//! The engine's own actions (`debug`, `assert`, `set_fact`, `fail`, `include_vars`, `ping`,
//! `pause`, `setup`, `group_by`, `add_host`, `validate_argument_spec`; `reboot` and
//! `wait_for_connection` are in reboot.rs), run by the executor. Their params types, docs and
//! names are in verbs.rs, where the registry, lint and `pbr doc` read them.

use super::*;

/// The most seconds a param may say (about 31 years): deadlines computed from it stay in range.
const MAX_SECS: f64 = 1e9;

/// A number of seconds (0 to [`MAX_SECS`]) from a rendered param, `default` when it is absent.
pub(super) fn secs(args: &Value, key: &str, default: f64) -> Result<f64, Fail> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => number(v)
            .filter(|s| (0.0..=MAX_SECS).contains(s))
            .ok_or_else(|| Fail::new(format!("{key} must be a number from 0 to {MAX_SECS} (not negative), got {v}"))),
    }
}

impl Runner<'_> {
    /// An action's params rendered (`omit` dropped) and checked against its typed params
    /// (exec/verbs.rs: the check lint makes before the run).
    pub(super) fn action_args(
        &self,
        action: &str,
        task: &Task,
        args: &Value,
        scope: &Scope<'_>,
    ) -> Result<Value, Fail> {
        let args = drop_omit(self.templar.render_value(args, scope).map_err(|e| terr(task, e))?);
        match self.registry.get(action).map(|v| v.check_params(&args)) {
            Some(Err(e)) => Err(Fail::new(format!("{action}: {e}"))),
            _ => Ok(args),
        }
    }

    pub(super) fn act_set_fact(
        &self,
        task: &Task,
        args: &Value,
        scope: &Scope<'_>,
        st: &mut HostState,
    ) -> Result<ItemOutcome, Fail> {
        let rendered = self.templar.render_value(args, scope).map_err(|e| terr(task, e))?;
        let mut facts = Map::new();
        let mut cacheable = false;
        if let Value::Object(m) = rendered {
            for (k, v) in m {
                if k == "cacheable" {
                    cacheable = match &v {
                        Value::String(s) => crate::params::parse_bool(s).unwrap_or(false),
                        other => truthy(other),
                    };
                } else {
                    // Ansible's set_fact reads these four words as booleans
                    let v = match &v {
                        Value::String(w) => match w.to_ascii_lowercase().as_str() {
                            "true" | "yes" => Value::Bool(true),
                            "false" | "no" => Value::Bool(false),
                            _ => v,
                        },
                        _ => v,
                    };
                    facts.insert(k, v);
                }
            }
        }
        for (k, v) in &facts {
            st.set_facts.insert(k.clone(), v.clone());
        }
        // `cacheable: true`: kept in the fact cache for later runs, as in Ansible
        if cacheable {
            self.cache_facts(&st.name, &facts);
        }
        let mut result = Map::new();
        result.insert("changed".into(), json!(false));
        result.insert("ansible_facts".into(), Value::Object(facts));
        Ok(simple_outcome(&st.name, Status::Ok, None, result))
    }

    pub(super) fn act_group_by(
        &self,
        task: &Task,
        args: &Value,
        scope: &Scope<'_>,
        st: &HostState,
    ) -> Result<ItemOutcome, Fail> {
        let args = self.action_args("group_by", task, args, scope)?;
        let key = args.get("key").map(value_label).unwrap_or_default();
        if key.trim().is_empty() {
            return Err(Fail::new("the 'key' param is required"));
        }
        let key = key.replace(' ', "-");
        let parents: Vec<String> = match args.get("parents") {
            None | Some(Value::Null) => vec!["all".into()],
            Some(Value::Array(a)) => a.iter().map(value_label).map(|p| p.trim().replace(' ', "-")).collect(),
            Some(v) => value_label(v).split(',').map(|p| p.trim().replace(' ', "-")).collect(),
        };
        // changed when the host joined (as Ansible reports it); the inventory is the run's
        let joined = self.group_by(&st.name, &key, &parents);
        let mut result = Map::new();
        result.insert("changed".into(), json!(joined));
        result.insert("add_group".into(), json!(key));
        result.insert("parent_groups".into(), json!(parents));
        let status = if joined { Status::Changed } else { Status::Ok };
        Ok(simple_outcome(&st.name, status, None, result))
    }

    pub(super) fn act_add_host(
        &self,
        task: &Task,
        args: &Value,
        scope: &Scope<'_>,
        st: &HostState,
    ) -> Result<ItemOutcome, Fail> {
        let rendered = self.templar.render_value(args, scope).map_err(|e| terr(task, e))?;
        let Value::Object(mut a) = rendered else { return Err(Fail::new("add_host needs a mapping of args")) };
        if let Some(Value::Object(raw)) = a.remove("_raw_params") {
            for (k, v) in raw {
                a.entry(k).or_insert(v);
            }
        }
        let given = ["name", "hostname", "host"].iter().find_map(|k| a.get(*k)).map(value_label);
        let Some(given) = given.filter(|n| !n.is_empty()) else {
            return Err(Fail::new("name, host or hostname needs to be provided"));
        };
        let groups: Vec<String> = match ["groupname", "groups", "group"].iter().find_map(|k| a.get(*k)) {
            None | Some(Value::Null) => vec![],
            Some(Value::Array(l)) => l.iter().map(value_label).collect(),
            Some(Value::String(s)) => s.split(',').map(|g| g.trim().to_string()).filter(|g| !g.is_empty()).collect(),
            Some(_) => return Err(Fail::new("Groups must be specified as a list.")),
        };
        let mut host_vars = Map::new();
        for (k, v) in &a {
            if !["name", "hostname", "host", "groupname", "groups", "group"].contains(&k.as_str()) {
                host_vars.insert(k.clone(), v.clone());
            }
        }
        // `name:port` (not an IPv6 address)
        let name = match given.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') && !h.is_empty() && p.parse::<u16>().is_ok() => {
                host_vars.insert("ansible_ssh_port".into(), json!(p.parse::<u16>().unwrap_or(22)));
                h.to_string()
            }
            _ => given.trim_start_matches('[').trim_end_matches(']').to_string(),
        };
        let changed = {
            let mut inv = self.inventory.write().unwrap_or_else(|e| e.into_inner());
            let changed = inv.add_runtime_host(&name, &groups, host_vars.clone());
            self.inventory_changed(&inv);
            changed
        };
        let mut result = Map::new();
        result.insert("changed".into(), json!(changed));
        result.insert("add_host".into(), json!({"host_name": name, "groups": groups, "host_vars": host_vars}));
        let status = if changed { Status::Changed } else { Status::Ok };
        Ok(simple_outcome(&st.name, status, None, result))
    }

    pub(super) fn act_fail(&self, task: &Task, args: &Value, scope: &Scope<'_>) -> Result<ItemOutcome, Fail> {
        let args = self.action_args("fail", task, args, scope)?;
        let msg = args.get("msg").map(value_label).unwrap_or_else(|| "Failed as requested from task".into());
        Err(Fail::new(msg))
    }

    pub(super) fn act_include_vars(
        &self,
        task: &Task,
        args: &Value,
        vars: &Map<String, Value>,
        scope: &Scope<'_>,
        st: &mut HostState,
    ) -> Result<ItemOutcome, Fail> {
        let rendered = self.templar.render_value(args, scope).map_err(|e| terr(task, e))?;
        let file = rendered
            .get("file")
            .or_else(|| rendered.get("_raw_params"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        // Ansible's include_vars says why under `message` too
        let fail = |msg: String| {
            let mut data = Map::new();
            data.insert("message".into(), json!(msg));
            Fail { at: None, msg, data, unreachable: false }
        };
        let resolve = |f: &str| task.origin.vars_file(f);
        let files = match rendered.get("dir").and_then(Value::as_str) {
            Some(d) => vars_dir_files(&resolve(d), &rendered).map_err(fail)?,
            None if file.trim().is_empty() => {
                return Err(fail("Could not find file: include_vars was given no file name".into()));
            }
            None => {
                let p = resolve(&file);
                if !p.exists() {
                    return Err(fail(format!("Could not find file {file} (looked for {})", p.display())));
                }
                vec![p]
            }
        };
        let mut m = Map::new();
        for p in &files {
            let one = crate::playbook::load_vars_file(p, task.span).map_err(|d| fail(d.to_string()))?;
            m.extend(one);
        }
        // hash_behaviour: merge: a mapping merges into the variable's current value
        if rendered.get("hash_behaviour").and_then(Value::as_str) == Some("merge") {
            for (k, v) in m.iter_mut() {
                if let Value::Object(new) = v
                    && vars.contains_key(k)
                    && let Ok(Value::Object(mut old)) = self.templar.eval_expr(k, scope)
                {
                    crate::template::merge_recursive(&mut old, new);
                    *v = Value::Object(old);
                }
            }
        }
        let m = match rendered.get("name").and_then(Value::as_str) {
            Some(n) => {
                let mut w = Map::new();
                w.insert(n.to_string(), Value::Object(m));
                w
            }
            None => m,
        };
        for (k, v) in &m {
            st.included_vars.insert(k.clone(), v.clone());
        }
        let mut result = Map::new();
        result.insert("ansible_facts".into(), Value::Object(m));
        let shown: Vec<Value> = files.iter().map(|f| json!(f)).collect();
        result.insert("ansible_included_var_files".into(), Value::from(shown));
        Ok(simple_outcome(&st.name, Status::Ok, None, result))
    }

    pub(super) async fn act_ping(
        &self,
        via: &Via,
        task: &Task,
        args: &Value,
        vars: &Map<String, Value>,
        scope: &Scope<'_>,
        st: &HostState,
    ) -> Result<ItemOutcome, Fail> {
        // Ansible's ping answers `data` (default pong), and fails on purpose for `crash`
        let args = self.action_args("ping", task, args, scope)?;
        let data = args.get("data").filter(|d| !d.is_null()).cloned().unwrap_or(json!("pong"));
        let conn = self.connect(&st.name, vars, via).await.map_err(Fail::from)?;
        let host = Host::new(st.name.clone(), conn, None);
        host.query_sh("true").await.map_err(Fail::from)?;
        if data == json!("crash") {
            return Err(Fail::new("boom"));
        }
        let mut r = Map::new();
        r.insert("ping".into(), data);
        Ok(simple_outcome(&st.name, Status::Ok, None, r))
    }

    pub(super) async fn act_pause(
        &self,
        task: &Task,
        args: &Value,
        scope: &Scope<'_>,
        st: &HostState,
    ) -> Result<ItemOutcome, Fail> {
        let args = self.action_args("pause", task, args, scope)?;
        // as Ansible: `minutes` over `seconds`; neither is a prompt, which pbr never waits on
        let secs = match args.get("minutes").filter(|m| !m.is_null()) {
            Some(_) => secs(&args, "minutes", 0.0)? * 60.0,
            None => secs(&args, "seconds", 0.0)?,
        };
        if !self.opts.check {
            tokio::time::sleep(duration(secs)).await;
        }
        Ok(simple_outcome(&st.name, Status::Ok, None, Map::new()))
    }

    pub(super) async fn act_setup(
        &self,
        via: &Via,
        task: &Task,
        args: &Value,
        vars: &Map<String, Value>,
        scope: &Scope<'_>,
        st: &mut HostState,
    ) -> Result<ItemOutcome, Fail> {
        let args = self.action_args("setup", task, args, scope)?;
        let subset = crate::facts::Subset::parse(args.get("gather_subset")).map_err(Fail::new)?;
        let conn = self.connect(&st.name, vars, via).await.map_err(Fail::from)?;
        let host = Host::new(st.name.clone(), conn, None);
        let facts = crate::facts::gather_subset(&host, subset).await.map_err(Fail::from)?;
        self.take_gathered_facts(st, &facts);
        let mut r = Map::new();
        r.insert("ansible_facts".into(), Value::Object(facts));
        Ok(simple_outcome(&st.name, Status::Ok, None, r))
    }

    pub(super) fn act_debug(
        &self,
        task: &Task,
        args: &Value,
        scope: &Scope,
        st: &HostState,
    ) -> Result<ItemOutcome, Fail> {
        let mut result = Map::new();
        let msg = if let Some(var) = args.get("var").and_then(Value::as_str) {
            let v = match self.templar.eval_expr(var, scope) {
                Ok(v) => v,
                Err(e) if e.undefined.is_some() => json!("VARIABLE IS NOT DEFINED!"),
                Err(e) => return Err(terr(task, e)),
            };
            result.insert(var.to_string(), v.clone());
            format!("{var}: {}", serde_json::to_string_pretty(&v).unwrap_or_default())
        } else {
            let m = args.get("msg").or_else(|| args.get("_raw_params")).cloned().unwrap_or(json!("Hello world!"));
            let v = self.templar.render_value(&m, scope).map_err(|e| terr(task, e))?;
            result.insert("msg".into(), v.clone());
            match v {
                Value::String(s) => s,
                other => serde_json::to_string_pretty(&other).unwrap_or_default(),
            }
        };
        result.insert("changed".into(), json!(false));
        let verbosity = args.get("verbosity").and_then(Value::as_u64).unwrap_or(0);
        if verbosity > self.reporter.verbosity as u64 {
            return Ok(simple_outcome(&st.name, Status::Skipped, None, result));
        }
        Ok(simple_outcome(&st.name, Status::Ok, Some(msg), result))
    }

    /// Each option of the spec takes the variable of its name, if defined, then
    /// `provided_arguments` over it; [`crate::argspec`] checks them.
    pub(super) fn act_validate_argument_spec(
        &self,
        task: &Task,
        args: &Value,
        vars: &Map<String, Value>,
        scope: &Scope,
        st: &HostState,
    ) -> Result<ItemOutcome, Fail> {
        let fail = |msg: String, data: Map<String, Value>| Fail { at: None, msg, data, unreachable: false };
        let spec = match args.get("argument_spec") {
            Some(Value::Object(m)) => m.clone(),
            Some(other) => match self.templar.render_value(other, scope).map_err(|e| terr(task, e))? {
                Value::Object(m) => m,
                v => {
                    return Err(fail(
                        format!("Incorrect type for argument_spec, expected dict and got {v}"),
                        Map::new(),
                    ));
                }
            },
            None => return Err(fail("\"argument_spec\" arg is required in args".into(), Map::new())),
        };
        let mut values = Map::new();
        for name in spec.keys() {
            if vars.contains_key(name) {
                values.insert(name.clone(), self.templar.eval_expr(name, scope).map_err(|e| terr(task, e))?);
            }
        }
        if let Some(p) = args.get("provided_arguments") {
            match self.templar.render_value(p, scope).map_err(|e| terr(task, e))? {
                Value::Object(m) => values.extend(m),
                Value::Null => {}
                v => {
                    return Err(fail(
                        format!("Incorrect type for provided_arguments, expected dict and got {v}"),
                        Map::new(),
                    ));
                }
            }
        }
        let mut result = Map::new();
        if let Some(c) = args.get("validate_args_context") {
            result.insert("validate_args_context".into(), c.clone());
        }
        let errors = crate::argspec::validate(&spec, &values);
        if !errors.is_empty() {
            result.insert("argument_errors".into(), json!(errors));
            result.insert("argument_spec_data".into(), Value::Object(spec));
            return Err(fail(format!("Validation of arguments failed:\n{}", errors.join("\n")), result));
        }
        result.insert("changed".into(), json!(false));
        Ok(simple_outcome(&st.name, Status::Ok, Some("The arg spec validation passed".into()), result))
    }

    pub(super) fn act_assert(
        &self,
        task: &Task,
        args: &Value,
        scope: &Scope,
        st: &HostState,
    ) -> Result<ItemOutcome, Fail> {
        let that: Vec<Value> = match args.get("that") {
            Some(Value::Array(a)) => a.clone(),
            // `that: "{{ list_of_conditions }}"`: the template gives the conditions
            Some(Value::String(s)) if crate::playbook::whole_template(s) => {
                match self.templar.render_value(&Value::String(s.clone()), scope).map_err(|e| terr(task, e))? {
                    Value::Array(a) => a,
                    Value::String(c) => vec![Value::String(c)],
                    v => vec![v],
                }
            }
            Some(other) => vec![other.clone()],
            None => {
                return Err(Fail::new("assert needs `that:`"));
            }
        };
        for c in &that {
            let ok = match c {
                Value::String(s) => self.templar.eval_bool(s, scope).map_err(|e| terr(task, e))?,
                other => truthy(other),
            };
            if !ok {
                let msg = match args.get("fail_msg").or_else(|| args.get("msg")) {
                    Some(m) => {
                        self.templar.render_value(m, scope).map(|v| value_label(&v)).unwrap_or_else(|_| value_label(m))
                    }
                    None => format!("Assertion failed: {}", value_label(c)),
                };
                let mut data = Map::new();
                data.insert("assertion".into(), c.clone());
                return Err(Fail { at: None, msg, data, unreachable: false });
            }
        }
        let quiet = args.get("quiet").is_some_and(truthy);
        let msg = match args.get("success_msg") {
            Some(m) => self.templar.render_value(m, scope).map(|v| value_label(&v)).ok(),
            None if quiet => None,
            None => Some("All assertions passed".into()),
        };
        let mut result = Map::new();
        result.insert("changed".into(), json!(false));
        if let Some(m) = &msg {
            result.insert("msg".into(), json!(m));
        }
        Ok(simple_outcome(&st.name, Status::Ok, msg, result))
    }
}

/// Variables as a template context.
/// The vars files of `include_vars dir:` as Ansible picks them: below `dir` down to `depth` (0:
/// all), names with one of `extensions` (default yaml, yml, json), matching `files_matching`,
/// not in `ignore_files`; sorted within each directory, a directory's files before its
/// subdirectories'.
fn vars_dir_files(dir: &Path, args: &Value) -> Result<Vec<PathBuf>, String> {
    let strs = |k: &str| -> Option<Vec<String>> {
        args.get(k).and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect())
    };
    let exts = strs("extensions").unwrap_or_else(|| vec!["yaml".into(), "yml".into(), "json".into()]);
    let ignore = strs("ignore_files").unwrap_or_default();
    let matching = match args.get("files_matching").and_then(Value::as_str) {
        Some(r) => Some(
            crate::pyre::PyRegex::new(r, crate::pyre::Flags::default())
                .map_err(|e| format!("files_matching {r:?}: {e}"))?,
        ),
        None => None,
    };
    let depth = args.get("depth").and_then(Value::as_u64).unwrap_or(0);
    let ignore_unknown = args.get("ignore_unknown_extensions").is_some_and(truthy);
    if !dir.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    let mut out = vec![];
    let mut stack = vec![(dir.to_path_buf(), 1u64)];
    while let Some((d, level)) = stack.pop() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&d)
            .map_err(|e| format!("cannot read {}: {e}", d.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        let mut subdirs = vec![];
        for p in entries {
            if p.is_dir() {
                if depth == 0 || level < depth {
                    subdirs.push((p, level + 1));
                }
                continue;
            }
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if name.starts_with('.') {
                continue;
            }
            // Python's splitext: no extension is `''` (an allowed one in `extensions: ['']`)
            let ext = p.extension().map(|x| x.to_string_lossy().into_owned()).unwrap_or_default();
            let ext_ok = exts.iter().any(|e| e.trim_start_matches('.') == ext);
            let match_ok = match &matching {
                Some(re) => re.is_match(&name)?,
                None => true,
            };
            // ignore_files are regular expressions matched at the end of the name
            let mut ignored = false;
            for pat in &ignore {
                let re = crate::pyre::PyRegex::new(&format!("{pat}$"), crate::pyre::Flags::default())
                    .map_err(|e| format!("ignore_files {pat:?}: {e}"))?;
                ignored |= re.is_match(&name)?;
            }
            if !match_ok || ignored {
                continue;
            }
            if !ext_ok && !ignore_unknown {
                return Err(format!("{} does not have a valid extension: {}", p.display(), exts.join(", ")));
            }
            if ext_ok {
                out.push(p);
            }
        }
        // depth-first, in sorted order
        stack.extend(subdirs.into_iter().rev());
    }
    Ok(out)
}
