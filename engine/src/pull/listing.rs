//! The hub's listing of a repository (`/api/models/{repo}/revision/main?blobs=true`): every
//! file with its size and checksum.

use serde::Deserialize;

use super::verify::Digest;

#[derive(Debug, Clone)]
pub struct RemoteFile {
    pub name: String,
    pub size: Option<u64>,
    pub digest: Option<Digest>,
}

#[derive(Debug)]
pub struct Listing {
    pub files: Vec<RemoteFile>,
}

#[derive(Deserialize)]
struct RawListing {
    siblings: Vec<RawSibling>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSibling {
    rfilename: String,
    size: Option<u64>,
    blob_id: Option<String>,
    lfs: Option<RawLfs>,
}

#[derive(Deserialize)]
struct RawLfs {
    sha256: String,
    size: Option<u64>,
}

impl Listing {
    pub fn parse(json: &str) -> Result<Listing, String> {
        let raw: RawListing = serde_json::from_str(json).map_err(|e| e.to_string())?;
        let files = raw
            .siblings
            .into_iter()
            .map(|s| {
                let (size, digest) = match s.lfs {
                    Some(lfs) => (lfs.size.or(s.size), Some(Digest::Sha256(lfs.sha256))),
                    None => (s.size, s.blob_id.map(Digest::GitBlob)),
                };
                RemoteFile { name: s.rfilename, size, digest }
            })
            .collect();
        Ok(Listing { files })
    }
}
