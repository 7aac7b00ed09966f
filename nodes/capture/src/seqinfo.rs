//! MOTChallenge `seqinfo.ini`: frame rate, size, image folder.

use std::path::Path;

/// The fields of `seqinfo.ini` perch uses; all optional.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SeqInfo {
    pub name: Option<String>,
    pub im_dir: Option<String>,
    pub frame_rate: Option<f64>,
    pub seq_length: Option<u64>,
    pub width: Option<u32>,
    pub height: Option<u32>,
}

impl SeqInfo {
    /// Parse the `[Sequence]` section. Unknown keys are ignored (MOT files carry more than we use);
    /// a value that does not parse is an error naming the file, line and key.
    pub fn parse(text: &str, path: &Path) -> anyhow::Result<Self> {
        let mut info = SeqInfo::default();
        let mut in_sequence = false;
        let mut has_sequence = false;
        for (no, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
                continue;
            }
            if line.starts_with('[') {
                in_sequence = line.eq_ignore_ascii_case("[sequence]");
                has_sequence |= in_sequence;
                continue;
            }
            if !in_sequence {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                anyhow::bail!("{}:{}: expected `key=value`, found `{line}`", path.display(), no + 1);
            };
            let (key, value) = (key.trim(), value.trim());
            let bad = |what: &str| anyhow::anyhow!("{}:{}: `{key}` must be {what}, found `{value}`", path.display(), no + 1);
            match key.to_ascii_lowercase().as_str() {
                "name" => info.name = Some(value.to_string()),
                "imdir" => info.im_dir = Some(value.to_string()),
                "framerate" => {
                    let f: f64 = value.parse().map_err(|_| bad("a positive number"))?;
                    if !(f > 0.0 && f.is_finite()) {
                        return Err(bad("a positive number"));
                    }
                    info.frame_rate = Some(f);
                }
                "seqlength" => info.seq_length = Some(value.parse().map_err(|_| bad("an integer"))?),
                "imwidth" => info.width = Some(value.parse().map_err(|_| bad("an integer"))?),
                "imheight" => info.height = Some(value.parse().map_err(|_| bad("an integer"))?),
                _ => {}
            }
        }
        if !has_sequence {
            anyhow::bail!(
                "{}: no [Sequence] section (a MOTChallenge seqinfo.ini reads `[Sequence]`, then imDir=img1, \
                 frameRate=..., seqLength=..., imWidth=..., imHeight=...)",
                path.display()
            );
        }
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mot_seqinfo() {
        let text = "[Sequence]\nname=TUD-Campus\nimDir=img1\nframeRate=25\nseqLength=71\nimWidth=640\nimHeight=480\nimExt=.jpg\n";
        let s = SeqInfo::parse(text, Path::new("seqinfo.ini")).unwrap();
        assert_eq!(s.frame_rate, Some(25.0));
        assert_eq!((s.width, s.height, s.seq_length), (Some(640), Some(480), Some(71)));
        assert_eq!(s.im_dir.as_deref(), Some("img1"));
    }

    #[test]
    fn a_file_without_a_sequence_section_says_so() {
        let e = SeqInfo::parse("imDir=img1\nframeRate=10\n", Path::new("s/seqinfo.ini")).unwrap_err().to_string();
        assert!(e.contains("s/seqinfo.ini") && e.contains("no [Sequence] section"), "{e}");
        let e = SeqInfo::parse("[Other]\nimDir=img1\n", Path::new("seqinfo.ini")).unwrap_err().to_string();
        assert!(e.contains("[Sequence]"), "{e}");
    }

    #[test]
    fn bad_value_names_file_line_key() {
        let e = SeqInfo::parse("[Sequence]\nframeRate=fast\n", Path::new("x/seqinfo.ini")).unwrap_err().to_string();
        assert_eq!(e, "x/seqinfo.ini:2: `frameRate` must be a positive number, found `fast`");
    }
}
