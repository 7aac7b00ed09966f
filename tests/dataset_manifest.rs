//! The committed replay data is exactly what its manifest says.

use sha2::{Digest, Sha256};
use std::path::Path;

#[test]
fn every_manifest_entry_matches_its_sha256_and_every_frame_is_listed() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets");
    let mut checked = 0;
    for entry in std::fs::read_dir(&root).unwrap() {
        let dir = entry.unwrap().path();
        let manifest = dir.join("MANIFEST.sha256");
        if !manifest.is_file() {
            continue;
        }
        assert!(dir.join("PROVENANCE.md").is_file(), "{} has a manifest but no PROVENANCE.md", dir.display());
        let text = std::fs::read_to_string(&manifest).unwrap();
        let mut listed = std::collections::BTreeSet::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let (hash, name) = line.split_once("  ").unwrap_or_else(|| panic!("bad manifest line `{line}`"));
            let bytes = std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{}: {name}: {e}", dir.display()));
            let got = format!("{:x}", Sha256::digest(&bytes));
            assert_eq!(got, hash, "{}/{name} changed", dir.display());
            listed.insert(name.to_string());
            checked += 1;
        }
        // Every image in the folder is covered, so nothing unverified is replayed.
        for img in walk(&dir) {
            let rel = img.strip_prefix(&dir).unwrap().to_string_lossy().to_string();
            if rel.ends_with(".jpg") || rel.ends_with(".png") {
                assert!(listed.contains(&rel), "{} is not in {}", rel, manifest.display());
            }
        }
    }
    assert!(checked >= 200, "the vtest manifest was checked ({checked} files)");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
