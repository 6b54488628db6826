//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`, and `fuzz/regressions/<target>/`
//! where a crash was kept) through the same `gantry::fuzzing` functions the fuzz targets call, so
//! the suite keeps what the fuzzers checked without needing nightly. See `docs/fuzzing.md`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use gantry::fuzzing;

/// Every file of the target's corpus and regressions; the corpus must not be empty, or this
/// test would pass having checked nothing.
fn inputs(target: &str) -> Vec<PathBuf> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let files_in = |dir: PathBuf| -> Vec<PathBuf> {
        match std::fs::read_dir(&dir) {
            Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => panic!("{}: {e}", dir.display()),
        }
    };
    let corpus = files_in(fuzz.join("corpus").join(target));
    assert!(!corpus.is_empty(), "fuzz/corpus/{target}/ has no inputs");
    let mut all = corpus;
    all.extend(files_in(fuzz.join("regressions").join(target)));
    all.sort();
    all
}

/// Runs every input, then fails naming each one that panicked.
fn replay(target: &str, harness: fn(&[u8])) {
    let failed: Vec<String> = inputs(target)
        .into_iter()
        .filter(|path| {
            let data = std::fs::read(path).unwrap();
            catch_unwind(AssertUnwindSafe(|| harness(&data))).is_err()
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(failed.is_empty(), "{target} failed on: {failed:#?}");
}

#[test]
fn signature_corpus() {
    replay("signature", fuzzing::signature);
}

#[test]
fn event_corpus() {
    replay("event", fuzzing::event);
}

#[test]
fn command_corpus() {
    replay("command", fuzzing::command);
}

#[test]
fn tar_corpus() {
    replay("tar", fuzzing::tar);
}
