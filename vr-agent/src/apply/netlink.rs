//! Applies a net plan through rtnetlink.
