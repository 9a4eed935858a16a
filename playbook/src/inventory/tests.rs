use super::*;
use serde_json::json;
use std::fs;

fn write(dir: &Path, rel: &str, text: &str) -> PathBuf {
    let p = dir.join(rel);
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(&p, text).unwrap();
    p
}

const INI: &str = "\
# a comment
; another
bastion ansible_host=10.0.0.1

[pis]
pi[1:3] ansible_user=pi
pi[01:02]:2222
node-[a:c]
even[0:6:2]

[pis:vars]
ntp = 'pool.ntp.org'
count=3
flag=True
plain=hello world

[web]
www1 port=8080 name=\"a b\" quoted=\"'5'\"  # trailing comment
www2

[prod:children]
web
db

[db]
db1

[all:vars]
site=main
";

fn ini_inventory() -> (tempfile::TempDir, Inventory) {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "hosts", INI);
    let inv = Inventory::load(&[p]).unwrap();
    (dir, inv)
}

#[test]
fn ini_ranges_vars_children() {
    let (_d, inv) = ini_inventory();
    let names: Vec<&str> = inv.hosts.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "bastion", "pi1", "pi2", "pi3", "pi01", "pi02", "node-a", "node-b", "node-c", "even0", "even2", "even4",
            "even6", "www1", "www2", "db1"
        ]
    );
    assert_eq!(inv.groups["ungrouped"].hosts, ["bastion"]);
    assert_eq!(inv.groups["prod"].children, ["web", "db"]);
    assert_eq!(inv.groups["all"].children, ["ungrouped", "pis", "prod"]);
    assert_eq!(inv.hosts["pi01"].vars["ansible_port"], json!(2222));
    let v = inv.host_vars("pi2");
    assert_eq!(v["ansible_user"], json!("pi"));
    assert_eq!(v["ntp"], json!("pool.ntp.org"));
    assert_eq!(v["count"], json!(3));
    assert_eq!(v["flag"], json!(true));
    assert_eq!(v["plain"], json!("hello world"));
    assert_eq!(v["site"], json!("main"));
    let w = inv.host_vars("www1");
    assert_eq!(w["port"], json!(8080));
    assert_eq!(w["name"], json!("a b"));
    assert_eq!(w["quoted"], json!("5"));
    assert!(!w.contains_key("ntp"));
    assert_eq!(inv.group_names("www1"), ["prod", "web"]);
    assert_eq!(inv.group_names("bastion"), ["ungrouped"]);
    assert!(inv.duplicates.is_empty());
}

#[test]
fn ini_duplicate_in_same_group_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "hosts.ini", "[web]\nw1\nw2\nw1 x=1\n[db]\nw1\n");
    let inv = Inventory::load(&[p]).unwrap();
    assert_eq!(inv.groups["web"].hosts, ["w1", "w2"]);
    assert_eq!(inv.duplicates.len(), 1);
    let (name, first, second) = &inv.duplicates[0];
    assert_eq!(name, "w1");
    assert_eq!(first.line_col(), Some((2, 1)));
    assert_eq!(second.line_col(), Some((4, 1)));
    assert_eq!(inv.hosts["w1"].vars["x"], json!(1));
}

fn load_err(text: &str) -> Diag {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "inv.ini", text);
    match Inventory::load(&[p]) {
        Ok(_) => panic!("expected an error for {text:?}"),
        Err(e) => e,
    }
}

