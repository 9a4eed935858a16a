//! Every module of this crate documents every param, and its examples are valid tasks for it.

use serde_json::{Map, Value};

const MINE: &[&str] = &[
    "blockinfile",
    "command",
    "shell",
    "copy",
    "file",
    "lineinfile",
    "package",
    "replace",
    "stat",
    "systemd",
    "template",
    "group",
    "user",
    "mount",
    "unarchive",
    "rootfs",
];

const TASK_KEYS: &[&str] = &["name", "register", "when", "args", "become", "loop", "notify", "tags", "changed_when"];

#[test]
fn every_param_has_a_description() {
    let reg = pbr_engine::Registry::with(pbr_modules::register);
    for name in MINE {
        let m = reg.get(name).unwrap_or_else(|| panic!("{name} not registered"));
        let schema = serde_json::to_value(m.schema()).unwrap();
        let props = schema["properties"].as_object().unwrap_or_else(|| panic!("{name}: no properties"));
        for (k, v) in props {
            let d = v.get("description").and_then(Value::as_str).unwrap_or("");
            assert!(!d.trim().is_empty(), "{name}.{k} has no description");
        }
    }
}

#[test]
fn examples_are_valid_tasks() {
    let reg = pbr_engine::Registry::with(pbr_modules::register);
    for name in MINE {
        let m = reg.get(name).unwrap();
        let doc = m.doc();
        let docs = pbr_engine::yaml::load_str(&format!("{name} examples"), doc.examples)
            .unwrap_or_else(|e| panic!("{name}: examples do not parse: {e:?}"));
        let tasks = docs.first().map(|d| d.to_value()).unwrap_or(Value::Null);
        let tasks = tasks.as_array().unwrap_or_else(|| panic!("{name}: examples are not a task list"));
        assert!(!tasks.is_empty());
        for t in tasks {
            let t = t.as_object().unwrap();
            let mut module = None;
            for (k, v) in t {
                if TASK_KEYS.contains(&k.as_str()) {
                    continue;
                }
                assert!(module.is_none(), "{name}: two module keys in {t:?}");
                module = Some((k.clone(), v.clone()));
            }
            let (mk, mv) = module.unwrap_or_else(|| panic!("{name}: no module in {t:?}"));
            if ["debug", "assert", "set_fact", "fail"].contains(&mk.as_str()) {
                // engine actions, not modules of this crate
                continue;
            }
            let target = reg.get(&mk).unwrap_or_else(|| panic!("{name}: unknown module {mk}"));
            let mut params = match mv {
                Value::String(s) => {
                    let mut m = Map::new();
                    m.insert("_raw_params".into(), Value::String(s));
                    m
                }
                Value::Object(o) => o,
                other => panic!("{name}: params {other}"),
            };
            if let Some(Value::Object(args)) = t.get("args") {
                params.extend(args.clone());
            }
            if let Err(e) = target.check_params(&Value::Object(params.clone())) {
                panic!("{name}: example task {params:?} is invalid: {}", e.message);
            }
        }
    }
}
