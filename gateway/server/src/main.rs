//! The `pairgate` binary: parses the command line and hands over to [`pairgate::cli`].

use std::os::unix::process::CommandExt;

/// mimalloc instead of glibc's malloc: allocation was an eighth of the request path's CPU
/// (docs/benchmarks.md, "Where the time goes").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The mimalloc option the binary needs: commit arena memory as it is used, not a whole arena at
/// once (with transparent huge pages, an eagerly committed arena doubles the idle RSS).
const ALLOCATOR_OPTION: (&str, &str) = ("MIMALLOC_ARENA_EAGER_COMMIT", "0");

fn main() -> std::process::ExitCode {
    tune_allocator();
    pairgate::cli::main()
}

/// mimalloc reads its options from the environment when it first needs them, before `main`
/// runs; so when the option is not set, the binary starts itself again once with it set (same
/// process id, arguments and `argv[0]`). If that fails it carries on with mimalloc's defaults.
fn tune_allocator() {
    let (name, value) = ALLOCATOR_OPTION;
    if std::env::var_os(name).is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let mut again = std::process::Command::new(exe);
    if let Some(arg0) = args.next() {
        again.arg0(arg0);
    }
    // `exec` returns only if it failed.
    let _failed = again.args(args).env(name, value).exec();
}
