//! The input/output path check run before a conversion touches anything: the output must not be
//! the input, contain it, or lie inside it — after resolving symlinks, `.` and `..`, and (on
//! Unix) by directory identity too, which also catches bind mounts and case-insensitive names.
//! No option overrides it: `--force` replaces an output, never an input.

use std::path::{Component, Path, PathBuf};

use crate::CheckpointError;

/// How an output path overlaps its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    /// The output is the input.
    Same,
    /// The input lies inside the output (replacing the output would delete the input).
    OutputContainsInput,
    /// The output lies inside the input (writing it would modify the input).
    OutputInsideInput,
}

impl Overlap {
    /// How the relation reads in a message: "output `o` {is the input | contains the input |
    /// is inside the input} `i`".
    pub fn describe(self) -> &'static str {
        match self {
            Overlap::Same => "is the input",
            Overlap::OutputContainsInput => "contains the input",
            Overlap::OutputInsideInput => "is inside the input",
        }
    }
}

/// Refuses an `output` that overlaps `input`; the error names both paths (as given and as
/// resolved). `input` must exist.
pub fn check_output_path(input: &Path, output: &Path) -> Result<(), CheckpointError> {
    let resolved_input = std::fs::canonicalize(input).map_err(|e| CheckpointError::io(input, e))?;
    let resolved_output = resolve_future(output).map_err(|e| CheckpointError::io(output, e))?;
    match overlap(&resolved_input, &resolved_output) {
        None => Ok(()),
        Some(relation) => Err(CheckpointError::OutputOverlapsInput {
            input: input.to_path_buf(),
            output: output.to_path_buf(),
            resolved_input,
            resolved_output,
            relation,
        }),
    }
}

/// The absolute path `path` names once created: its longest existing prefix resolved (symlinks
/// and all), then the remaining components applied lexically — they do not exist yet, so none
/// is a symlink and `..` simply steps back.
pub fn resolve_future(path: &Path) -> std::io::Result<PathBuf> {
    let absolute = std::path::absolute(path)?;
    let components: Vec<Component> = absolute.components().collect();
    for existing in (1..=components.len()).rev() {
        let prefix: PathBuf = components[..existing].iter().collect();
        let Ok(mut resolved) = std::fs::canonicalize(&prefix) else {
            continue;
        };
        for component in &components[existing..] {
            match component {
                Component::ParentDir => {
                    resolved.pop();
                }
                Component::Normal(name) => resolved.push(name),
                Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
            }
        }
        return Ok(resolved);
    }
    Ok(absolute)
}

/// The overlap of two resolved paths, by name and (on Unix) by directory identity.
fn overlap(input: &Path, output: &Path) -> Option<Overlap> {
    if input == output {
        return Some(Overlap::Same);
    }
    if input.starts_with(output) {
        return Some(Overlap::OutputContainsInput);
    }
    if output.starts_with(input) {
        return Some(Overlap::OutputInsideInput);
    }
    by_identity(input, output)
}

/// The same checks by (device, inode): a directory reached through two names (a bind mount, a
/// case-insensitive filesystem) is one directory.
#[cfg(unix)]
fn by_identity(input: &Path, output: &Path) -> Option<Overlap> {
    use std::os::unix::fs::MetadataExt;
    let id = |p: &Path| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    let input_id = id(input)?;
    // The output or one of its existing ancestors is the input.
    for (depth, ancestor) in output.ancestors().enumerate() {
        if id(ancestor) == Some(input_id) {
            return Some(if depth == 0 && output.exists() {
                Overlap::Same
            } else {
                Overlap::OutputInsideInput
            });
        }
    }
    // The (existing) output is one of the input's ancestors.
    let output_id = id(output)?;
    input
        .ancestors()
        .skip(1)
        .any(|ancestor| id(ancestor) == Some(output_id))
        .then_some(Overlap::OutputContainsInput)
}

#[cfg(not(unix))]
fn by_identity(_: &Path, _: &Path) -> Option<Overlap> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn scratch(name: &str) -> PathBuf {
        let dir = crate::scratch::scratch("paths", name);
        std::fs::create_dir_all(dir.join("in/deep")).unwrap();
        std::fs::create_dir_all(dir.join("elsewhere")).unwrap();
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.join("in"), dir.join("link-to-in")).unwrap();
            std::os::unix::fs::symlink(&dir, dir.join("elsewhere/link-to-root")).unwrap();
        }
        dir
    }

    #[rstest]
    #[case::same("in", Some(Overlap::Same))]
    #[case::same_with_dots("in/deep/..", Some(Overlap::Same))]
    #[case::same_trailing_dot("in/.", Some(Overlap::Same))]
    #[case::parent(".", Some(Overlap::OutputContainsInput))]
    #[case::inside("in/sub", Some(Overlap::OutputInsideInput))]
    #[case::inside_existing("in/deep", Some(Overlap::OutputInsideInput))]
    #[case::inside_not_yet_created("in/new/newer", Some(Overlap::OutputInsideInput))]
    #[case::back_into_input_through_missing_dirs("elsewhere/missing/../../in", Some(Overlap::Same))]
    #[case::sibling("out", None)]
    #[case::sibling_with_input_prefix_in_name("in-out", None)]
    #[case::elsewhere("elsewhere/out", None)]
    #[cfg_attr(unix, case::symlink_to_input("link-to-in", Some(Overlap::Same)))]
    #[cfg_attr(
        unix,
        case::inside_through_symlink("link-to-in/sub", Some(Overlap::OutputInsideInput))
    )]
    #[cfg_attr(
        unix,
        case::parent_through_symlink("elsewhere/link-to-root", Some(Overlap::OutputContainsInput))
    )]
    fn overlaps_are_found(#[case] output: &str, #[case] expected: Option<Overlap>) {
        let name: String = output.chars().filter(|c| c.is_alphanumeric()).collect();
        let root = scratch(&format!("case-{name}"));
        let found = match check_output_path(&root.join("in"), &root.join(output)) {
            Ok(()) => None,
            Err(CheckpointError::OutputOverlapsInput { relation, .. }) => Some(relation),
            Err(e) => panic!("{e}"),
        };
        assert_eq!(found, expected, "{output}");
    }

    #[test]
    fn the_error_names_both_paths() {
        let root = scratch("message");
        let error = check_output_path(&root.join("in"), &root.join("link-to-in")).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("link-to-in") && text.contains("is the input"), "{text}");
        assert!(text.contains(&root.join("in").display().to_string()), "{text}");
    }

    #[test]
    fn relative_paths_resolve_against_the_working_directory() {
        let resolved = resolve_future(Path::new("a/../b")).unwrap();
        assert_eq!(resolved, std::env::current_dir().unwrap().join("b"));
    }
}
