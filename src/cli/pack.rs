//! Packs a configuration directory for `gantry runs create`: a `.tar.gz` with the files at its
//! root, leaving out what `.gitignore` and `.terraformignore` ignore, and always `.git/` and
//! `.terraform/` (local state of a `terraform init`, never part of a configuration).

use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;

/// What was packed.
pub struct Packed {
    pub archive: Vec<u8>,
    pub files: usize,
}

/// The directory to upload for a configuration in `dir` of a workspace whose working
/// directory is `working_directory`: the repository root, that many levels up (as Terraform
/// Cloud's CLI does), so that modules referenced with `../` travel along.
pub fn upload_root(dir: &Path, working_directory: &str) -> anyhow::Result<PathBuf> {
    let dir = dir
        .canonicalize()
        .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    anyhow::ensure!(dir.is_dir(), "{} is not a directory", dir.display());
    let parts: Vec<&str> = working_directory
        .split('/')
        .filter(|p| !p.is_empty())
        .collect();
    if parts.is_empty() {
        return Ok(dir);
    }
    let relative: PathBuf = parts.iter().collect();
    anyhow::ensure!(
        dir.ends_with(&relative),
        "the workspace's working directory is {working_directory}, but {} does not end in it: \
         run this from the configuration's directory in a checkout of the repository",
        dir.display()
    );
    Ok(dir
        .ancestors()
        .nth(parts.len())
        .expect("a path that ends in N parts has N ancestors")
        .to_path_buf())
}

/// A `.tar.gz` of `root`'s files (paths relative to it), ignore files honoured.
pub fn pack(root: &Path) -> anyhow::Result<Packed> {
    let walker = ignore::WalkBuilder::new(root)
        .hidden(false)
        .parents(false)
        .git_global(false)
        .git_exclude(false)
        .require_git(false)
        .add_custom_ignore_filename(".terraformignore")
        .filter_entry(|entry| {
            let skipped = entry.depth() > 0
                && entry.file_type().is_some_and(|t| t.is_dir())
                && matches!(entry.file_name().to_str(), Some(".git" | ".terraform"));
            !skipped
        })
        .sort_by_file_path(|a, b| a.cmp(b))
        .build();
    let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
    tar.follow_symlinks(false);
    let mut files = 0;
    for entry in walker {
        let entry = entry?;
        if entry.depth() == 0 {
            continue;
        }
        let relative = entry.path().strip_prefix(root)?;
        let kind = entry.file_type();
        if kind.is_some_and(|t| t.is_dir()) {
            tar.append_dir(relative, entry.path())?;
        } else {
            tar.append_path_with_name(entry.path(), relative)?;
            files += 1;
        }
    }
    let archive = tar.into_inner()?.finish()?;
    Ok(Packed { archive, files })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(archive: &[u8]) -> Vec<String> {
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(archive));
        let mut names: Vec<String> = tar
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn ignore_files_and_local_terraform_directories_are_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for (path, body) in [
            ("main.tf", "output \"a\" { value = 1 }"),
            ("modules/net/main.tf", ""),
            ("secrets.auto.tfvars", "token = \"x\""),
            ("notes/draft.md", ""),
            (".terraform/providers/p", ""),
            (".git/HEAD", ""),
            (".gitignore", "secrets.auto.tfvars\n"),
            (".terraformignore", "notes/\n"),
        ] {
            let file = root.join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, body).unwrap();
        }
        let packed = pack(root).unwrap();
        assert_eq!(
            names(&packed.archive),
            [
                ".gitignore",
                ".terraformignore",
                "main.tf",
                "modules",
                "modules/net",
                "modules/net/main.tf"
            ]
        );
        assert_eq!(packed.files, 4);
    }

    #[test]
    fn a_working_directory_uploads_the_repository_root_it_is_in() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("repo/envs/prod");
        std::fs::create_dir_all(&config).unwrap();
        let root = dir.path().join("repo").canonicalize().unwrap();
        assert_eq!(upload_root(&config, "envs/prod").unwrap(), root);
        assert_eq!(
            upload_root(&config, "").unwrap(),
            config.canonicalize().unwrap()
        );
        let wrong = upload_root(&config, "envs/staging").unwrap_err();
        assert!(wrong.to_string().contains("does not end in it"), "{wrong}");
    }
}
