//! Where a pulled model is linked: `dest/<file>.gguf`, or `dest/<repo name>/` holding one link
//! per checkpoint file, each pointing at the hub cache's copy.

use std::path::{Path, PathBuf};

use super::error::PullError;
use super::select::Plan;

/// The path to give `qwen3_embed.model_path`, and the link path of each remote file.
pub fn model_path(plan: &Plan, dest: &Path) -> PathBuf {
    match plan {
        Plan::Gguf(f) => dest.join(base_name(&f.name)),
        Plan::Directory { name, .. } => dest.join(name),
    }
}

pub fn link_path(plan: &Plan, dest: &Path, name: &str) -> PathBuf {
    match plan {
        Plan::Gguf(_) => dest.join(base_name(name)),
        Plan::Directory { name: dir, .. } => dest.join(dir).join(name),
    }
}

fn base_name(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

/// A file a user put there themselves (not a link we made).
pub fn is_plain_file(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file())
}

/// Points `link` at `target`, replacing an older link in one step.
pub fn link(target: &Path, link: &Path) -> Result<(), PullError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PullError::Io { path, source }
    };
    let target = std::path::absolute(target).map_err(io(target))?;
    let dir = link.parent().expect("a link path has a parent");
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let name = link.file_name().expect("a link path has a file name").to_string_lossy();
    let tmp = dir.join(format!(".{name}.pull-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&target, &tmp).map_err(io(&tmp))?;
    std::fs::rename(&tmp, link).map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        PullError::Io { path: link.to_path_buf(), source }
    })
}

/// Removes a downloaded file from the hub cache: the blob and the snapshot link to it.
pub fn remove_download(snapshot: &Path) -> Result<(), PullError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PullError::Io { path, source }
    };
    let blob = std::fs::canonicalize(snapshot).map_err(io(snapshot))?;
    std::fs::remove_file(&blob).map_err(io(&blob))?;
    if blob != snapshot {
        std::fs::remove_file(snapshot).map_err(io(snapshot))?;
    }
    Ok(())
}
