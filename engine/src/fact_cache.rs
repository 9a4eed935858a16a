//! Ansible's `jsonfile` fact cache: the facts a run gathered, and those `set_fact` marked
//! `cacheable`, kept per host in a directory so that a later run starts with them.
//!
//! The files are Ansible's: one per host, named `<prefix><host>`, holding a JSON object of
//! the host's facts under their variable names (`ansible_distribution`, or a `set_fact` key).
//! A file older than the timeout is ignored (0: never). pbr reads what ansible-playbook wrote
//! and the other way round.

use serde_json::{Map, Value};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

#[derive(Debug, Clone)]
pub struct FactCache {
    pub dir: PathBuf,
    pub prefix: String,
    /// Seconds a host's file stays valid; 0: forever.
    pub timeout: u64,
}

impl FactCache {
    /// A cache in `dir` (`~` expanded).
    pub fn new(dir: &str, prefix: String, timeout: u64) -> FactCache {
        FactCache { dir: PathBuf::from(crate::template::expand_user(dir)), prefix, timeout }
    }

    fn path(&self, host: &str) -> PathBuf {
        self.dir.join(format!("{}{host}", self.prefix))
    }

    /// The cached facts of a host: empty when there is no file or it expired.
    pub fn load(&self, host: &str) -> Result<Map<String, Value>, String> {
        let p = self.path(host);
        let meta = match std::fs::metadata(&p) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Map::new()),
            Err(e) => return Err(format!("fact cache {}: {e}", p.display())),
        };
        if self.timeout > 0 {
            let age = meta.modified().ok().and_then(|m| SystemTime::now().duration_since(m).ok());
            if age.is_some_and(|a| a > Duration::from_secs(self.timeout)) {
                return Ok(Map::new());
            }
        }
        let text = std::fs::read_to_string(&p).map_err(|e| format!("fact cache {}: {e}", p.display()))?;
        match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => Err(format!("fact cache {}: not a JSON object", p.display())),
            Err(e) => Err(format!("fact cache {}: {e}", p.display())),
        }
    }

    /// Add `facts` to a host's cached facts (written to a temporary file, then renamed).
    pub fn store(&self, host: &str, facts: &Map<String, Value>) -> Result<(), String> {
        if facts.is_empty() {
            return Ok(());
        }
        let mut all = self.load(host).unwrap_or_default();
        all.extend(facts.iter().map(|(k, v)| (k.clone(), v.clone())));
        std::fs::create_dir_all(&self.dir).map_err(|e| format!("fact cache {}: {e}", self.dir.display()))?;
        let p = self.path(host);
        let text = serde_json::to_string_pretty(&Value::Object(all)).unwrap_or_default();
        let tmp = self.dir.join(format!(".{}{host}.pbr-tmp", self.prefix));
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &p))
            .map_err(|e| format!("fact cache {}: {e}", p.display()))
    }

    /// Forget a host's cached facts (`--flush-cache`).
    pub fn flush(&self, host: &str) -> Result<(), String> {
        match std::fs::remove_file(self.path(host)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(format!("fact cache {}: {e}", self.path(host).display()))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stores_merges_expires_and_flushes() {
        let dir = tempfile::tempdir().unwrap();
        let c = FactCache { dir: dir.path().join("cache"), prefix: String::new(), timeout: 0 };
        assert!(c.load("h1").unwrap().is_empty());
        let m = |v: Value| v.as_object().cloned().unwrap();
        c.store("h1", &m(json!({"ansible_os_family": "Debian"}))).unwrap();
        c.store("h1", &m(json!({"mine": 1}))).unwrap();
        assert_eq!(Value::Object(c.load("h1").unwrap()), json!({"ansible_os_family": "Debian", "mine": 1}));
        // a file ansible-playbook wrote (sort_keys, indent 4) reads the same
        std::fs::write(dir.path().join("cache/h2"), "{\n    \"x\": [1, 2]\n}").unwrap();
        assert_eq!(Value::Object(c.load("h2").unwrap()), json!({"x": [1, 2]}));
        std::fs::write(dir.path().join("cache/h3"), "[1]").unwrap();
        assert!(c.load("h3").is_err());
        c.flush("h1").unwrap();
        c.flush("h1").unwrap();
        assert!(c.load("h1").unwrap().is_empty());
        // an expired file is ignored
        let old = FactCache { timeout: 1, ..c.clone() };
        let f = std::fs::File::options().write(true).open(dir.path().join("cache/h2")).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(60)).unwrap();
        assert!(old.load("h2").unwrap().is_empty());
        assert!(!c.load("h2").unwrap().is_empty());
    }
}
