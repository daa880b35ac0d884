//! `proglog-compare`: see the crate documentation of [`proglog_compare`].

fn main() -> std::process::ExitCode {
    proglog_compare::cli::main()
}
