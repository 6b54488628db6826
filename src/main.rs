//! The `gantry` binary: everything lives in the library; this only hands over the command line.

/// mimalloc instead of glibc's allocator: ingest allocates a request body and a few strings per
/// webhook on one thread and frees them on another, where glibc spent measurably more.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    gantry::cli::run()
}
