//! Named storage roots (`[storage.roots] archive = "/mnt/archive"`): how a file's path
//! is stored in the index, and how a stored path becomes a path on this host.
//!
//! A file under a configured root is stored as (root name, path relative to the root);
//! any other file as its absolute path, with the root name '' (as before schema 5).
//! Each host resolves the root name through its own configuration, so hosts that mount
//! one archive at different paths index and serve the same rows.
//!
//! The walk key of a stored path (see [`crate::index::schema`]) keeps the two forms
//! apart and each in walk order: an absolute path `/a/b` has the key `\0a\0b`; a file
//! `sub/f` under root `archive` has `\x01archive\0sub\0f`. Root names are restricted
//! to `[A-Za-z0-9_.-]`, so no name holds the separator, and the rows of a root (or of a
//! folder in it) are one key range, as the rows of an absolute folder are.
//!
//! Inode numbers are facts of one mount (two NFS clients, or a replica, may differ), so
//! files under a root are stored with inode 0, which the identity checks skip: size and
//! modification time (nanoseconds) still guard against stale bytes.

use std::path::{Component, Path, PathBuf};

use crate::error::{Error, ErrorKind, Result};

/// Most bytes in a root name.
const MAX_NAME: usize = 64;

/// The byte that starts the walk key of a path stored under a root (absolute paths
/// start with `\0`, the key of their leading `/`).
const ROOTED_KEY: u8 = 1;

/// The storage roots this host configures: name -> absolute folder.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StorageRoots {
    /// (name, folder), longest folder first, so the innermost root of a path wins.
    roots: Vec<(String, PathBuf)>,
}

/// Where a file is, in the form the index stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StoredPath {
    /// The root's name; '' for an absolute path.
    pub(crate) root: String,
    /// The path relative to the root (`sub/f.dcm`), or the absolute path.
    pub(crate) path: String,
}

impl StoredPath {
    /// The key that orders stored paths like a name-sorted depth-first walk.
    pub(crate) fn walk_key(&self) -> Vec<u8> {
        if self.root.is_empty() {
            return super::walk::walk_key(&self.path);
        }
        let mut key = Vec::with_capacity(2 + self.root.len() + self.path.len());
        key.push(ROOTED_KEY);
        key.extend_from_slice(self.root.as_bytes());
        if !self.path.is_empty() {
            key.push(0);
            key.extend(super::walk::walk_key(&self.path));
        }
        key
    }

    /// Whether the path is stored under a root (then its inode is not kept).
    pub(crate) fn is_rooted(&self) -> bool {
        !self.root.is_empty()
    }
}

impl StorageRoots {
    /// No roots: every path is stored absolute.
    pub fn new() -> StorageRoots {
        StorageRoots::default()
    }

    /// Adds root `name` at `folder`. The folder is made canonical when it exists (the
    /// index walk reads canonical paths); a missing one is kept as written, so a host
    /// starts while a mount is away and answers for its files once it is back.
    ///
    /// # Errors
    /// `Config` when the name is empty, longer than 64 bytes, holds a character other
    /// than `A-Z a-z 0-9 _ . -`, or is already configured, or when the folder is not
    /// an absolute path without `.` or `..` components.
    pub fn add(&mut self, name: &str, folder: impl AsRef<Path>) -> Result<()> {
        let bad = |why: String| Err(Error::new(ErrorKind::Config, why));
        if name.is_empty()
            || name.len() > MAX_NAME
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        {
            return bad(format!(
                "storage root name {name:?} must be 1 to {MAX_NAME} of A-Z a-z 0-9 _ . -"
            ));
        }
        if self.roots.iter().any(|(n, _)| n == name) {
            return bad(format!("storage root {name:?} is configured twice"));
        }
        let folder = folder.as_ref();
        if !folder.is_absolute()
            || folder
                .components()
                .any(|c| matches!(c, Component::CurDir | Component::ParentDir))
            || folder.to_str().is_none()
        {
            return bad(format!(
                "storage root {name:?}: {} is not an absolute UTF-8 path without . or ..",
                folder.display()
            ));
        }
        let folder = folder
            .canonicalize()
            .unwrap_or_else(|_| folder.to_path_buf());
        self.roots.push((name.to_string(), folder));
        self.roots
            .sort_by_key(|(_, f)| std::cmp::Reverse(f.as_os_str().len()));
        Ok(())
    }

