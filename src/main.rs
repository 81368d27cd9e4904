/// jemalloc: the engine allocates and frees many small JSON values per run, which glibc's
/// allocator serves markedly slower under load.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    coflow::cli::main()
}
