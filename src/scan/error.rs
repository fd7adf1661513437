//! The problems a scan reports, one value per bad entry.
//!
//! Paths in these errors are relative to the layer (or function) root and '/'-separated, as the
//! user wrote them in the layer: `lib/nodejs/node_modules/a/link`. The caller adds the layer's
//! name when it reports them.

use std::io;

/// A problem with one entry. The walk goes on; the caller decides what is fatal.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error(
        "symlink `{path}` points to `{target}`, outside `{folder}`: make the link relative and \
         inside `{folder}`, or pass --follow-external to store its content"
    )]
    LinkLeavesLayer {
        path: String,
        target: String,
        /// The source folder the link would have to stay in.
        folder: String,
    },

    #[error(
        "symlink `{path}` points to `{target}`, which does not exist: remove the link or create \
         its target"
    )]
    DanglingLink { path: String, target: String },

    #[error(
        "symlink `{path}` points to `{target}`, which leads back to itself: break the cycle of \
         links"
    )]
    LinkCycle { path: String, target: String },

    #[error(
        "folder `{folder}` holds an entry whose name is not UTF-8 (`{name}`): zip paths must be \
         UTF-8, so rename it"
    )]
    NonUtf8Name {
        /// The name with invalid bytes replaced by U+FFFD.
        name: String,
        folder: String,
    },

    #[error("symlink `{path}` has a target that is not UTF-8 (`{target}`): point it elsewhere")]
    NonUtf8LinkTarget {
        path: String,
        /// The target with invalid bytes replaced by U+FFFD.
        target: String,
    },

    #[error("cannot read `{path}`: {error}")]
    Unreadable {
        path: String,
        #[source]
        error: io::Error,
    },

    #[error("`{path}` vanished while it was being scanned: run again once the tree is quiet")]
    Vanished { path: String },

    #[error(
        "`{path}` is a {file_type}: a zip holds only files, folders and symlinks, so move it out \
         of the layer"
    )]
    UnsupportedFileType {
        path: String,
        file_type: &'static str,
    },

    #[error("source `{path}` is not a folder: make it a folder or remove it")]
    SourceNotFolder { path: String },

    #[error("`{first}` and `{second}` both map to `{zip_path}` in the zip: remove one of them")]
    Collision {
        zip_path: String,
        first: String,
        second: String,
    },
}

impl ScanError {
    /// The path the problem is about (for a collision, the first of the two sources), used to
    /// order problems so that a report reads the same on every run.
    pub fn path(&self) -> &str {
        match self {
            ScanError::LinkLeavesLayer { path, .. }
            | ScanError::DanglingLink { path, .. }
            | ScanError::LinkCycle { path, .. }
            | ScanError::NonUtf8LinkTarget { path, .. }
            | ScanError::Unreadable { path, .. }
            | ScanError::Vanished { path }
            | ScanError::UnsupportedFileType { path, .. }
            | ScanError::SourceNotFolder { path } => path,
            ScanError::NonUtf8Name { folder, .. } => folder,
            ScanError::Collision { first, .. } => first,
        }
    }

    /// The error for an entry that was listed but could not be examined: one that is gone by
    /// now vanished (deleted or renamed during the scan); anything else is unreadable.
    pub(crate) fn from_io(path: String, error: io::Error) -> ScanError {
        if error.kind() == io::ErrorKind::NotFound {
            ScanError::Vanished { path }
        } else {
            ScanError::Unreadable { path, error }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_after_listing_is_vanished() {
        let error = io::Error::from_raw_os_error(libc::ENOENT);
        let problem = ScanError::from_io("lib/nodejs/a.js".into(), error);
        assert!(matches!(problem, ScanError::Vanished { ref path } if path == "lib/nodejs/a.js"));
    }

    #[test]
    fn permission_denied_is_unreadable_with_its_cause() {
        let error = io::Error::from_raw_os_error(libc::EACCES);
        let problem = ScanError::from_io("lib/nodejs/secret".into(), error);
        assert!(matches!(problem, ScanError::Unreadable { .. }));
        let message = problem.to_string();
        assert!(
            message.starts_with("cannot read `lib/nodejs/secret`: "),
            "{message}"
        );
        assert!(std::error::Error::source(&problem).is_some());
    }

    #[test]
    fn leaving_link_message_names_the_fix() {
        let problem = ScanError::LinkLeavesLayer {
            path: "lib/nodejs/x".into(),
            target: "/etc/passwd".into(),
            folder: "lib/nodejs".into(),
        };
        assert_eq!(
            problem.to_string(),
            "symlink `lib/nodejs/x` points to `/etc/passwd`, outside `lib/nodejs`: make the link \
             relative and inside `lib/nodejs`, or pass --follow-external to store its content"
        );
    }
}