#[test]
fn ini_errors_have_locations() {
    let e = load_err("[web]\nw1\n  [db\nd1\n");
    assert_eq!(e.code, "inventory");
    assert_eq!(e.span.line_col(), Some((3, 3)));
    assert!(e.message.contains("unterminated section"), "{}", e.message);
    assert!(e.span.location().ends_with("inv.ini:3:3"), "{}", e.span.location());

    let e = load_err("[web]\nok1\nweb pi[3:1] x=1\n");
    assert_eq!(e.span.line_col(), Some((3, 5)));
    assert!(e.message.contains("expected key=value"), "{}", e.message);
    let e = load_err("[web]\nok1\n  pi[3:1] x=1\n");
    assert_eq!(e.span.line_col(), Some((3, 3)));
    assert!(e.message.contains("starts after it ends"), "{}", e.message);

    let e = load_err("[web]\nw1 novalue\n");
    assert_eq!(e.span.line_col(), Some((2, 4)));
    let e = load_err("[web:things]\n");
    assert!(e.message.contains("unknown type"));
    let e = load_err("[p:children]\nnothere\n");
    assert!(e.message.contains("undefined group 'nothere'"), "{}", e.message);
    assert_eq!(e.span.line_col(), Some((2, 1)));
    let e = load_err("[ghost:vars]\na=1\n");
    assert!(e.message.contains("not defined"));
    let e = load_err("[web]\nw1 a=\"unclosed\n");
    assert!(e.message.contains("no closing quotation"));
    let e = load_err("[a:children]\nb\n[b:children]\na\n");
    assert!(e.message.contains("loop"), "{}", e.message);
    let e = load_err("[web]\npi[01:9]\n");
    assert!(e.message.contains("same number of digits"));
}

#[test]
fn ini_children_declared_later_and_vars_before_group() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "h", "[top:children]\nmid\n[mid:children]\nleaf\n[leaf]\nl1\n[leaf:vars]\nx=1\n");
    let inv = Inventory::load(&[p]).unwrap();
    assert_eq!(inv.groups["top"].children, ["mid"]);
    assert_eq!(inv.groups["mid"].children, ["leaf"]);
    assert_eq!(inv.group_names("l1"), ["leaf", "mid", "top"]);
    assert_eq!(inv.select("top").unwrap(), ["l1"]);
}

#[test]
fn patterns() {
    let (_d, inv) = ini_inventory();
    let s = |p: &str| inv.select(p).unwrap();
    assert_eq!(s("all").len(), 16);
    assert_eq!(s("*").len(), 16);
    assert_eq!(s("www1"), ["www1"]);
    assert_eq!(s("web"), ["www1", "www2"]);
    assert_eq!(s("prod"), ["www1", "www2", "db1"]);
    assert_eq!(s("db:web"), ["db1", "www1", "www2"]);
    assert_eq!(s("db,web"), ["db1", "www1", "www2"]);
    assert_eq!(s("prod:!db"), ["www1", "www2"]);
    assert_eq!(s("!db:prod"), ["www1", "www2"]);
    assert_eq!(s("prod:&web"), ["www1", "www2"]);
    assert_eq!(s("&web"), ["www1", "www2"]);
    // a glob matches the group `pis` too, so all its hosts come in
    assert_eq!(s("pi*").len(), 12);
    assert_eq!(s("pi*:!pi0*:!pis[3:]"), ["pi1", "pi2", "pi3"]);
    assert_eq!(s("www?"), ["www1", "www2"]);
    assert_eq!(s("pi?").len(), 12);
    assert_eq!(s("node-[ab]"), ["node-a", "node-b"]);
    assert_eq!(s("~pi0[12]"), ["pi01", "pi02"]);
    assert_eq!(s("~(www|db)1"), ["www1", "db1"]);
    assert_eq!(s("w*"), ["www1", "www2"]);
    assert_eq!(s("pis[0]"), ["pi1"]);
    assert_eq!(s("pis[-1]"), ["even6"]);
    assert_eq!(s("pis[0:2]"), ["pi1", "pi2", "pi3"]);
    assert_eq!(s("pis[10:]"), ["even4", "even6"]);
    assert_eq!(s("prod[1:2]:web[0]"), ["www2", "db1", "www1"]);
    assert!(s("nothing").is_empty());
    assert!(s("web:&db").is_empty());
    assert!(inv.select("web[5]").is_err());
    assert!(inv.select("~(").is_err());
    assert!(inv.select("web:!").is_err());
    assert!(inv.select("").is_err());
}

