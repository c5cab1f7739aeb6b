//! Which object store a path names, by its URL scheme. Free of the store's client
//! dependencies, so a build without them still tells a URL from a local path (to refuse it).

use std::path::Path;

/// The object stores a location may name, by URL scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `s3://bucket/prefix` (AWS or any S3-compatible server through `AWS_ENDPOINT_URL`).
    S3,
    /// `gs://bucket/prefix`.
    Gcs,
    /// `az://container/prefix` (also `azure://`, `abfs://`).
    Azure,
    /// `http(s)://host/path`: read-only.
    Http,
}

impl Scheme {
    /// The environment variables that hold this store's credentials, named when it refuses them.
    pub fn credential_variables(self) -> &'static str {
        match self {
            Scheme::S3 => "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN, AWS_ENDPOINT_URL)",
            Scheme::Gcs => "GOOGLE_APPLICATION_CREDENTIALS / GOOGLE_SERVICE_ACCOUNT",
            Scheme::Azure => "AZURE_STORAGE_ACCOUNT_NAME / AZURE_STORAGE_ACCOUNT_KEY (or AZURE_STORAGE_SAS_KEY)",
            Scheme::Http => "the URL (HTTP stores take no credentials)",
        }
    }

    /// The store `url` names by its scheme (case-insensitive), if any.
    pub(crate) fn of(url: &str) -> Option<Scheme> {
        let (scheme, _) = url.split_once("://")?;
        Some(match scheme.to_ascii_lowercase().as_str() {
            "s3" | "s3a" => Scheme::S3,
            "gs" => Scheme::Gcs,
            "az" | "azure" | "abfs" | "abfss" => Scheme::Azure,
            "http" | "https" => Scheme::Http,
            _ => return None,
        })
    }
}

/// Whether `path` names an object-store location (`s3://`, `gs://`, `az://`, `http(s)://`)
/// rather than a local path.
pub fn is_remote(path: &Path) -> bool {
    path.to_str().and_then(Scheme::of).is_some()
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case("s3://bucket/a/b", true)]
    #[case("gs://bucket", true)]
    #[case("az://container/x", true)]
    #[case("https://host/x", true)]
    #[case("/tmp/s3://x", false)]
    #[case("relative/dir", false)]
    #[case("file:///tmp/x", false)]
    #[case("HTTPS://host/x", true)]
    #[case("s3a://bucket", true)]
    #[case("abfss://container@account/x", true)]
    #[case("./s3:/not-a-url", false)]
    fn remote_paths_are_told_by_scheme(#[case] path: &str, #[case] remote: bool) {
        assert_eq!(is_remote(Path::new(path)), remote);
    }
}
