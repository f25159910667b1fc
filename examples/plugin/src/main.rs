//! The `snapsim` program with this crate's additions beside the built-ins: try
//! `cargo run --release -p snapsim-example --example snapsim-example -- list`.

fn main() -> std::process::ExitCode {
    snapsim_scenarios::cli::main(snapsim_example::catalog())
}
