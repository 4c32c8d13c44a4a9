//! vpc-manager: the VPC management service.
//!
//! This binary grows the CloudStack-compatible API, the store and the
//! orchestration in later steps; today it reports its version and the agent
//! protocol it speaks, so packaging and the README commands can rely on it.

use clap::Parser;

/// The VPC management service.
#[derive(Parser, Debug)]
#[command(name = "vpc-manager", version, about)]
struct Cli {
    /// Print the agent protocol service this manager drives and exit.
    #[arg(long)]
    agent_protocol: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if cli.agent_protocol {
        println!("{}", vpc_proto::VIRTUAL_ROUTER_SERVICE);
        return Ok(());
    }
    anyhow::bail!(
        "the management service is not built yet; see README.md for the status of each part"
    )
}
