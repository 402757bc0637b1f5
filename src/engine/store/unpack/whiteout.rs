//! OCI/AUFS whiteout names and what they become on an overlay lower dir.

pub(crate) const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE: &[u8] = b".wh..wh..opq";
const META_PREFIX: &[u8] = b".wh..wh.";

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Whiteout<'a> {
    /// `.wh..wh..opq`: the parent directory hides its lower contents.
    Opaque,
    /// `.wh.NAME`: NAME is deleted.
    Remove(&'a [u8]),
    /// Other `.wh..wh.*` names are AUFS bookkeeping with no meaning here.
    AufsMeta,
}

/// Classifies the last path component; `None` for ordinary names.
pub(crate) fn classify(name: &[u8]) -> Option<Whiteout<'_>> {
    if name == OPAQUE {
        Some(Whiteout::Opaque)
    } else if name.starts_with(META_PREFIX) {
        Some(Whiteout::AufsMeta)
    } else {
        name.strip_prefix(WHITEOUT_PREFIX).map(Whiteout::Remove)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(classify(b".wh..wh..opq"), Some(Whiteout::Opaque));
        assert_eq!(classify(b".wh..wh.plnk"), Some(Whiteout::AufsMeta));
        assert_eq!(classify(b".wh.foo"), Some(Whiteout::Remove(b"foo")));
        assert_eq!(classify(b"foo"), None);
        assert_eq!(classify(b"a.wh.foo"), None);
    }
}
