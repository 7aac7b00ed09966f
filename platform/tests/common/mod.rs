//! What the fake-tree tests share: a private, writable copy of a fixture tree under
//! `tests/fixtures/` (the tests derive other machine states from it), removed on drop.

use std::path::{Path, PathBuf};

use perch_platform::SysRoot;

pub struct Copy(pub PathBuf);

impl Copy {
    /// A copy of fixture `name`; `tag` keeps concurrent tests apart.
    pub fn new(name: &str, tag: &str) -> Self {
        let dst = std::env::temp_dir().join(format!("perch-platform-{name}-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dst);
        copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name), &dst);
        Self(dst)
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    pub fn remove(&self, rel: &str) {
        let p = self.0.join(rel);
        if p.is_dir() {
            std::fs::remove_dir_all(p).unwrap();
        } else {
            std::fs::remove_file(p).unwrap();
        }
    }

    pub fn root(&self) -> SysRoot {
        SysRoot::new(&self.0)
    }
}

impl Drop for Copy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), to).unwrap();
        }
    }
}