#[test]
fn implicit_localhost() {
    let inv = Inventory::load(&[]).unwrap();
    assert!(inv.select("all").unwrap().is_empty());
    assert_eq!(inv.select("localhost").unwrap(), ["localhost"]);
    assert_eq!(inv.select("127.0.0.1").unwrap(), ["127.0.0.1"]);
    assert_eq!(inv.select("localhost:nothere").unwrap(), ["localhost"]);
    assert_eq!(inv.host_vars("localhost")["ansible_connection"], json!("local"));
    assert!(inv.group_names("localhost").is_empty());
    assert!(inv.host_vars("stranger").is_empty());

    let (_d, ini) = ini_inventory();
    assert!(!ini.select("all").unwrap().contains(&"localhost".to_string()));
    assert_eq!(ini.select("web:localhost").unwrap(), ["www1", "www2", "localhost"]);
    assert_eq!(ini.host_vars("localhost")["site"], json!("main"));

    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "h", "localhost ansible_connection=ssh\n");
    let declared = Inventory::load(&[p]).unwrap();
    assert_eq!(declared.select("all").unwrap(), ["localhost"]);
    assert_eq!(declared.host_vars("localhost")["ansible_connection"], json!("ssh"));
}

#[test]
fn limit_with_file() {
    let (d, inv) = ini_inventory();
    let all = inv.select("all").unwrap();
    assert_eq!(inv.limit(&all, "web:db").unwrap(), ["www1", "www2", "db1"]);
    assert_eq!(inv.limit(&all, "prod:!www2").unwrap(), ["www1", "db1"]);
    let retry = write(d.path(), "site.retry", "db1\nwww2\n\n");
    let pat = format!("@{}", retry.display());
    assert_eq!(inv.limit(&all, &pat).unwrap(), ["www2", "db1"]);
    assert!(inv.limit(&all, "@/nonexistent/file.retry").is_err());
    assert_eq!(inv.limit(&["localhost".to_string()], "localhost").unwrap(), ["localhost"]);
}

#[test]
fn comma_list_source() {
    let inv = Inventory::load(&[PathBuf::from("h1,h2:2200,")]).unwrap();
    assert_eq!(inv.select("all").unwrap(), ["h1", "h2"]);
    assert_eq!(inv.groups["ungrouped"].hosts, ["h1", "h2"]);
    assert_eq!(inv.hosts["h2"].vars["ansible_port"], json!(2200));
    assert!(Inventory::load(&[PathBuf::from("/no/such/inventory")]).is_err());
}

#[test]
fn list_json_and_graph() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "h", "solo\n[web]\nw2\nw1 a=1\n[prod:children]\nweb\n[empty]\n");
    let inv = Inventory::load(&[p]).unwrap();
    let j = inv.to_list_json();
    assert_eq!(j["all"], json!({"children": ["empty", "prod", "ungrouped"]}));
    assert_eq!(j["web"], json!({"hosts": ["w1", "w2"]}));
    assert_eq!(j["prod"], json!({"children": ["web"]}));
    assert_eq!(j["ungrouped"], json!({"hosts": ["solo"]}));
    assert!(j.get("empty").is_none());
    assert_eq!(j["_meta"]["hostvars"], json!({"w1": {"a": 1}}));
    assert_eq!(
        inv.graph(None),
        "@all:\n  |--@empty:\n  |--@prod:\n  |  |--@web:\n  |  |  |--w1\n  |  |  |--w2\n  |--@ungrouped:\n  |  |--solo"
    );
    assert_eq!(inv.graph(Some("web")), "@web:\n  |--w1\n  |--w2");
    assert_eq!(inv.graph(Some("nope")), "");
    let groups = inv.groups_map();
    assert_eq!(groups["prod"], json!(["w2", "w1"]));
    assert_eq!(groups["all"], json!(["solo", "w2", "w1"]));
}

