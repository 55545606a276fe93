//! The `peerchain` executable: parses the command line and runs the chosen command.

use std::process::ExitCode;

use clap::Parser;
use peerchain::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Node(args) => peerchain::commands::run_node(*args),
        Command::Keygen(a) => peerchain::commands::keygen(&a),
        Command::Address(a) => peerchain::commands::address(&a),
        Command::NodeKey(a) => peerchain::node_key::print(&a),
        Command::DevKey(a) => peerchain::dev::print_key(&a),
        Command::Tx(t) => peerchain::commands::tx(t),
        Command::Genesis(g) => peerchain::commands::genesis(g),
        Command::Status(s) => peerchain::commands::status(&s),
        Command::Admin(a) => peerchain::commands::admin(&a),
        Command::Load(l) => peerchain::load::run(&l),
        Command::Scenario(s) => return peerchain::scenario::main(&s),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
