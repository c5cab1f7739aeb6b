//! Where a checkpoint lives: a local path or an object-store URL, and the store that serves it.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::http::HttpBuilder;
use object_store::path::Path as KeyPath;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

use crate::StoreError;
use crate::scheme::Scheme;

/// How requests are retried: transient failures (5xx, throttling, dropped connections) are
/// retried with exponential backoff up to `max_retries` times within `timeout`.
#[derive(Debug, Clone, Copy)]
pub struct Retries {
    pub max_retries: usize,
    pub timeout: Duration,
    /// The first backoff; each retry waits up to twice the previous one (with jitter).
    pub initial_backoff: Duration,
}

impl Default for Retries {
    fn default() -> Self {
        Retries {
            max_retries: 10,
            timeout: Duration::from_secs(180),
            initial_backoff: Duration::from_millis(100),
        }
    }
}

/// An object-store location: the store serving it and the key prefix under which the
/// checkpoint's files are.
#[derive(Debug, Clone)]
pub struct Location {
    /// The URL as given, trailing slashes removed (what messages show).
    pub url: String,
    pub scheme: Scheme,
    /// The bucket or container (the host for HTTP).
    pub bucket: String,
    /// The key prefix of the checkpoint's files (no leading or trailing slash).
    pub prefix: KeyPath,
    pub(crate) store: Arc<dyn ObjectStore>,
}

impl Location {
    /// Parses `url` and builds its store from the environment, as each cloud's `object_store`
    /// builder reads it (`AWS_*`, `GOOGLE_*`, `AZURE_*`).
    pub fn parse(url: &str, retries: Retries) -> Result<Location, StoreError> {
        let bad = |reason: &str| StoreError::BadUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let scheme = Scheme::of(url).ok_or_else(|| bad("expected s3://, gs://, az:// or http(s)://"))?;
        let trimmed = url.trim_end_matches('/');
        let (_, rest) = trimmed.split_once("://").expect("checked by Scheme::of");
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad("no bucket"));
        }
        // A prefix that could climb out of itself is refused before any request.
        if key
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..")
            && !key.is_empty()
        {
            return Err(bad("the key prefix has an empty, `.` or `..` component"));
        }
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: retries.initial_backoff,
                max_backoff: Duration::from_secs(15),
                base: 2.0,
            },
            max_retries: retries.max_retries,
            retry_timeout: retries.timeout,
        };
        let built = |e: object_store::Error| StoreError::Builder {
            url: trimmed.to_string(),
            variables: scheme.credential_variables(),
            source: Box::new(e),
        };
        let (store, prefix): (Arc<dyn ObjectStore>, &str) = match scheme {
            Scheme::S3 => (
                Arc::new(
                    AmazonS3Builder::from_env()
                        .with_bucket_name(bucket)
                        .with_retry(retry)
                        .build()
                        .map_err(built)?,
                ),
                key,
            ),
            Scheme::Gcs => (
                Arc::new(
                    GoogleCloudStorageBuilder::from_env()
                        .with_bucket_name(bucket)
                        .with_retry(retry)
                        .build()
                        .map_err(built)?,
                ),
                key,
            ),
            Scheme::Azure => (
                Arc::new(
                    MicrosoftAzureBuilder::from_env()
                        .with_container_name(bucket)
                        .with_retry(retry)
                        .build()
                        .map_err(built)?,
                ),
                key,
            ),
            // The store is rooted at the URL itself; keys are relative to it.
            Scheme::Http => (
                Arc::new(
                    HttpBuilder::new()
                        .with_url(trimmed)
                        .with_retry(retry)
                        // An http:// URL asks for plain HTTP; https:// is never downgraded.
                        .with_client_options(ClientOptions::new().with_allow_http(trimmed.starts_with("http://")))
                        .build()
                        .map_err(built)?,
                ),
                "",
            ),
        };
        Ok(Location {
            url: trimmed.to_string(),
            scheme,
            bucket: bucket.to_string(),
            prefix: KeyPath::from(prefix),
            store,
        })
    }

    /// Whether this is a whole bucket (or container) rather than a prefix inside one: never an
    /// output, since replacing it would replace everything the bucket holds.
    pub fn is_bucket_root(&self) -> bool {
        self.scheme != Scheme::Http && self.prefix.as_ref().is_empty()
    }

    /// The key of file `name` of the checkpoint.
    pub(crate) fn key(&self, name: &str) -> KeyPath {
        self.prefix.parts().chain(KeyPath::from(name).parts()).collect()
    }

    /// The URL of file `name` of the checkpoint, for messages.
    pub fn url_of(&self, name: &str) -> String {
        format!("{}/{name}", self.url)
    }

    /// The sibling location `name` (same bucket, same parent prefix): where a replacement is
    /// staged before it takes this one's place.
    pub(crate) fn sibling(&self, name: &str) -> Location {
        let mut parts: Vec<_> = self.prefix.parts().collect();
        parts.pop();
        let prefix: KeyPath = parts.into_iter().chain(KeyPath::from(name).parts()).collect();
        let parent = self.url.rsplit_once('/').map_or(self.url.as_str(), |(p, _)| p);
        Location {
            url: format!("{parent}/{name}"),
            scheme: self.scheme,
            bucket: self.bucket.clone(),
            prefix,
            store: Arc::clone(&self.store),
        }
    }

    /// The last component of the prefix (the checkpoint's "directory name").
    pub fn name(&self) -> String {
        self.prefix
            .parts()
            .last()
            .map_or_else(String::new, |p| p.as_ref().to_string())
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case("s3:///prefix", "no bucket")]
    #[case("s3://bucket/a/../b", "`..`")]
    #[case("s3://bucket/a//b", "empty")]
    #[case("ftp://bucket/a", "expected s3://")]
    fn bad_urls_are_refused_before_any_request(#[case] url: &str, #[case] reason: &str) {
        let error = Location::parse(url, Retries::default()).unwrap_err().to_string();
        assert!(error.contains(reason), "{error}");
    }

    #[test]
    fn keys_and_siblings_stay_under_the_bucket() {
        let location = Location::parse("s3://bucket/models/exp1/", Retries::default()).unwrap();
        assert_eq!(location.url, "s3://bucket/models/exp1");
        assert_eq!(location.key("config.json").as_ref(), "models/exp1/config.json");
        let sibling = location.sibling(".exp1.partial");
        assert_eq!(sibling.prefix.as_ref(), "models/.exp1.partial");
        assert_eq!(sibling.url, "s3://bucket/models/.exp1.partial");
        assert_eq!(location.name(), "exp1");
    }
}
