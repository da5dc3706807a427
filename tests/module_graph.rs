//! The house rule "no import cycle between top-level modules", checked on the source text:
//! every file under `src/` is read, its `crate::<module>` references (comments, strings and
//! `#[cfg(test)]` modules left out) become edges between top-level modules (a file or folder
//! directly under `src/`), and the test fails naming each cycle it finds. `super::` paths stay
//! inside their module and are ignored; `main.rs` and `lib.rs` are the roots, not modules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to: `src/db/models/x.rs` → `db`, `src/auth.rs` → `auth`.
fn top_module(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (name != "main" && name != "lib").then(|| name.to_owned())
}

/// The text with comments, string and char literals blanked out (lifetimes survive).
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 0;
                while i < b.len() {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                out.push(' ');
            }
            b'r' if raw_string_start(b, i).is_some() => {
                let (hashes, body) = raw_string_start(b, i).unwrap_or((0, i));
                let close: Vec<u8> = std::iter::once(b'"')
                    .chain(std::iter::repeat_n(b'#', hashes))
                    .collect();
                i = body;
                while i < b.len() && !b[i..].starts_with(&close) {
                    i += 1;
                }
                i += close.len();
                out.push_str("\"\"");
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                out.push_str("\"\"");
            }
            b'\'' if b.get(i + 1) == Some(&b'\\') => {
                i += 2;
                while i < b.len() && b[i] != b'\'' {
                    i += 1;
                }
                i += 1;
                out.push_str("' '");
            }
            b'\'' if char_literal_len(&text[i + 1..]).is_some() => {
                i += 1 + char_literal_len(&text[i + 1..]).unwrap_or(0);
                out.push_str("' '");
            }
            _ => {
                let ch = text[i..].chars().next().unwrap_or(' ');
                out.push(ch);
                i += ch.len_utf8();
            }
        }
    }
    out
}

/// `r"…"`, `r#"…"#`, `br"…"`: the number of hashes and where the body starts.
fn raw_string_start(b: &[u8], i: usize) -> Option<(usize, usize)> {
    let prev_is_ident = i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
    if prev_is_ident && !(b[i - 1] == b'b' && (i < 2 || !b[i - 2].is_ascii_alphanumeric())) {
        return None;
    }
    let mut j = i + 1;
    while b.get(j) == Some(&b'#') {
        j += 1;
    }
    (b.get(j) == Some(&b'"')).then_some((j - i - 1, j + 1))
}

/// For text just after a `'`: the length of a one-character literal's rest (`x'`), or None
/// for a lifetime or label.
fn char_literal_len(rest: &str) -> Option<usize> {
    let mut chars = rest.chars();
    let c = chars.next()?;
    (chars.next() == Some('\'')).then(|| c.len_utf8() + 1)
}

/// Drops `#[cfg(test)] mod name { … }` blocks.
fn without_test_modules(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "#[cfg(test)]".len()..];
        let trimmed = after.trim_start();
        let is_inline_mod = trimmed.starts_with("mod ")
            && trimmed
                .find(['{', ';'])
                .is_some_and(|p| trimmed.as_bytes()[p] == b'{');
        if !is_inline_mod {
            rest = after;
            continue;
        }
        let open = after.find('{').unwrap_or(0);
        let mut depth = 0;
        let mut end = after.len();
        for (k, c) in after[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + k + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The top-level modules a piece of code names as `crate::x` or `crate::{x, y::z}`.
fn crate_references(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let before_ok = at == 0 || {
            let p = code.as_bytes()[at - 1];
            !(p.is_ascii_alphanumeric() || p == b'_')
        };
        if !before_ok {
            continue;
        }
        let rest = code[at + "crate::".len()..].trim_start();
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut start = true;
            for (k, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if start && !c.is_whitespace() => {
                        found.insert(ident_at(&group[k..]).to_owned());
                        start = false;
                    }
                    _ => {}
                }
            }
        } else {
            found.insert(ident_at(rest).to_owned());
        }
    }
    found.retain(|m| !m.is_empty() && m != "self");
    found
}

fn module_graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeSet<String> = files.iter().filter_map(|f| top_module(&src, f)).collect();
    let mut graph = Graph::new();
    for file in &files {
        let Some(from) = top_module(&src, file) else {
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let code = without_test_modules(&code_only(&text));
        let edges = graph.entry(from.clone()).or_default();
        for to in crate_references(&code) {
            if to != from && modules.contains(&to) {
                edges.insert(to);
            }
        }
    }
    graph
}

