//! The architecture as ARCHITECTURE.md states it, checked against the code: the modules of
//! each crate in layers, a module importing only from layers below its own (so no import
//! circle exists), each crate root a façade of modules and re-exports, and no comment citing
//! a document the repository does not hold.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the workspace")
        .to_path_buf()
}

/// The layer table of ARCHITECTURE.md: crate → module → layer (1 is the bottom).
fn layer_table() -> BTreeMap<String, BTreeMap<String, usize>> {
    let text = std::fs::read_to_string(workspace().join("ARCHITECTURE.md")).expect("readable");
    let start = text
        .find("```layers\n")
        .expect("ARCHITECTURE.md has a ```layers block")
        + 10;
    let end = start + text[start..].find("```").expect("the block ends");
    let mut table: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    let mut krate = String::new();
    let lines = text[start..end]
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""));
    for line in lines.filter(|l| !l.trim().is_empty()) {
        if !line.starts_with(' ') {
            krate = line.trim().trim_end_matches(':').to_string();
            continue;
        }
        let mut words = line.split_whitespace();
        let layer: usize = (words.next().expect("a layer number").trim_end_matches(':'))
            .parse()
            .expect("a layer number");
        for module in words {
            let before = table
                .entry(krate.clone())
                .or_default()
                .insert(module.into(), layer);
            assert!(before.is_none(), "{krate}::{module} is listed twice");
        }
    }
    table
}

/// The top-level modules of a crate: its `src/*.rs` files (but the root) and `src/*/` folders,
/// each with the source of its files (tests left out: they may use anything).
fn modules(src: &Path) -> BTreeMap<String, String> {
    let mut modules: BTreeMap<String, String> = BTreeMap::new();
    for path in rust_files(src) {
        let relative = path.strip_prefix(src).expect("under src");
        let first = relative.components().next().expect("a file");
        let name = first
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        let file = path.file_name().expect("a file").to_string_lossy();
        if name == "lib" || name == "main" || file == "tests.rs" {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("readable");
        let code = match text.find("#[cfg(test)]\nmod tests {") {
            Some(at) => &text[..at],
            None => &text[..],
        };
        modules
            .entry(name)
            .or_default()
            .push_str(&without_comments(code));
    }
    modules
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("a readable directory") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

fn without_comments(code: &str) -> String {
    code.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first path segment of each item of a `{...}` group (nested groups skipped).
fn group_heads(group: &str) -> Vec<String> {
    let (mut heads, mut depth, mut item) = (Vec::new(), 0, String::new());
    for c in group.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                heads.push(std::mem::take(&mut item));
                continue;
            }
            _ => {}
        }
        item.push(c);
    }
    heads.push(item);
    heads
        .iter()
        .filter_map(|item| {
            let head = item.trim().split([':', ' ', '{']).next()?;
            (!head.is_empty()).then(|| head.to_string())
        })
        .collect()
}

/// The names `crate::` paths in `code` start with.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + 7..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let end = group
                .char_indices()
                .find(|&(_, c)| {
                    depth += match c {
                        '{' => 1,
                        '}' => -1,
                        _ => 0,
                    };
                    depth == 0
                })
                .map_or(group.len(), |(i, _)| i);
            names.extend(group_heads(&group[..end]));
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            names.insert(name);
        }
    }
    names
}

/// What the crate root re-exports: name → the module it comes from.
fn re_exports(root: &str) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    let root = without_comments(root);
    for statement in root.split(';') {
        let statement = statement.trim();
        let Some(path) = statement
            .strip_prefix("pub use ")
            .or_else(|| statement.strip_prefix("pub(crate) use "))
        else {
            continue;
        };
        let Some((module, items)) = path.split_once("::") else {
            continue;
        };
        let items = items.trim();
        let items = match items.strip_prefix('{') {
            Some(group) => group_heads(group.trim_end_matches('}')),
            None => vec![items.to_string()],
        };
        for item in items {
            names.insert(item, module.to_string());
        }
    }
    names
}

/// Why: an import circle between modules means neither can be read, tested or changed alone;
/// the layer table in ARCHITECTURE.md says which module may use which, and this holds the code
/// to it. A module's imports go to lower layers only, every module is in the table, and a crate
/// root defines nothing but modules and re-exports.
#[test]
fn every_import_goes_down_the_layer_table() {
    let table = layer_table();
    let mut wrong = Vec::new();
    for krate in ["core", "sim", "reports", "scenarios"] {
        let src = workspace().join(krate).join("src");
        let layers = table
            .get(krate)
            .unwrap_or_else(|| panic!("no layers for {krate}"));
        let modules = modules(&src);
        let listed: BTreeSet<&String> = layers.keys().collect();
        let found: BTreeSet<&String> = modules.keys().collect();
        assert_eq!(
            listed, found,
            "{krate}: the layer table and the modules differ"
        );
        let root = std::fs::read_to_string(src.join("lib.rs")).expect("a library");
        let exported = re_exports(&root);
        for (module, code) in &modules {
            for name in crate_paths(code) {
                let target = match (layers.get(&name), exported.get(&name)) {
                    (Some(_), _) => name.clone(),
                    (None, Some(from)) => from.clone(),
                    (None, None) => {
                        wrong.push(format!(
                            "{krate}::{module} uses crate::{name}, defined in the crate root"
                        ));
                        continue;
                    }
                };
                if target != *module && layers[&target] >= layers[module] {
                    wrong.push(format!(
                        "{krate}::{module} (layer {}) uses {target} (layer {})",
                        layers[module], layers[&target]
                    ));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layer table:\n  {}",
        wrong.join("\n  ")
    );
}

/// Why: a comment that cites a section of a document outside the repository cannot be
/// followed by a reader of the code; the code cites Flink's classes, tests and tickets, or
/// explains itself. (This file names what it looks for, so it is left out.)
#[test]
fn no_file_cites_a_document_outside_the_repository() {
    let mut citations = Vec::new();
    let roots = ["core", "sim", "reports", "scenarios", "tests", "examples"];
    let mut files: Vec<PathBuf> = roots
        .iter()
        .flat_map(|root| rust_files(&workspace().join(root)))
        .collect();
    files.extend(["README.md", "ARCHITECTURE.md", "Cargo.toml"].map(|f| workspace().join(f)));
    for path in files
        .iter()
        .filter(|p| !p.ends_with("tests/it/architecture.rs"))
    {
        let text = std::fs::read_to_string(path).expect("readable");
        for (number, line) in text.lines().enumerate() {
            let cites = line.contains('§')
                || ["STYLE.md", "DESIGN.md", "dst-anchors", "flink-semantics"]
                    .iter()
                    .any(|name| line.contains(name));
            if cites {
                citations.push(format!(
                    "{}:{}: {}",
                    path.display(),
                    number + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(
        citations.is_empty(),
        "citations of documents outside the repository:\n  {}",
        citations.join("\n  ")
    );
}
