//! The repository's files and a test's own scratch directory, and whether a
//! tool is installed.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root.
pub const REPO_ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// `path` (relative to the workspace root) as an absolute path.
pub fn repo_file(path: &str) -> PathBuf {
    Path::new(REPO_ROOT).join(path)
}

/// A fresh, empty directory `target/tmp/<name>` for a test's files.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Whether `tool --version` runs and succeeds.
pub fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}
