//! The `gantry` binary: everything lives in the library; this only hands over the command line.

/// mimalloc instead of glibc's allocator: ingest allocates and frees a request body, its copy
/// and a few strings per webhook across threads, where glibc spent measurably more.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    gantry::cli::run()
}
