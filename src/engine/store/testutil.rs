//! Builds tar archives byte by byte, including the hostile ones the tar
//! crate's safe setters refuse to write.

use tar::{EntryType, Header};

pub(crate) const MTIME: u64 = 1_600_000_000;

pub(crate) struct TarMaker {
    b: tar::Builder<Vec<u8>>,
}

fn put(field: &mut [u8], value: &[u8]) {
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

impl TarMaker {
    pub fn new() -> TarMaker {
        TarMaker {
            b: tar::Builder::new(Vec::new()),
        }
    }

    fn header(&mut self, path: &[u8], et: EntryType, size: u64, mode: u32) -> Header {
        self.header_with_target(path, et, size, mode, None)
    }

    fn header_with_target(
        &mut self,
        path: &[u8],
        et: EntryType,
        size: u64,
        mode: u32,
        target: Option<&[u8]>,
    ) -> Header {
        let mut recs: Vec<(&str, &[u8])> = Vec::new();
        if path.len() > 100 {
            recs.push(("path", path));
        }
        if let Some(t) = target.filter(|t| t.len() > 100) {
            recs.push(("linkpath", t));
        }
        if !recs.is_empty() {
            self.b.append_pax_extensions(recs).unwrap();
        }
        let mut h = Header::new_gnu();
        put(&mut h.as_old_mut().name, path);
        h.set_entry_type(et);
        h.set_size(size);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(MTIME);
        h
    }

    fn push(&mut self, mut h: Header, data: &[u8]) -> &mut Self {
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }

    pub fn pax(&mut self, recs: &[(&str, &[u8])]) -> &mut Self {
        self.b.append_pax_extensions(recs.iter().copied()).unwrap();
        self
    }

    pub fn file(&mut self, path: &str, data: &[u8]) -> &mut Self {
        self.file_with(path.as_bytes(), data, 0o644, 0, 0)
    }

    pub fn file_with(
        &mut self,
        path: &[u8],
        data: &[u8],
        mode: u32,
        uid: u64,
        gid: u64,
    ) -> &mut Self {
        let mut h = self.header(path, EntryType::Regular, data.len() as u64, mode);
        h.set_uid(uid);
        h.set_gid(gid);
        self.push(h, data)
    }

    pub fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        let h = self.header(path.as_bytes(), EntryType::Directory, 0, mode);
        self.push(h, &[])
    }

    pub fn dir_mtime(&mut self, path: &str, mode: u32, mtime: u64) -> &mut Self {
        let mut h = self.header(path.as_bytes(), EntryType::Directory, 0, mode);
        h.set_mtime(mtime);
        self.push(h, &[])
    }

    pub fn link(&mut self, et: EntryType, path: &str, target: &[u8]) -> &mut Self {
        let mut h = self.header_with_target(path.as_bytes(), et, 0, 0o777, Some(target));
        put(&mut h.as_old_mut().linkname, target);
        self.push(h, &[])
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.link(EntryType::Symlink, path, target.as_bytes())
    }

    pub fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.link(EntryType::Link, path, target.as_bytes())
    }

    pub fn node(
        &mut self,
        path: &str,
        et: EntryType,
        major: u32,
        minor: u32,
        mode: u32,
    ) -> &mut Self {
        let mut h = self.header(path.as_bytes(), et, 0, mode);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.push(h, &[])
    }

    pub fn finish(&mut self) -> Vec<u8> {
        let b = std::mem::replace(&mut self.b, tar::Builder::new(Vec::new()));
        b.into_inner().unwrap()
    }
}
