//! Parameters that the commands of several resources declare alike: the
//! update commands' new name and description, and the `customid` they accept.

use crate::server::command::{Arg, Text};

/// The new description of what an update changes.
pub const NEW_TEXT: Arg<Text> = Arg::opt("displaytext", "the new description");

/// The new name of what an update changes.
pub const NEW_NAME: Arg<Text> = Arg::opt("name", "the new name");

/// `customid` of an update: accepted, ids never change.
pub const CUSTOM_ID: Arg<Text> = Arg::opt("customid", "accepted; ids cannot be changed");