const YAML: &str = "\
all:
  hosts:
    bastion:
      ansible_host: 10.0.0.1
  vars:
    site: main
  children:
    pis:
      hosts:
        pi[1:3]:
          ansible_user: pi
        pi[01:02]:2222:
        node-[a:c]: ~
        even[0:6:2]:
      vars:
        ntp: pool.ntp.org
        count: 3
        flag: true
        plain: hello world
    prod:
      children:
        web:
          hosts:
            www1: {port: 8080, name: a b, quoted: '5'}
            www2:
        db:
          hosts: db1
";

#[test]
fn yaml_matches_ini() {
    let (_d, ini) = ini_inventory();
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "hosts.yml", YAML);
    let yaml = Inventory::load(&[p]).unwrap();
    let mut a: Vec<&String> = ini.hosts.keys().collect();
    let mut b: Vec<&String> = yaml.hosts.keys().collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
    for g in ["pis", "web", "db", "prod", "all", "ungrouped"] {
        assert_eq!(ini.group_hosts(g), yaml.group_hosts(g), "group {g}");
    }
    for h in ini.hosts.keys() {
        assert_eq!(ini.host_vars(h), yaml.host_vars(h), "host {h}");
        assert_eq!(ini.group_names(h), yaml.group_names(h), "host {h}");
    }
    assert!(yaml.warnings.is_empty());
    // the same file without an extension is still read as YAML
    let q = write(dir.path(), "noext", YAML);
    let again = Inventory::load(&[q]).unwrap();
    assert_eq!(again.host_vars("pi3"), yaml.host_vars("pi3"));
}

#[test]
fn yaml_errors_and_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "bad.yml", "web:\n  hosts:\n    pi[3:1]:\n");
    let e = Inventory::load(&[p]).unwrap_err();
    assert_eq!(e.span.line_col(), Some((3, 5)), "{e}");
    let p = write(dir.path(), "list.yml", "- a\n- b\n");
    assert!(Inventory::load(&[p]).is_err());
    let p = write(dir.path(), "odd.yml", "web:\n  hosts: {w1: }\n  extra: {x: 1}\n");
    let inv = Inventory::load(&[p]).unwrap();
    assert_eq!(inv.warnings.len(), 1);
    assert_eq!(inv.warnings[0].span.line_col(), Some((3, 3)));
    let p = write(dir.path(), "hv.yml", "web:\n  hosts:\n    w1: [1, 2]\n");
    assert_eq!(Inventory::load(&[p]).unwrap_err().span.line_col(), Some((3, 9)));
}

