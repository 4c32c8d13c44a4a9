//! The agent's nftables table.
