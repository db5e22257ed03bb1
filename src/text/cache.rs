//! Text (cache): text embeddings kept on disk, keyed by what the model is (the digests of its
//! weights and config), the dtype, the device kind, whyxray's version and the text, so that a
//! repeated search query or a bank of concepts goes through the text tower once per model.
//! One small file per text, written to a temporary name and renamed, so concurrent runs never
//! read half of one; each file repeats its text, so a hash collision is a miss, not an error.

use crate::source::identity::Identity;
use std::path::PathBuf;

pub struct TextCache {
    dir: Option<PathBuf>,
    dim: usize,
}

impl TextCache {
    /// The cache for one model as it runs (`kind`: dtype and device, e.g. `f32-cpu`); none
    /// when there is no cache directory.
    pub fn new(identity: &Identity, kind: &str, dim: usize) -> Self {
        let key = format!(
            "{}\0{}\0{kind}\0{dim}\0{}",
            identity.weights_sha256,
            identity.config_sha256,
            env!("CARGO_PKG_VERSION")
        );
        let dir = crate::source::convert::cache_dir().map(|d| {
            d.join("text")
                .join(format!("{:016x}", crate::fnv1a64(key.as_bytes())))
        });
        Self { dir, dim }
    }

    fn path(&self, text: &str) -> Option<PathBuf> {
        let name = format!("{:016x}.emb", crate::fnv1a64(text.as_bytes()));
        self.dir.as_ref().map(|d| d.join(name))
    }

    pub fn get(&self, text: &str) -> Option<Vec<f32>> {
        let bytes = std::fs::read(self.path(text)?).ok()?;
        let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
        if bytes.get(4..4 + len)? != text.as_bytes() {
            return None;
        }
        let floats = bytes.get(4 + len..)?;
        if floats.len() != self.dim * 4 {
            return None;
        }
        Some(
            floats
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        )
    }

    /// Best effort: a cache that cannot be written only costs the next run some time.
    pub fn put(&self, text: &str, embedding: &[f32]) {
        let (Some(dir), Some(path)) = (&self.dir, self.path(text)) else {
            return;
        };
        let mut bytes = Vec::with_capacity(4 + text.len() + embedding.len() * 4);
        bytes.extend_from_slice(&(text.len() as u32).to_le_bytes());
        bytes.extend_from_slice(text.as_bytes());
        embedding
            .iter()
            .for_each(|v| bytes.extend_from_slice(&v.to_le_bytes()));
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
        let _ = std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(&tmp, &bytes))
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|_| std::fs::remove_file(&tmp));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_round_trips_and_another_text_misses() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = TextCache {
            dir: Some(tmp.path().join("m")),
            dim: 3,
        };
        assert!(cache.get("effusion").is_none());
        cache.put("effusion", &[0.5, -1.0, 0.25]);
        assert_eq!(cache.get("effusion"), Some(vec![0.5, -1.0, 0.25]));
        assert!(cache.get("edema").is_none());
        let short = TextCache {
            dir: Some(tmp.path().join("m")),
            dim: 4,
        };
        assert!(
            short.get("effusion").is_none(),
            "another dimension is a miss"
        );
    }
}