/// One cycle per strongly connected component of more than one module (Tarjan's algorithm).
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    struct Tarjan<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        components: Vec<Vec<&'g str>>,
    }
    impl<'g> Tarjan<'g> {
        fn visit(&mut self, v: &'g str) {
            let i = self.index.len();
            self.index.insert(v, i);
            self.low.insert(v, i);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.graph.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(lw);
                } else if self.on_stack.contains(w) {
                    let iw = self.index[w];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    self.components.push(component);
                }
            }
        }
    }
    let mut t = Tarjan {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        components: Vec::new(),
    };
    for v in graph.keys() {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v);
        }
    }
    t.components.iter().map(|c| one_cycle(graph, c)).collect()
}

/// A concrete cycle through a component: from its first module back to it (breadth first).
fn one_cycle(graph: &Graph, component: &[&str]) -> Vec<String> {
    let members: BTreeSet<&str> = component.iter().copied().collect();
    let start = *members.iter().next().expect("non-empty component");
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for w in graph.get(v).into_iter().flatten() {
            let w = w.as_str();
            if w == start {
                let mut path = vec![start.to_owned()];
                let mut at = v;
                while at != start {
                    path.push(at.to_owned());
                    at = came_from[at];
                }
                path.push(start.to_owned());
                path.reverse();
                return path;
            }
            if members.contains(w) && !came_from.contains_key(w) {
                came_from.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    component.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn top_level_modules_import_each_other_without_cycles() {
    let graph = module_graph();
    assert!(graph.len() > 5, "the source tree was not found: {graph:?}");
    let found = cycles(&graph);
    let described: Vec<String> = found.iter().map(|c| c.join(" → ")).collect();
    // Each line is one cycle of a knot; every module of the knot is on some cycle through it.
    assert!(
        found.is_empty(),
        "import cycles between top-level modules of src/:\n  {}\n(edges: {graph:#?})",
        described.join("\n  ")
    );
}

/// Storage is called and calls no one: `db` may use only these leaves.
const DB_MAY_IMPORT: [&str; 4] = ["ids", "metrics", "money", "time"];
/// Code that runs outside a request is given its components, never the handlers' `AppState`.
const NOT_GIVEN_THE_STATE: [&str; 8] = [
    "actors",
    "auth",
    "cluster",
    "db",
    "lightning",
    "notify",
    "wallet",
    "api",
];

#[test]
fn storage_imports_only_leaves_and_services_do_not_take_the_state() {
    let graph = module_graph();
    let db = graph.get("db").cloned().unwrap_or_default();
    let extra: Vec<&String> = db
        .iter()
        .filter(|m| !DB_MAY_IMPORT.contains(&m.as_str()))
        .collect();
    assert!(
        extra.is_empty(),
        "db imports {extra:?}; it may import only {DB_MAY_IMPORT:?}"
    );
    let metrics = graph.get("metrics").cloned().unwrap_or_default();
    assert!(
        metrics.is_empty(),
        "metrics imports {metrics:?}; it must stay a leaf that storage may call"
    );
    for module in NOT_GIVEN_THE_STATE {
        let imports_state = graph.get(module).is_some_and(|e| e.contains("state"));
        assert!(
            !imports_state,
            "{module} imports crate::state; give it its components instead"
        );
    }
}

#[test]
fn the_reader_sees_code_not_comments_or_strings() {
    let code = code_only(
        "use crate::a; // crate::b\n/* crate::c */ let s = \"crate::d\"; let r = r#\"crate::e\"#;\n\
         fn f<'x>(c: char) -> bool { c == '\"' && crate::f::g() }",
    );
    let refs = crate_references(&code);
    assert_eq!(refs, BTreeSet::from(["a".to_owned(), "f".to_owned()]));
    let grouped = crate_references("use crate::{db::{self, Pool}, money::Micros, ids};");
    assert_eq!(
        grouped,
        BTreeSet::from(["db".to_owned(), "ids".to_owned(), "money".to_owned()])
    );
    let tests_dropped = without_test_modules(
        "use crate::a;\n#[cfg(test)]\nmod tests { use crate::b; fn x() {} }\n",
    );
    assert_eq!(
        crate_references(&tests_dropped),
        BTreeSet::from(["a".to_owned()])
    );
}

#[test]
fn a_cycle_is_named() {
    let mut g = Graph::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    g.entry("c".into()).or_default().insert("a".into());
    g.entry("c".into()).or_default().insert("d".into());
    let found = cycles(&g);
    assert_eq!(found, vec![vec!["a", "b", "c", "a"]]);
}
