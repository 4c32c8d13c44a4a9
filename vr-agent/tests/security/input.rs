//! Input the agent receives: strings that reach files or command lines, sizes,
//! the control socket and TLS identities.
