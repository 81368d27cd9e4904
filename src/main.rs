//! The `coflow` binary: the command line of [`coflow::cli`].

/// mimalloc: a flow run makes many small, short-lived JSON allocations, where the system
/// allocator spent a fifth of the service's time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    coflow::cli::main()
}
