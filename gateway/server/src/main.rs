//! The `pairgate` binary: parses the command line and hands over to [`pairgate::cli`].

fn main() -> std::process::ExitCode {
    pairgate::cli::main()
}
