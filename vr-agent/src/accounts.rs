//! Users and groups by name, through the C library (so NSS sources count):
//! the group that may use the agent's socket, and the unprivileged user and
//! group dnsmasq runs as.

use std::ffi::CString;
use std::io;

/// The size of the buffer getpwnam_r and getgrnam_r fill with strings.
const BUF_LEN: usize = 16 * 1024;

/// A user's id and primary group id, by name or number.
pub fn user_ids(name: &str) -> io::Result<(u32, u32)> {
    let c_name = c_string(name)?;
    // SAFETY: zeroed is a valid `passwd` (pointers null, ids 0); it is only
    // read after getpwnam_r filled it.
    let mut user: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; BUF_LEN];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call and `buf` is as long as
    // the length given; the strings it points into are not used afterwards.
    let rc = unsafe {
        libc::getpwnam_r(
            c_name.as_ptr(),
            &mut user,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        )
    };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    if found.is_null() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("there is no user named {name}"),
        ));
    }
    Ok((user.pw_uid, user.pw_gid))
}

/// A group's id, by name or number.
pub fn group_id(name: &str) -> io::Result<u32> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    let c_name = c_string(name)?;
    // SAFETY: as in `user_ids`, for `group`.
    let mut group: libc::group = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; BUF_LEN];
    let mut found: *mut libc::group = std::ptr::null_mut();
    // SAFETY: as in `user_ids`.
    let rc = unsafe {
        libc::getgrnam_r(
            c_name.as_ptr(),
            &mut group,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        )
    };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    if found.is_null() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("there is no group named {name}"),
        ));
    }
    Ok(group.gr_gid)
}

fn c_string(name: &str) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL in a name"))
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
