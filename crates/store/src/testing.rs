//! What the unit tests share: a remote over an in-memory store.

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::memory::InMemory;
use object_store::path::Path as KeyPath;

use crate::{IoLimits, Location, Remote, Retries};

/// A remote at `url` over an in-memory store holding `objects` (keys from the bucket's root).
pub(crate) fn in_memory_remote<B: AsRef<[u8]>>(url: &str, objects: &[(&str, B)]) -> Remote {
    let store = Arc::new(InMemory::new());
    let mut location = Location::parse(url, Retries::default()).unwrap();
    location.store = store.clone();
    let remote = Remote::open(url, IoLimits::default(), Retries::default()).unwrap();
    let remote = Remote { location, ..remote };
    for (key, bytes) in objects {
        remote
            .block_on(store.put(&KeyPath::from(*key), bytes.as_ref().to_vec().into()))
            .unwrap();
    }
    remote
}
