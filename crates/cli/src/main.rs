fn main() -> std::process::ExitCode {
    fugue_cli::main()
}
