//! Tidy checks as ordinary tests: repository conventions that review would otherwise enforce.

use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if path.is_dir() {
            if !matches!(name.as_str(), "target" | "node_modules" | ".git")
                && !name.starts_with('.')
            {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_rust_file_starts_with_a_module_doc_line() {
    let root = repo_root();
    let mut files = Vec::new();
    for top in ["gateway", "sdk", "plugins", "tests", "xtask"] {
        if root.join(top).exists() {
            rust_files(&root.join(top), &mut files);
        }
    }
    assert!(files.len() > 10);
    let missing: Vec<String> = files
        .iter()
        .filter(|f| !std::fs::read_to_string(f).unwrap().starts_with("//!"))
        .map(|f| f.strip_prefix(&root).unwrap().display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "files without a leading //! line: {missing:?}"
    );
}

#[test]
fn no_rust_file_grows_past_900_lines() {
    let root = repo_root();
    let mut files = Vec::new();
    for top in ["gateway", "sdk", "plugins", "tests", "xtask"] {
        if root.join(top).exists() {
            rust_files(&root.join(top), &mut files);
        }
    }
    let long: Vec<String> = files
        .iter()
        .filter(|f| std::fs::read_to_string(f).unwrap().lines().count() > 900)
        .map(|f| f.strip_prefix(&root).unwrap().display().to_string())
        .collect();
    assert!(long.is_empty(), "split these files: {long:?}");
}

#[test]
fn migrations_exist_for_both_backends_with_the_same_names() {
    let root = repo_root();
    let names = |dir: &str| {
        let mut v: Vec<String> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        v.sort();
        v
    };
    let sqlite = names("migrations/sqlite");
    assert!(!sqlite.is_empty());
    assert_eq!(sqlite, names("migrations/postgres"));
}

#[test]
fn the_readme_test_command_is_what_ci_runs() {
    let root = repo_root();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let ci = std::fs::read_to_string(root.join(".ci/run")).unwrap();
    assert!(
        readme.contains("cargo xtask test"),
        "README names the test command"
    );
    assert!(
        ci.contains("cargo xtask test"),
        ".ci/run runs the README's test command"
    );
}

/// The layers of `gateway/server/src`, lowest first. The rule: a module imports only from its
/// own layer and the layers below it. (`lib.rs` and `main.rs` sit above them all.)
const SERVER_LAYERS: &[&[&str]] = &[
    &["base"],
    &["config"],
    &["engine"],
    &["state", "boot"],
    &["domain"],
    &["relay"],
    &["http"],
    &["cli"],
];

fn server_layer(module: &str) -> Option<usize> {
    SERVER_LAYERS.iter().position(|l| l.contains(&module))
}

/// Every `crate::<module>` a line of code names (comments are not imports).
fn crate_modules(line: &str) -> Vec<String> {
    let code = line.split("//").next().unwrap_or_default();
    code.match_indices("crate::")
        .filter(|(at, _)| {
            // Not part of a longer path (`$crate::` in macros).
            !code[..*at].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == '$')
        })
        .map(|(at, m)| {
            code[at + m.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

/// rust-analyzer's habit: the architecture as an ordinary test. Every top-level module of the
/// server crate has a layer, and no file imports from a layer above its own.
#[test]
fn the_server_crate_imports_only_downwards() {
    let src = repo_root().join("gateway/server/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut unplaced = Vec::new();
    let mut upward = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if top == "lib" || top == "main" {
            continue;
        }
        let Some(own) = server_layer(&top) else {
            unplaced.push(rel.display().to_string());
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for module in crate_modules(line) {
                if server_layer(&module).is_some_and(|l| l > own) {
                    upward.push(format!(
                        "{}:{}: {top} imports crate::{module}",
                        rel.display(),
                        n + 1
                    ));
                }
            }
        }
    }
    assert!(
        unplaced.is_empty(),
        "top-level modules without a layer (add them to SERVER_LAYERS): {unplaced:?}"
    );
    assert!(
        upward.is_empty(),
        "imports from a higher layer ({}):\n{}",
        SERVER_LAYERS
            .iter()
            .map(|l| l.join("/"))
            .collect::<Vec<_>>()
            .join(" < "),
        upward.join("\n")
    );
    assert!(crate_modules("use crate::http::routes; // crate::cli") == ["http"]);
}

/// A built-in plugin's instance is kept between calls (`PluginLimits::keep_warm`), so one app's
/// call must leave nothing behind for the next: no `static` that can change, no thread-local.
/// The SDK's one-time panic hook is the only global.
#[test]
fn built_in_plugins_keep_no_state_between_calls() {
    let plugins = repo_root().join("plugins");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&plugins).unwrap() {
        let dir = entry.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        // the hostile test plugins keep state on purpose (the host's tests of kept instances)
        if dir.join("src").is_dir() && name != "test-plugins" {
            rust_files(&dir.join("src"), &mut files);
        }
    }
    assert!(files.len() >= 7, "{files:?}");
    let mutable = [
        "static mut",
        "thread_local!",
        "Atomic",
        "Mutex",
        "RwLock",
        "OnceLock",
        "OnceCell",
        "LazyLock",
        "Cell<",
    ];
    let mut found = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            let global = code.trim_start().starts_with("static ") || code.contains("static mut");
            let allowed = code.contains("static ONCE: std::sync::Once =");
            if (global && !allowed) || mutable.iter().any(|m| code.contains(m)) {
                let rel = file.strip_prefix(&plugins).unwrap().display();
                found.push(format!("plugins/{rel}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "state that outlives a plugin call:\n{}",
        found.join("\n")
    );
}
