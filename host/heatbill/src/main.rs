//! `heatbill`: see `heatbill --help`.

fn main() -> std::process::ExitCode {
    heatbill::cli::main()
}
