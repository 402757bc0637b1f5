//! The capabilities berth itself holds, which bound what `--privileged` and
//! `--cap-add ALL` can give a container.

/// `CapBnd` of this process as a bit mask, if /proc tells.
pub fn bounding_set() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status.lines().find_map(|l| l.strip_prefix("CapBnd:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_a_mask_with_chown() {
        let b = super::bounding_set().unwrap();
        assert!(b & 1 != 0);
    }
}
