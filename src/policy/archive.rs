//! A policy set kept in a repository: read from the repository's tarball (GitHub's, at the
//! head of the set's branch) without unpacking it. Only regular files under the set's folder
//! are read; GitHub's top folder (`owner-repo-sha/`) is dropped, hidden files and folders are
//! skipped, and the same size limit holds as for a set on Gantry's host.

use std::io::Read;

use flate2::read::GzDecoder;

use super::{Loaded, MAX_SET_BYTES, assemble, too_large};

/// Loads policy set `name` from folder `folder` (`""`: the root) of the gzipped repository
/// tarball `tarball`.
pub fn load_archive(name: &str, tarball: &[u8], folder: &str) -> Loaded {
    let failed = |why: String| (name.to_string(), why);
    let folder = folder.trim_matches('/');
    let mut archive = tar::Archive::new(GzDecoder::new(tarball));
    let entries = archive
        .entries()
        .map_err(|e| failed(format!("reading the repository's tarball: {e}")))?;
    let mut hcl = None;
    let mut modules = Vec::new();
    let mut total = 0u64;
    for entry in entries {
        let mut entry = entry.map_err(|e| failed(format!("reading the tarball: {e}")))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry
            .path()
            .map_err(|e| failed(format!("reading the tarball: {e}")))?
            .to_string_lossy()
            .into_owned();
        // GitHub's top folder, then the set's folder.
        let Some((_, in_repo)) = path.split_once('/') else {
            continue;
        };
        let within = if folder.is_empty() {
            in_repo
        } else {
            match in_repo
                .strip_prefix(folder)
                .and_then(|p| p.strip_prefix('/'))
            {
                Some(within) => within,
                None => continue,
            }
        };
        if within
            .split('/')
            .any(|part| part.starts_with('.') || part.is_empty())
        {
            continue;
        }
        let is_hcl = within == "policies.hcl";
        if !is_hcl && !within.ends_with(".rego") {
            continue;
        }
        total += entry.header().size().unwrap_or(u64::MAX);
        if total > MAX_SET_BYTES {
            return Err(failed(too_large()));
        }
        let mut text = String::new();
        (&mut entry)
            .take(MAX_SET_BYTES)
            .read_to_string(&mut text)
            .map_err(|e| failed(format!("reading {within}: {e}")))?;
        if is_hcl {
            hcl = Some(text);
        } else {
            modules.push((within.to_string(), text));
        }
    }
    let hcl = hcl.ok_or_else(|| {
        let at = if folder.is_empty() { "/" } else { folder };
        failed(format!("the repository has no policies.hcl in {at}"))
    })?;
    assemble(name, &hcl, modules)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A gzipped tarball as GitHub makes them: every path under one top folder.
    fn tarball(files: &[(&str, &str)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        for (path, text) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(text.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder
                .append_data(
                    &mut header,
                    format!("acme-policies-abc/{path}"),
                    text.as_bytes(),
                )
                .unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap()
    }

    const HCL: &str = "policy \"p\" {\n  query = \"data.p.deny\"\n}\n";

    #[test]
    fn reads_the_sets_folder_only() {
        let archive = tarball(&[
            ("guards/policies.hcl", HCL),
            ("guards/p.rego", "package p\ndeny := []\n"),
            ("guards/lib/util.rego", "package util\n"),
            ("guards/.hidden/x.rego", "package hidden\n"),
            ("guards/README.md", "not policy"),
            ("other/q.rego", "package q\n"),
        ]);
        let set = load_archive("guards", &archive, "guards/").unwrap();
        let paths: Vec<&str> = set.modules.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["lib/util.rego", "p.rego"]);
        assert_eq!(set.policies[0].name, "p");
    }

    #[test]
    fn a_folder_without_policies_hcl_does_not_load() {
        let archive = tarball(&[("guards/p.rego", "package p\n")]);
        let (name, why) = load_archive("guards", &archive, "guards").unwrap_err();
        assert_eq!(name, "guards");
        assert!(why.contains("no policies.hcl in guards"), "{why}");
        let (_, why) = load_archive("guards", b"not a tarball", "").unwrap_err();
        assert!(why.contains("tarball"), "{why}");
    }
}
