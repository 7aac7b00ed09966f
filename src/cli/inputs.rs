//! What `perch detect` accepts as inputs: image files, folders (their images, in natural order:
//! `2.jpg` before `10.jpg`) and glob patterns (`'datasets/vtest/img1/00001*.jpg'`, quoted so the
//! shell leaves them to perch). An input that names nothing is an error for that input only.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

/// Extensions taken from a folder or a glob (what the decoder reads).
const IMAGE_EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// The images the arguments name, in order, and one message per argument that named none.
pub fn expand(args: &[PathBuf]) -> (Vec<PathBuf>, Vec<String>) {
    let (mut files, mut errors) = (Vec::new(), Vec::new());
    for arg in args {
        match expand_one(arg) {
            Ok(found) => files.extend(found),
            Err(e) => errors.push(e),
        }
    }
    (files, errors)
}

fn expand_one(arg: &Path) -> Result<Vec<PathBuf>, String> {
    if arg.is_dir() {
        let mut found: Vec<PathBuf> = std::fs::read_dir(arg)
            .map_err(|e| format!("{}: cannot list the folder: {e}", arg.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && is_image(p))
            .collect();
        if found.is_empty() {
            return Err(format!("{}: no .jpg/.jpeg/.png images in this folder", arg.display()));
        }
        found.sort_by(|a, b| natural_cmp(&a.to_string_lossy(), &b.to_string_lossy()));
        return Ok(found);
    }
    if arg.exists() {
        return Ok(vec![arg.to_path_buf()]);
    }
    let text = arg.to_string_lossy();
    if text.contains(['*', '?', '[']) {
        let paths = glob::glob(&text).map_err(|e| format!("{text}: not a valid pattern: {e}"))?;
        let mut found: Vec<PathBuf> = paths.filter_map(Result::ok).filter(|p| p.is_file() && is_image(p)).collect();
        if found.is_empty() {
            return Err(format!("{text}: no image files match this pattern"));
        }
        found.sort_by(|a, b| natural_cmp(&a.to_string_lossy(), &b.to_string_lossy()));
        return Ok(found);
    }
    Err(format!("{}: no such file or folder", arg.display()))
}

fn is_image(p: &Path) -> bool {
    p.extension().and_then(|e| e.to_str()).is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Compare names with runs of digits compared as numbers (`frame2` < `frame10`).
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let da = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let db = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (na, nb) = (trim_zeros(&a[..da]), trim_zeros(&b[..db]));
                // More significant digits is bigger; same length compares digit by digit; then
                // fewer leading zeros first, so the order is total.
                let ord = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb)).then_with(|| da.cmp(&db));
                if ord != Ordering::Equal {
                    return ord;
                }
                a = &a[da..];
                b = &b[db..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

fn trim_zeros(d: &[u8]) -> &[u8] {
    let k = d.iter().take_while(|c| **c == b'0').count();
    &d[k..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_puts_2_before_10() {
        let mut v = vec!["10.jpg", "2.jpg", "1.jpg", "a/01.jpg", "a/1.jpg", "frame9.png", "frame10.png"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, ["1.jpg", "2.jpg", "10.jpg", "a/1.jpg", "a/01.jpg", "frame9.png", "frame10.png"]);
    }

    #[test]
    fn folders_globs_and_missing_inputs() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/vtest/img1");
        let (files, errors) = expand(&[root.join("000001.jpg"), root.join("nope.jpg"), root.join("00000[2-4].jpg")]);
        assert_eq!(files, [root.join("000001.jpg"), root.join("000002.jpg"), root.join("000003.jpg"), root.join("000004.jpg")]);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].contains("nope.jpg") && errors[0].contains("no such file"), "{errors:?}");
        let (files, errors) = expand(std::slice::from_ref(&root));
        assert!(errors.is_empty());
        assert_eq!(files.len(), 200);
        assert_eq!(files[0], root.join("000001.jpg"));
        let (_, errors) = expand(&[root.join("*.bmp")]);
        assert!(errors[0].contains("no image files match"), "{errors:?}");
    }
}
