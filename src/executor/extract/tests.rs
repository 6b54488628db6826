//! Safe extraction, one hostile archive at a time. Archives are built in memory with raw
//! headers, so that they can say what a well-behaved tar writer would refuse to.

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use tar::{EntryType, Header};

use super::*;

enum Item<'a> {
    File(&'a str, &'a [u8]),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
    HardLink(&'a str, &'a str),
    Special(&'a str, EntryType),
}

/// A .tar.gz of these items, with names written raw into the headers.
fn tarball(items: &[Item<'_>]) -> Vec<u8> {
    let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    for item in items {
        let mut header = Header::new_gnu();
        let (name, kind, data, link): (&str, EntryType, &[u8], Option<&str>) = match item {
            Item::File(name, data) => (name, EntryType::Regular, data, None),
            Item::Dir(name) => (name, EntryType::Directory, b"", None),
            Item::Symlink(name, to) => (name, EntryType::Symlink, b"", Some(to)),
            Item::HardLink(name, to) => (name, EntryType::Link, b"", Some(to)),
            Item::Special(name, kind) => (name, *kind, b"", None),
        };
        let raw = &mut header.as_old_mut().name;
        raw[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(link) = link {
            header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        header.set_entry_type(kind);
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append(&header, data).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

/// Extracts into `<tempdir>/work`, stripping the wrapping directory.
fn extract(archive: &[u8], limits: Limits) -> (tempfile::TempDir, Result<Extracted, ExtractError>) {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let result = extract_tar_gz(archive, &work, 1, limits);
    (dir, result)
}

#[test]
fn a_repository_tarball_unpacks_without_its_wrapping_directory() {
    let archive = tarball(&[
        Item::Dir("octo-infra-abc123/"),
        Item::File("octo-infra-abc123/main.tf", b"output \"x\" { value = 1 }\n"),
        Item::Dir("octo-infra-abc123/modules/net/"),
        Item::File("octo-infra-abc123/modules/net/vpc.tf", b"# vpc\n"),
        Item::Symlink("octo-infra-abc123/modules/current", "net"),
    ]);
    let (dir, result) = extract(&archive, Limits::default());
    assert_eq!(
        result.unwrap(),
        Extracted {
            files: 4,
            bytes: 31
        }
    );
    let work = dir.path().join("work");
    assert_eq!(
        std::fs::read_to_string(work.join("main.tf")).unwrap(),
        "output \"x\" { value = 1 }\n"
    );
    assert_eq!(
        std::fs::read_to_string(work.join("modules/current/vpc.tf")).unwrap(),
        "# vpc\n"
    );
}

#[test]
fn absolute_paths_are_refused() {
    let (_dir, result) = extract(
        &tarball(&[Item::File("/etc/evil", b"x")]),
        Limits::default(),
    );
    assert!(matches!(result, Err(ExtractError::AbsolutePath(p)) if p == "/etc/evil"));
}

#[test]
fn parent_directory_traversal_is_refused() {
    let (dir, result) = extract(
        &tarball(&[Item::File("repo/../../evil", b"x")]),
        Limits::default(),
    );
    assert!(
        matches!(result, Err(ExtractError::Traversal(_))),
        "{result:?}"
    );
    assert!(!dir.path().join("evil").exists());
}

#[test]
fn links_pointing_out_of_the_tree_are_refused() {
    for target in ["../../outside", "/etc/passwd", "a/../../.."] {
        let archive = tarball(&[Item::Symlink("repo/link", target)]);
        let (_dir, result) = extract(&archive, Limits::default());
        assert!(
            matches!(result, Err(ExtractError::LinkEscapes { .. })),
            "{target}: {result:?}"
        );
    }
}

/// Found by the tar fuzz target's invariant: each link passed its own check, but the second
/// was made through the first and pointed outside the tree.
#[test]
fn a_link_cannot_be_made_through_another_link_from_the_archive() {
    for items in [
        [
            Item::Symlink("repo/a", "."),
            Item::Symlink("repo/a/e", "../x"),
        ],
        [
            Item::Symlink("repo/x/y/z", "../.."),
            Item::Symlink("repo/x/y/z/w", "../../../etc/passwd"),
        ],
    ] {
        let (dir, result) = extract(&tarball(&items), Limits::default());
        assert!(
            matches!(result, Err(ExtractError::LinkEscapes { .. })),
            "{result:?}"
        );
        assert!(!dir.path().join("work/e").exists() && !dir.path().join("work/w").exists());
    }
}

#[test]
fn a_file_cannot_be_written_through_a_link_from_the_archive() {
    let archive = tarball(&[
        Item::Symlink("repo/sub", "."),
        Item::File("repo/sub/x.tf", b"x"),
    ]);
    let (_dir, result) = extract(&archive, Limits::default());
    assert!(
        matches!(result, Err(ExtractError::Duplicate(_))),
        "{result:?}"
    );
}

#[test]
fn hard_links_devices_and_fifos_are_refused() {
    let (_d, hard) = extract(
        &tarball(&[
            Item::File("repo/a", b"x"),
            Item::HardLink("repo/b", "repo/a"),
        ]),
        Limits::default(),
    );
    assert!(matches!(hard, Err(ExtractError::HardLink(_))), "{hard:?}");
    for kind in [EntryType::Char, EntryType::Block, EntryType::Fifo] {
        let (_d, result) = extract(
            &tarball(&[Item::Special("repo/dev", kind)]),
            Limits::default(),
        );
        assert!(
            matches!(result, Err(ExtractError::SpecialFile(_))),
            "{kind:?}: {result:?}"
        );
    }
}

#[test]
fn too_many_files_are_refused() {
    let names: Vec<String> = (0..11).map(|i| format!("repo/f{i}.tf")).collect();
    let items: Vec<Item<'_>> = names.iter().map(|n| Item::File(n, b"x")).collect();
    let limits = Limits {
        max_bytes: 1 << 20,
        max_files: 10,
    };
    let (_d, result) = extract(&tarball(&items), limits);
    assert!(
        matches!(result, Err(ExtractError::TooManyFiles(10))),
        "{result:?}"
    );
}

#[test]
fn a_decompression_bomb_stops_at_the_size_limit() {
    let zeros = vec![0u8; 8 * 1024 * 1024];
    let archive = tarball(&[Item::File("repo/bomb", &zeros)]);
    assert!(
        archive.len() < 64 * 1024,
        "compresses to {} bytes",
        archive.len()
    );
    let limits = Limits {
        max_bytes: 1024 * 1024,
        max_files: 10,
    };
    let (_d, result) = extract(&archive, limits);
    assert!(
        matches!(result, Err(ExtractError::TooLarge(_))),
        "{result:?}"
    );
}

#[test]
fn garbage_is_reported_as_not_a_tarball() {
    let (_d, result) = extract(b"definitely not gzip", Limits::default());
    assert!(
        matches!(result, Err(ExtractError::Corrupt(_))),
        "{result:?}"
    );
    let mut truncated = tarball(&[Item::File("repo/a.tf", &[7u8; 4096])]);
    truncated.truncate(truncated.len() / 2);
    let (_d, result) = extract(&truncated, Limits::default());
    // Cut inside a file's data: a read error, the sender's fault, never an `Io` (ours).
    assert!(
        matches!(result, Err(ExtractError::Corrupt(_))),
        "{result:?}"
    );
}

#[test]
fn a_pax_global_header_is_skipped() {
    let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    let comment = b"52 comment=0123456789abcdef0123456789abcdef01234567\n";
    let mut header = Header::new_ustar();
    header.set_path("pax_global_header").unwrap();
    header.set_entry_type(EntryType::XGlobalHeader);
    header.set_size(comment.len() as u64);
    header.set_cksum();
    builder.append(&header, &comment[..]).unwrap();
    let mut file = Header::new_gnu();
    file.set_path("repo/main.tf").unwrap();
    file.set_size(1);
    file.set_mode(0o644);
    file.set_cksum();
    builder.append(&file, &b"x"[..]).unwrap();
    let mut gz = builder.into_inner().unwrap();
    gz.flush().unwrap();
    let archive = gz.finish().unwrap();
    let (dir, result) = extract(&archive, Limits::default());
    assert_eq!(result.unwrap().files, 1);
    assert!(dir.path().join("work/main.tf").exists());
}
