//! `snapsim`: the program over the built-in catalog (see `snapsim_scenarios::cli`).

use snapsim_scenarios::{cli, Catalog};
use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main(Catalog::builtin())
}