    /// The folder of root `name` on this host.
    pub fn get(&self, name: &str) -> Option<&Path> {
        self.roots
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, f)| f.as_path())
    }

    /// Whether no root is configured.
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }

    /// The (name, folder) pairs, innermost folder first.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Path)> {
        self.roots.iter().map(|(n, f)| (n.as_str(), f.as_path()))
    }

    /// How the absolute path `abs` is stored: under the innermost root that holds it
    /// (compared by whole components), else as it is.
    pub(crate) fn store(&self, abs: &str) -> StoredPath {
        for (name, folder) in &self.roots {
            if let Ok(rel) = Path::new(abs).strip_prefix(folder)
                && let Some(rel) = rel.to_str()
            {
                return StoredPath {
                    root: name.clone(),
                    path: rel.to_string(),
                };
            }
        }
        StoredPath {
            root: String::new(),
            path: abs.to_string(),
        }
    }

    /// The path on this host of a file stored as (`root`, `path`).
    ///
    /// # Errors
    /// `Config` (500) when this host configures no root of that name, and when a
    /// stored relative path is not one (empty, absolute, or with a `.` or `..`
    /// component: it would leave its root). The client message names neither the root
    /// nor the path; the detail, for the host's log, names both.
    pub(crate) fn resolve(&self, root: &str, path: &str) -> Result<String> {
        if root.is_empty() {
            return Ok(path.to_string());
        }
        let Some(folder) = self.get(root) else {
            return Err(Error::new(
                ErrorKind::Config,
                "the file of this instance lies in a storage root this host does not configure",
            )
            .with_detail(format!(
                "storage root {root:?} (file {path:?}) is not in this host's [storage.roots]"
            )));
        };
        let rel = Path::new(path);
        if path.is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(Error::new(
                ErrorKind::Config,
                "the index holds a file path that leaves its storage root",
            )
            .with_detail(format!(
                "storage root {root:?}: stored path {path:?} is not relative to the root"
            )));
        }
        folder
            .join(rel)
            .into_os_string()
            .into_string()
            .map_err(|_| Error::internal("a storage root is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roots(pairs: &[(&str, &str)]) -> StorageRoots {
        let mut r = StorageRoots::new();
        for (n, f) in pairs {
            r.add(n, f).unwrap();
        }
        r
    }

    #[test]
    fn paths_under_a_root_are_stored_relative_to_the_innermost_root() {
        let r = roots(&[
            ("archive", "/nonexistent/mnt"),
            ("ct", "/nonexistent/mnt/ct"),
        ]);
        let s = r.store("/nonexistent/mnt/mr/a.dcm");
        assert_eq!((s.root.as_str(), s.path.as_str()), ("archive", "mr/a.dcm"));
        let s = r.store("/nonexistent/mnt/ct/b.dcm");
        assert_eq!((s.root.as_str(), s.path.as_str()), ("ct", "b.dcm"));
        // Whole components only: /nonexistent/mntx is not under /nonexistent/mnt.
        let s = r.store("/nonexistent/mntx/c.dcm");
        assert_eq!(
            (s.root.as_str(), s.path.as_str()),
            ("", "/nonexistent/mntx/c.dcm")
        );
    }

    #[test]
    fn rooted_keys_keep_walk_order_and_stay_apart_from_absolute_ones() {
        let k = |root: &str, path: &str| {
            StoredPath {
                root: root.into(),
                path: path.into(),
            }
            .walk_key()
        };
        assert!(
            k("a", "x/y") < k("a", "x.dcm"),
            "a folder's files come before x.dcm"
        );
        assert!(k("", "/z/z") < k("a", ""));
        let (from, mut end) = (k("a", "x"), k("a", "x"));
        end.push(1);
        assert!(from <= k("a", "x/y") && k("a", "x/y") < end);
        assert!(
            k("a", "xy") >= end,
            "a sibling named xy is outside folder x"
        );
        assert!(
            k("ab", "") > {
                let mut e = k("a", "");
                e.push(1);
                e
            }
        );
    }

    #[test]
    fn resolve_joins_the_host_folder_and_refuses_escapes_and_unknown_roots() {
        let r = roots(&[("archive", "/nonexistent/host-b")]);
        assert_eq!(
            r.resolve("archive", "mr/a.dcm").unwrap(),
            "/nonexistent/host-b/mr/a.dcm"
        );
        assert_eq!(r.resolve("", "/abs/f").unwrap(), "/abs/f");
        for bad in ["../etc/passwd", "/etc/passwd", "a/../../b", "", "./a"] {
            let e = r.resolve("archive", bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config, "{bad}");
        }
        let e = r.resolve("other", "a.dcm").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(!e.message().contains("other") && !e.message().contains("a.dcm"));
    }

    #[test]
    fn names_and_folders_are_checked() {
        let mut r = StorageRoots::new();
        for name in ["", "a/b", "a b", "a\0b", &"x".repeat(65)] {
            assert!(r.add(name, "/mnt").is_err(), "{name:?}");
        }
        assert!(r.add("a", "relative").is_err());
        assert!(r.add("a", "/mnt/../etc").is_err());
        r.add("a", "/mnt").unwrap();
        assert!(r.add("a", "/other").is_err());
    }
}
