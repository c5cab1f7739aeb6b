//! Prefixes beside a checkpoint's (same bucket, same parent prefix): where one conversion split
//! across machines puts its parts before they are gathered into the checkpoint. How the parts
//! are named and checked is the caller's; this module lists, reads, copies and deletes.

use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as KeyPath;

use crate::read::RemoteFile;
use crate::stream::Publication;
use crate::{Location, Remote, StoreError};

impl Remote {
    /// The location `name` beside this one.
    pub fn beside(&self, name: &str) -> Location {
        self.location.sibling(name)
    }

    /// The names of the prefixes beside this one (the "directories" of its parent prefix) that
    /// start with `start`, sorted.
    pub fn names_beside(&self, start: &str) -> Result<Vec<String>, StoreError> {
        let location = &self.location;
        let mut parts: Vec<_> = location.prefix.parts().collect();
        parts.pop();
        let parent: KeyPath = parts.into_iter().collect();
        let parent = (!parent.as_ref().is_empty()).then_some(parent);
        let listed = self
            .block_on(location.store.list_with_delimiter(parent.as_ref()))
            .map_err(|e| StoreError::request(location, location.url.clone(), "listing the prefixes beside", e))?;
        let mut names: Vec<String> = (listed.common_prefixes.iter())
            .filter_map(|prefix| prefix.filename().map(String::from))
            .filter(|name| name.starts_with(start))
            .collect();
        names.sort();
        Ok(names)
    }

    /// The files directly under `location`, as [`Remote::list`] lists this one's.
    pub fn list_at(&self, location: &Location) -> Result<Vec<RemoteFile>, StoreError> {
        let listed = self
            .block_on(location.store.list_with_delimiter(Some(&location.prefix)))
            .map_err(|e| StoreError::request(location, location.url.clone(), "listing", e))?;
        let mut files: Vec<_> = listed
            .objects
            .into_iter()
            .filter_map(|object| {
                let name = object.location.filename()?.to_string();
                // Only a plain name: it becomes a local file name, or a key under another prefix.
                let plain = !matches!(name.as_str(), "" | "." | "..") && !name.contains(['/', '\\', '\0']);
                (plain && object.location == location.key(&name)).then_some(RemoteFile {
                    name,
                    size: object.size,
                })
            })
            .collect();
        files.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(files)
    }

    /// File `name` under `location`, whole; `None` when there is none. Refused, unread, when it
    /// has more than `limit` bytes.
    pub fn read_small(&self, location: &Location, name: &str, limit: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let (store, key, url) = (&location.store, location.key(name), location.url_of(name));
        let size = match self.block_on(store.head(&key)) {
            Ok(meta) => meta.size,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(StoreError::request(location, url, "looking up", e)),
        };
        if size > limit {
            return Err(StoreError::Refused {
                url,
                reason: format!("{size} bytes, more than the {limit} this document may have"),
            });
        }
        let bytes = self
            .block_on(async { store.get_range(&key, 0..size).await })
            .map_err(|e| StoreError::request(location, url.clone(), "reading", e))?;
        if bytes.len() as u64 != size {
            return Err(StoreError::Short {
                url,
                start: 0,
                end: size,
                found: bytes.len() as u64,
            });
        }
        Ok(Some(bytes.to_vec()))
    }

    /// Deletes every object under `location` (deep keys included): the keys of files `first`
    /// before any other, so that what they mark stops being true before anything else goes.
    /// Returns how many objects were deleted.
    pub fn delete_all(&self, location: &Location, first: &[&str]) -> Result<usize, StoreError> {
        let store = &location.store;
        let mut deleted = 0;
        for name in first {
            match self.block_on(store.delete(&location.key(name))) {
                Ok(()) => deleted += 1,
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(StoreError::request(location, location.url_of(name), "deleting", e)),
            }
        }
        let keys: Vec<KeyPath> = self
            .block_on(store.list(Some(&location.prefix)).map_ok(|m| m.location).try_collect())
            .map_err(|e| StoreError::request(location, location.url.clone(), "listing", e))?;
        let concurrency = self.limits.concurrency;
        let results: Vec<object_store::Result<()>> = self.block_on(
            futures::stream::iter(keys)
                .map(|key| async move {
                    match store.delete(&key).await {
                        Err(object_store::Error::NotFound { .. }) => Ok(()),
                        other => other,
                    }
                })
                .buffer_unordered(concurrency)
                .collect(),
        );
        for result in results {
            result.map_err(|e| StoreError::request(location, location.url.clone(), "deleting", e))?;
            deleted += 1;
        }
        Ok(deleted)
    }

