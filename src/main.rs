fn main() -> std::process::ExitCode {
    coflow::cli::main()
}
