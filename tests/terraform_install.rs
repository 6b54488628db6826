//! Terraform from a releases mirror: the real Terraform 1.0.3 (installed from PyPI into .tools/
//! by scripts/install-terraform) is zipped and served by a local mirror with its SHA256SUMS;
//! Gantry downloads, checks, caches and runs it, and refuses a tampered download.

use std::io::Write;
use std::path::PathBuf;

use gantry::executor::terraform_install::{InstallError, Installer, platform};
use sha2::{Digest, Sha256};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn real_terraform() -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/bin/terraform");
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run scripts/install-terraform, or scripts/test)",
            path.display()
        )
    })
}

fn zip_of(binary: &[u8]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .unix_permissions(0o755);
    zip.start_file("terraform", options).unwrap();
    zip.write_all(binary).unwrap();
    zip.finish().unwrap().into_inner()
}

/// A mirror serving `served` as Terraform 1.0.3 with `sums_for`'s checksum, each at most once.
async fn mirror(served: Vec<u8>, sums_for: &[u8]) -> MockServer {
    let server = MockServer::start().await;
    let zip_name = format!("terraform_1.0.3_{}.zip", platform());
    let sums = format!("{}  {zip_name}\n", hex::encode(Sha256::digest(sums_for)));
    Mock::given(method("GET"))
        .and(path("/terraform/1.0.3/terraform_1.0.3_SHA256SUMS"))
        .respond_with(ResponseTemplate::new(200).set_body_string(sums))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/terraform/1.0.3/{zip_name}")))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(served))
        .expect(1)
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn a_version_is_downloaded_checked_cached_and_runs() {
    let archive = zip_of(&real_terraform());
    let server = mirror(archive.clone(), &archive).await;
    let cache = tempfile::tempdir().unwrap();
    let releases = format!("{}/terraform", server.uri()).parse().unwrap();
    let installer = Installer::new(releases, cache.path().to_path_buf());

    let binary = installer.ensure("1.0.3").await.unwrap();
    assert_eq!(binary, cache.path().join("1.0.3/terraform"));
    let output = std::process::Command::new(&binary)
        .arg("version")
        .env("CHECKPOINT_DISABLE", "1")
        .output()
        .unwrap();
    let version = String::from_utf8_lossy(&output.stdout);
    assert!(version.starts_with("Terraform v1.0.3"), "{version}");

    // Cached: no second download (the mirror's mocks expect one request each).
    assert_eq!(installer.ensure("1.0.3").await.unwrap(), binary);
}

#[tokio::test]
async fn a_download_that_does_not_match_its_checksum_is_refused_and_not_cached() {
    let genuine = zip_of(b"#!/bin/sh\necho genuine\n");
    let tampered = zip_of(b"#!/bin/sh\necho tampered\n");
    let server = mirror(tampered, &genuine).await;
    let cache = tempfile::tempdir().unwrap();
    let releases = format!("{}/terraform/", server.uri()).parse().unwrap();
    let installer = Installer::new(releases, cache.path().to_path_buf());
    let err = installer.ensure("1.0.3").await.unwrap_err();
    assert!(
        matches!(err, InstallError::ChecksumMismatch(ref v) if v == "1.0.3"),
        "{err}"
    );
    assert!(!cache.path().join("1.0.3/terraform").exists());
}

#[tokio::test]
async fn a_version_the_mirror_does_not_have_is_a_clear_error() {
    let server = MockServer::start().await;
    let cache = tempfile::tempdir().unwrap();
    let releases = format!("{}/terraform/", server.uri()).parse().unwrap();
    let err = Installer::new(releases, cache.path().to_path_buf())
        .ensure("9.9.9")
        .await
        .unwrap_err();
    assert!(matches!(err, InstallError::Download { .. }), "{err}");
    assert!(
        err.to_string().contains("terraform_9.9.9_SHA256SUMS"),
        "{err}"
    );
}
