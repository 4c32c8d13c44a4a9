//! Replaces the agent's nftables table in one transaction.
