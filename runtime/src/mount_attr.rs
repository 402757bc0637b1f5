//! mount_setattr(2) (Linux 5.12+), which neither rustix nor nix wraps yet:
//! attributes and propagation for a whole mount tree in one call.

use std::os::fd::{AsRawFd, BorrowedFd};

pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
const AT_RECURSIVE: libc::c_uint = 0x8000;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Sets `attr_set` (and `propagation`, 0 to keep it) on the mount at `fd`
/// and on every mount below it.
pub fn set_recursive(fd: BorrowedFd<'_>, attr_set: u64, propagation: u64) -> std::io::Result<()> {
    let attr = MountAttr {
        attr_set,
        attr_clr: 0,
        propagation,
        userns_fd: 0,
    };
    // SAFETY: a valid fd, an empty NUL-terminated path and a correctly
    // sized mount_attr.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint | AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Whether this kernel has the call.
pub fn supported() -> bool {
    // SAFETY: an invalid call whose only effect is its errno.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            -1,
            c"".as_ptr(),
            0,
            std::ptr::null::<u8>(),
            0,
        )
    };
    rc != 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::ENOSYS)
}