    /// Starts a publication to `target` (a location beside this one) that replaces whatever is
    /// there: the object `marker` is deleted first (from then on the old content never looks
    /// complete), then every other object; then the files go up as [`Publication`]'s do, and
    /// [`Publication::finish`] uploads the marker last. Unlike [`Remote::start_publication`], the
    /// old content is not kept until the new one is complete: what is replaced is a piece of
    /// work that is redone, not a checkpoint someone reads.
    pub fn start_replacement(self: &Arc<Self>, target: Location, marker: &str) -> Result<Publication, StoreError> {
        self.delete_all(&target, &[marker])?;
        Ok(Publication::new(Arc::clone(self), target, Vec::new()))
    }
}

impl Publication {
    /// Copies `files` from `from` into the publication by server-side copies (no byte comes
    /// through this process), at most `concurrency` at once. Each copied file counts as an
    /// uploaded one: [`Publication::finish`] puts the documents after it, and a publication
    /// dropped unfinished deletes it. On failure, the copies of this call that completed are
    /// deleted too.
    pub fn copy_in(&self, from: &Location, files: &[RemoteFile]) -> Result<(), StoreError> {
        let (remote, target) = (self.remote(), self.target());
        let store = &target.store;
        let copies = futures::stream::iter(files)
            .map(|file| async move {
                let copied = store.copy(&from.key(&file.name), &target.key(&file.name)).await;
                (file, copied)
            })
            .buffer_unordered(remote.limits.concurrency.max(1));
        let results: Vec<_> = remote.block_on(copies.collect());
        let mut failure = None;
        for (file, copied) in results {
            match copied {
                Ok(()) => self.record(&file.name, file.size),
                Err(e) if failure.is_none() => {
                    failure = Some(StoreError::request(
                        target,
                        target.url_of(&file.name),
                        "copying into place",
                        e,
                    ));
                }
                Err(_) => {}
            }
        }
        match failure {
            None => Ok(()),
            Some(error) => Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use object_store::ObjectStore;

    use super::*;

    /// A remote at `s3://bucket/models/m` over an in-memory store holding `keys`.
    fn remote(keys: &[(&str, &[u8])]) -> Arc<Remote> {
        Arc::new(crate::testing::in_memory_remote("s3://bucket/models/m", keys))
    }

    fn keys(remote: &Remote) -> Vec<String> {
        let mut keys: Vec<String> = remote
            .block_on(
                remote
                    .location
                    .store
                    .list(None)
                    .map_ok(|m| m.location.to_string())
                    .try_collect(),
            )
            .unwrap();
        keys.sort();
        keys
    }

    #[test]
    fn names_beside_are_the_prefixes_of_the_parent() {
        let remote = remote(&[
            ("models/m.part-0-of-2/a", b"x"),
            ("models/m.part-1-of-2/a", b"x"),
            ("models/m/config.json", b"{}"),
            ("models/other/a", b"x"),
            ("models/m.part-file", b"a file, not a prefix"),
        ]);
        assert_eq!(
            remote.names_beside("m.part-").unwrap(),
            ["m.part-0-of-2", "m.part-1-of-2"]
        );
    }

    #[test]
    fn small_files_are_read_whole_absent_or_refused_past_their_limit() {
        let remote = remote(&[("models/p/part.json", b"{\"part\": 0}")]);
        let p = remote.beside("p");
        assert_eq!(
            remote.read_small(&p, "part.json", 100).unwrap().unwrap(),
            b"{\"part\": 0}"
        );
        assert_eq!(remote.read_small(&p, "absent.json", 100).unwrap(), None);
        let error = remote.read_small(&p, "part.json", 4).unwrap_err().to_string();
        assert!(error.contains("11 bytes, more than the 4"), "{error}");
    }

    #[test]
    fn a_replacement_deletes_the_old_content_and_copies_count_as_uploads() {
        let remote = remote(&[
            ("models/p/part.json", b"{}"),
            ("models/p/old.safetensors", b"old"),
            ("models/p/deeper/x", b"x"),
            ("models/q/a.safetensors", b"aaa"),
        ]);
        let publication = remote.start_replacement(remote.beside("p"), "part.json").unwrap();
        assert_eq!(keys(&remote), ["models/q/a.safetensors"]);
        let q = remote.beside("q");
        publication.copy_in(&q, &remote.list_at(&q).unwrap()).unwrap();
        assert_eq!(keys(&remote), ["models/p/a.safetensors", "models/q/a.safetensors"]);
        // Dropped unfinished: what it copied in is deleted.
        drop(publication);
        assert_eq!(keys(&remote), ["models/q/a.safetensors"]);
    }

    #[test]
    fn a_failed_copy_is_reported_by_the_url_it_was_copying_to() {
        let remote = remote(&[("models/q/a.safetensors", b"aaa")]);
        let publication = remote.start_publication(Default::default()).unwrap();
        let q = remote.beside("q");
        let missing = RemoteFile {
            name: "missing.safetensors".to_string(),
            size: 3,
        };
        let error = publication.copy_in(&q, &[missing]).unwrap_err().to_string();
        assert!(
            error.contains("s3://bucket/models/m/missing.safetensors: copying into place"),
            "{error}"
        );
    }
}
