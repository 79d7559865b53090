//! The hub through `hf-hub`'s blocking client: the endpoint, token and cache from the
//! environment (`HF_ENDPOINT`, `HF_TOKEN`, `HF_HOME`), the listing, downloads, and what its
//! errors mean to a user.

use std::io::ErrorKind as IoKind;
use std::path::{Path, PathBuf};

use hf_hub::api::sync::{Api, ApiBuilder, ApiError};
use hf_hub::{Cache, Repo};

use super::error::PullError;
use super::listing::Listing;

pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// `HF_ENDPOINT` without a trailing '/', or the default.
pub fn endpoint() -> String {
    match std::env::var("HF_ENDPOINT") {
        Ok(e) if !e.trim().is_empty() => e.trim().trim_end_matches('/').to_string(),
        _ => DEFAULT_ENDPOINT.to_string(),
    }
}

pub struct Hub {
    pub endpoint: String,
    pub cache: Cache,
    pub has_token: bool,
    api: Api,
}

/// What a failed request was for, to word its error.
pub enum Request<'a> {
    Listing { repo: &'a str },
    File { name: &'a str },
}

impl Hub {
    pub fn from_env(progress: bool) -> Result<Hub, PullError> {
        let endpoint = endpoint();
        let cache = Cache::from_env();
        let token = std::env::var("HF_TOKEN")
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .or_else(|| cache.token());
        let api = ApiBuilder::from_cache(cache.clone())
            .with_endpoint(endpoint.clone())
            .with_token(token.clone())
            .with_progress(progress)
            .with_user_agent("qwen3-embed", env!("CARGO_PKG_VERSION"))
            .build()
            .map_err(|e| PullError::Hub { what: "cannot set up the hub client".into(), detail: e.to_string() })?;
        Ok(Hub { endpoint, cache, has_token: token.is_some(), api })
    }

    /// Where `repo`'s files go in the hub cache.
    pub fn repo_dir(&self, repo: &str) -> PathBuf {
        self.cache.path().join(Repo::model(repo.to_string()).folder_name())
    }

    pub fn listing(&self, repo: &str, manual: &str) -> Result<Listing, PullError> {
        let response = self
            .api
            .model(repo.to_string())
            .info_request()
            .query("blobs", "true")
            .call()
            .map_err(|e| self.request_error(e, Request::Listing { repo }, manual))?;
        let text = response
            .into_string()
            .map_err(|e| PullError::Interrupted { file: format!("the listing of {repo}"), detail: e.to_string() })?;
        Listing::parse(&text).map_err(|e| PullError::Hub {
            what: format!("{} gave a listing of {repo} that cannot be read", self.endpoint),
            detail: e,
        })
    }

    /// The file as the cache already has it for the revision last pulled, if it does.
    pub fn cached(&self, repo: &str, name: &str) -> Option<PathBuf> {
        self.cache.repo(Repo::model(repo.to_string())).get(name)
    }

    /// Downloads (or resumes) `name` into the cache; returns its snapshot path.
    pub fn download(&self, repo: &str, name: &str, manual: &str) -> Result<PathBuf, PullError> {
        self.api.model(repo.to_string()).download(name).map_err(|e| self.api_error(e, repo, name, manual))
    }

    fn api_error(&self, e: ApiError, repo: &str, name: &str, manual: &str) -> PullError {
        match e {
            ApiError::RequestError(e) => self.request_error(*e, Request::File { name }, manual),
            ApiError::TooManyRetries(e) => self.api_error(*e, repo, name, manual),
            ApiError::IoError(e) => io_error(e, name, &self.repo_dir(repo)),
            ApiError::InvalidResume => PullError::Hub {
                what: format!("cannot resume {name}"),
                detail: format!(
                    "a partial download is longer than the file; delete {}/blobs/*.part and run \
                     the command again",
                    self.repo_dir(repo).display()
                ),
            },
            ApiError::LockAcquisition(lock) => PullError::Hub {
                what: format!("another download of {name} is running"),
                detail: format!("its lock file is {}", lock.display()),
            },
            other => PullError::Hub {
                what: format!("{} answered the request for {name} in a way hf-hub cannot use", self.endpoint),
                detail: other.to_string(),
            },
        }
    }

    fn request_error(&self, e: ureq::Error, what: Request<'_>, manual: &str) -> PullError {
        match e {
            ureq::Error::Status(status, response) => match what {
                Request::Listing { repo } if matches!(status, 401 | 403 | 404) => {
                    PullError::UnknownRepo { repo: repo.into(), status, token: self.has_token }
                }
                Request::Listing { repo } => PullError::Hub {
                    what: format!("{} answered HTTP {status} for the listing of {repo}", self.endpoint),
                    detail: response.into_string().unwrap_or_default(),
                },
                Request::File { name } => PullError::Hub {
                    what: format!("{} answered HTTP {status} for {name}", self.endpoint),
                    detail: response.into_string().unwrap_or_default(),
                },
            },
            ureq::Error::Transport(t) => {
                let name = match what {
                    Request::Listing { repo } => format!("the listing of {repo}"),
                    Request::File { name } => name.to_string(),
                };
                match t.kind() {
                    ureq::ErrorKind::Dns | ureq::ErrorKind::ConnectionFailed | ureq::ErrorKind::ProxyConnect => {
                        PullError::NoNetwork {
                            endpoint: self.endpoint.clone(),
                            detail: t.to_string(),
                            manual: manual.to_string(),
                        }
                    }
                    ureq::ErrorKind::Io => PullError::Interrupted { file: name, detail: t.to_string() },
                    _ => PullError::Hub { what: format!("the request for {name} failed"), detail: t.to_string() },
                }
            }
        }
    }
}

/// An I/O error while downloading `name` into `dir`.
pub fn io_error(e: std::io::Error, name: &str, dir: &Path) -> PullError {
    match e.kind() {
        IoKind::StorageFull => PullError::DiskFull { dir: dir.to_path_buf() },
        IoKind::UnexpectedEof
        | IoKind::ConnectionReset
        | IoKind::ConnectionAborted
        | IoKind::TimedOut
        | IoKind::BrokenPipe => PullError::Interrupted { file: name.into(), detail: e.to_string() },
        _ => PullError::Io { path: dir.to_path_buf(), source: e },
    }
}