#[test]
fn directory_source_with_vars_dirs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "inv/01-hosts.ini",
        "[web]\nw1 hv=inline\nw2\n[web:vars]\nlevel=web_inv\n[all:vars]\nlevel=all_inv\nfrom_all=1\n",
    );
    write(d, "inv/02-more.yml", "db:\n  hosts:\n    d1:\n");
    write(d, "inv/README.md", "not an inventory [\n");
    write(d, "inv/old.retry", "w9\n");
    write(d, "inv/.hidden", "[x\n");
    write(d, "inv/group_vars/all.yml", "level: all_file\nall_file: yes\n");
    write(d, "inv/group_vars/web/10-a.yml", "level: web_dir_a\na: 1\n");
    write(d, "inv/group_vars/web/20-b.yaml", "level: web_dir_b\nb: 2\n");
    write(d, "inv/group_vars/web.yml", "ignored: true\n");
    write(d, "inv/group_vars/db", "db_var: plain_file\n");
    write(d, "inv/host_vars/w1.json", "{\"hv\": \"host_vars_file\"}");
    let inv = Inventory::load(&[d.join("inv")]).unwrap();
    assert_eq!(inv.select("all").unwrap(), ["w1", "w2", "d1"]);
    let w1 = inv.host_vars("w1");
    assert_eq!(w1["level"], json!("web_dir_b"));
    assert_eq!(w1["a"], json!(1));
    assert_eq!(w1["b"], json!(2));
    assert_eq!(w1["all_file"], json!(true));
    assert_eq!(w1["from_all"], json!(1));
    assert_eq!(w1["hv"], json!("host_vars_file"));
    assert!(!w1.contains_key("ignored"));
    assert_eq!(inv.host_vars("d1")["db_var"], json!("plain_file"));
    assert_eq!(inv.host_vars("d1")["level"], json!("all_file"));

    // playbook-adjacent files win over inventory-adjacent ones at their level
    write(d, "play/group_vars/all.yml", "all_file: from_play\n");
    write(d, "play/group_vars/web.yml", "b: play_b\n");
    write(d, "play/host_vars/w2.yml", "hv: play_host\n");
    let mut inv = inv;
    inv.add_playbook_dir(&d.join("play")).unwrap();
    let w1 = inv.host_vars("w1");
    assert_eq!(w1["all_file"], json!("from_play"));
    assert_eq!(w1["b"], json!("play_b"));
    assert_eq!(w1["hv"], json!("host_vars_file"));
    assert_eq!(inv.host_vars("w2")["hv"], json!("play_host"));
    // missing dirs are fine
    inv.add_playbook_dir(&d.join("nowhere")).unwrap();

    write(d, "badvars/hosts", "h1\n");
    write(d, "badvars/group_vars/all.yml", "- not\n- a mapping\n");
    let e = Inventory::load(&[d.join("badvars/hosts")]).unwrap_err();
    assert!(e.message.contains("mapping"), "{}", e.message);
    assert_eq!(e.span.line_col(), Some((1, 1)));
}

#[test]
fn precedence_order() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // depth: all(0) < top(1) < mid(2) < leaf(3); same depth by name (a_side < z_side)
    let ini = "\
[leaf]
h1
[mid:children]
leaf
[top:children]
mid
[z_side]
h1
[a_side]
h1
[leaf:vars]
v_leaf=leaf
v_depth=leaf
[mid:vars]
v_depth=mid
v_mid=mid
[top:vars]
v_depth=top
[z_side:vars]
v_side=z
[a_side:vars]
v_side=a
v_depth=a_side
[all:vars]
v_depth=all
v_all=all
v_file=inv_all
";
    let p = write(d, "hosts", ini);
    write(d, "group_vars/top.yml", "v_file: gv_top\nv_leaf: gv_top\n");
    write(d, "group_vars/leaf.yml", "v_file: gv_leaf\n");
    let inv = Inventory::load(&[p]).unwrap();
    let v = inv.host_vars("h1");
    assert_eq!(v["v_depth"], json!("leaf"));
    assert_eq!(v["v_side"], json!("z"));
    assert_eq!(v["v_mid"], json!("mid"));
    assert_eq!(v["v_all"], json!("all"));
    // group_vars files beat every inventory-file group var, deepest group last
    assert_eq!(v["v_file"], json!("gv_leaf"));
    assert_eq!(v["v_leaf"], json!("gv_top"));

    // ansible_group_priority reorders groups of the same depth
    let p2 = write(d, "prio/hosts", "[a]\nh\n[b]\nh\n[a:vars]\nx=a\nansible_group_priority=10\n[b:vars]\nx=b\n");
    assert_eq!(Inventory::load(&[p2]).unwrap().host_vars("h")["x"], json!("a"));
    // host vars beat group_vars files; host_vars files beat host vars
    let p3 = write(d, "hv/hosts", "[g]\nh x=inline\n");
    write(d, "hv/group_vars/g.yml", "x: group_file\ny: group_file\n");
    let inv3 = Inventory::load(std::slice::from_ref(&p3)).unwrap();
    assert_eq!(inv3.host_vars("h")["x"], json!("inline"));
    write(d, "hv/host_vars/h/main.yml", "x: host_file\n");
    let inv3 = Inventory::load(&[p3]).unwrap();
    assert_eq!(inv3.host_vars("h")["x"], json!("host_file"));
    assert_eq!(inv3.host_vars("h")["y"], json!("group_file"));
}
