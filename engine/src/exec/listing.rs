//! `pbr run --list-hosts`, `--list-tasks` and `--list-tags`: what a run would reach, in
//! ansible-playbook's layout, without connecting to anything.

use super::*;
use std::collections::BTreeSet;
use std::fmt::Write;

/// What to list.
#[derive(Debug, Clone, Copy, Default)]
pub struct Listing {
    pub hosts: bool,
    pub tasks: bool,
    pub tags: bool,
}

impl Runner<'_> {
    /// Each play's hosts (with `--limit`), its tasks (with `--tags`/`--skip-tags`) and their tags.
    /// Tags written as templates are listed as written.
    pub fn listing(&self, playbooks: &[Playbook], what: Listing) -> Result<String, Diag> {
        let mut out = String::new();
        for pb in playbooks {
            let _ = writeln!(out, "\nplaybook: {}", pb.path.display());
            for (i, play) in pb.plays.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "\n  play #{} ({}): {}\tTAGS: [{}]",
                    i + 1,
                    play.hosts,
                    play.name,
                    play.tags.join(", ")
                );
                if what.hosts {
                    let hosts = self.select_hosts(play)?;
                    let _ = writeln!(out, "    pattern: ['{}']\n    hosts ({}):", play.hosts, hosts.len());
                    for h in &hosts {
                        let _ = writeln!(out, "      {h}");
                    }
                }
                if what.tasks || what.tags {
                    let mut lines = vec![];
                    let mut all_tags = BTreeSet::new();
                    for section in [&play.pre_tasks, &play.tasks, &play.post_tasks] {
                        self.list_tasks(section, &play.tags, &mut lines, &mut all_tags);
                    }
                    if what.tasks {
                        let _ = writeln!(out, "    tasks:");
                        for l in &lines {
                            let _ = writeln!(out, "      {l}");
                        }
                    }
                    if what.tags {
                        let tags: Vec<&str> = all_tags.iter().map(String::as_str).collect();
                        let _ = writeln!(out, "      TASK TAGS: [{}]", tags.join(", "));
                    }
                }
            }
        }
        Ok(out)
    }

    /// The selected tasks of `tasks` (blocks opened), `name\tTAGS: [...]` each.
    fn list_tasks(&self, tasks: &[Task], inherited: &[String], lines: &mut Vec<String>, all: &mut BTreeSet<String>) {
        for task in tasks {
            let mut tags: Vec<String> = inherited.to_vec();
            tags.extend(task.tags.iter().cloned());
            match &task.action {
                Action::Block { block, rescue, always } => {
                    for part in [block, rescue, always] {
                        self.list_tasks(part, &tags, lines, all);
                    }
                }
                Action::Meta(_) => {}
                _ if self.tags_select(&tags, task) => {
                    let own: BTreeSet<&String> = tags.iter().collect();
                    let shown: Vec<&str> = own.iter().map(|t| t.as_str()).collect();
                    lines.push(format!("{}\tTAGS: [{}]", task.display_name(), shown.join(", ")));
                    all.extend(tags);
                }
                _ => {}
            }
        }
    }
}
