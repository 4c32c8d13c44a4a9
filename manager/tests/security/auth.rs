//! Identity and authentication: who may read, register or create keys and
//! users, secrets at rest, logins, sessions.
