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
