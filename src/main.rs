fn main() -> std::process::ExitCode {
    lamina::cli::main()
}
