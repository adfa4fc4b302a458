//! Records the git commit drover is built from, for `drover --version`.
//!
//! Cargo reruns a build script whenever a `rerun-if-changed` path is missing, so this
//! names only paths that exist: HEAD, the branch's loose ref, the directory that
//! holds it (a new loose ref appears there when a packed branch moves) and
//! `packed-refs` when there is one. Worktrees (`.git` a file) are resolved through
//! `git rev-parse`. Outside a git checkout it depends on nothing but itself.
use std::path::{Path, PathBuf};
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

fn rerun_if_exists(path: &Path) -> bool {
    if path.exists() {
        println!("cargo:rerun-if-changed={}", path.display());
        true
    } else {
        false
    }
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=DROVER_GIT_SHA");
    let sha = std::env::var("DROVER_GIT_SHA")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=DROVER_GIT_SHA={sha}");

    let (Some(git_dir), Some(common_dir)) = (
        git(&["rev-parse", "--absolute-git-dir"]),
        git(&["rev-parse", "--path-format=absolute", "--git-common-dir"]),
    ) else {
        return;
    };
    let git_dir = PathBuf::from(git_dir);
    let common_dir = PathBuf::from(common_dir);
    rerun_if_exists(&git_dir.join("HEAD"));
    rerun_if_exists(&common_dir.join("packed-refs"));
    if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"]) {
        let loose = common_dir.join(&reference);
        rerun_if_exists(&loose);
        // The directory of the ref: where its loose file appears when a packed
        // branch gets a new commit.
        if let Some(parent) = loose.parent() {
            rerun_if_exists(parent);
        }
    }
}
