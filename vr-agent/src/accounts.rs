//! Users and groups by name, through the C library (so NSS sources count):
//! the group that may use the agent's socket, and the unprivileged user and
//! group dnsmasq runs as.

use std::io;

use nix::unistd::{Group, User};

/// A user's id and primary group id, by name.
pub fn user_ids(name: &str) -> io::Result<(u32, u32)> {
    match User::from_name(name).map_err(io::Error::from)? {
        Some(user) => Ok((user.uid.as_raw(), user.gid.as_raw())),
        None => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("there is no user named {name}"),
        )),
    }
}

/// A group's id, by name or number.
pub fn group_id(name: &str) -> io::Result<u32> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    match Group::from_name(name).map_err(io::Error::from)? {
        Some(group) => Ok(group.gid.as_raw()),
        None => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("there is no group named {name}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_and_groups_are_found_by_name_and_unknown_ones_are_errors() {
        assert_eq!(user_ids("root").unwrap(), (0, 0));
        assert_ne!(user_ids("nobody").unwrap().0, 0);
        assert_eq!(group_id("root").unwrap(), 0);
        assert_eq!(group_id("4242").unwrap(), 4242);
        let err = group_id("no-such-group-here").unwrap_err();
        assert!(err.to_string().contains("no group named"), "{err}");
        assert!(user_ids("no-such-user-here").is_err());
    }
}
