//! MOTChallenge text files (MOT15, MOT16, MOT17, MOT20 ground truth and tracker results).
//!
//! One box per line: `frame, id, left, top, width, height[, conf[, class_or_x[, visibility_or_y[, z]]]]`.
//! Fields are separated by commas and/or whitespace (as motmetrics' loader accepts). Only the
//! first six are required; a missing `conf` reads as 1. The meaning of columns 8-10 differs
//! between MOT15 (world x, y, z) and MOT16/17 ground truth (class, visibility): they are kept raw.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{bail, Context};

/// One line of a MOT file.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MotRow {
    pub frame: i64,
    pub id: i64,
    /// left, top, width, height in pixels
    pub bbox: [f64; 4],
    /// Column 7: detection/track confidence; in ground truth, the "consider this box" flag (0/1).
    pub conf: f64,
    /// Column 8 (MOT16/17 ground truth: class id; MOT15: world x; results: -1).
    pub col8: Option<f64>,
    /// Column 9 (MOT16/17 ground truth: visibility; MOT15: world y).
    pub col9: Option<f64>,
}

fn parse_int(tok: &str, what: &str, name: &str, line_no: usize) -> anyhow::Result<i64> {
    let v: f64 = tok
        .parse()
        .map_err(|_| anyhow::anyhow!("{name}:{line_no}: {what} `{tok}` is not a number"))?;
    if !v.is_finite() || v.fract() != 0.0 || v.abs() > 9.0e15 {
        bail!("{name}:{line_no}: {what} `{tok}` must be an integer");
    }
    Ok(v as i64)
}

fn parse_f64(tok: &str, what: &str, name: &str, line_no: usize) -> anyhow::Result<f64> {
    let v: f64 = tok
        .parse()
        .map_err(|_| anyhow::anyhow!("{name}:{line_no}: {what} `{tok}` is not a number"))?;
    if !v.is_finite() {
        bail!("{name}:{line_no}: {what} `{tok}` must be finite");
    }
    Ok(v)
}

/// Parse MOT text. `name` (usually the path) is used in error messages with the 1-based line.
/// Blank lines are skipped; a repeated `(frame, id)` pair is an error (a track cannot be in two
/// places at once), as is a negative width or height.
pub fn parse_mot(text: &str, name: &str) -> anyhow::Result<Vec<MotRow>> {
    let mut rows = Vec::new();
    let mut seen: HashMap<(i64, i64), usize> = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let toks: Vec<&str> = line
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|t| !t.is_empty())
            .collect();
        if toks.is_empty() {
            continue;
        }
        if toks.len() < 6 {
            bail!(
                "{name}:{line_no}: expected at least 6 fields `frame,id,left,top,width,height[,conf,...]` \
                 (MOT15/16/17 format), found {}: `{}`",
                toks.len(),
                line.trim()
            );
        }
        if toks.len() > 10 {
            bail!(
                "{name}:{line_no}: expected at most 10 fields (MOT15/16/17 format), found {}",
                toks.len()
            );
        }
        let frame = parse_int(toks[0], "frame", name, line_no)?;
        if frame < 1 {
            bail!("{name}:{line_no}: frame {frame}: MOTChallenge frame numbers start at 1");
        }
        let id = parse_int(toks[1], "id", name, line_no)?;
        let mut bbox = [0.0; 4];
        for (k, what) in ["left", "top", "width", "height"].iter().enumerate() {
            bbox[k] = parse_f64(toks[2 + k], what, name, line_no)?;
        }
        if bbox[2] < 0.0 || bbox[3] < 0.0 {
            bail!(
                "{name}:{line_no}: negative box size {}x{}",
                bbox[2],
                bbox[3]
            );
        }
        let conf = match toks.get(6) {
            Some(t) => parse_f64(t, "conf", name, line_no)?,
            None => 1.0,
        };
        let col8 = toks
            .get(7)
            .map(|t| parse_f64(t, "column 8", name, line_no))
            .transpose()?;
        let col9 = toks
            .get(8)
            .map(|t| parse_f64(t, "column 9", name, line_no))
            .transpose()?;
        if let Some(first) = seen.insert((frame, id), line_no) {
            bail!(
                "{name}:{line_no}: id {id} appears twice in frame {frame} (first on line {first})"
            );
        }
        rows.push(MotRow {
            frame,
            id,
            bbox,
            conf,
            col8,
            col9,
        });
    }
    Ok(rows)
}

/// Read and parse a MOT file; errors name the file (and line).
pub fn read_mot(path: &Path) -> anyhow::Result<Vec<MotRow>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read MOT file {}", path.display()))?;
    parse_mot(&text, &path.display().to_string())
}

/// Write rows in the MOTChallenge results format (10 columns, `-1` for the world coordinates).
pub fn format_mot(rows: &[MotRow]) -> String {
    let mut s = String::with_capacity(rows.len() * 48);
    for r in rows {
        let _ = writeln!(
            s,
            "{},{},{:.3},{:.3},{:.3},{:.3},{:.5},-1,-1,-1",
            r.frame, r.id, r.bbox[0], r.bbox[1], r.bbox[2], r.bbox[3], r.conf
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mot15_mot17_and_short_rows() {
        let rows = parse_mot(
            "1,1,399,182,121,229,1,-1,-1,-1\n\n2 7 10.5 20 30 40\n3,2,1,2,3,4,1,1,0.83\n",
            "t.txt",
        )
        .unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].bbox, [399.0, 182.0, 121.0, 229.0]);
        assert_eq!(rows[1].frame, 2);
        assert_eq!(rows[1].conf, 1.0);
        assert_eq!(rows[2].col9, Some(0.83));
    }

    #[test]
    fn errors_name_file_and_line() {
        let e = parse_mot("1,1,2,3,4,5\n1,2,3,x,5,6\n", "gt.txt")
            .unwrap_err()
            .to_string();
        assert!(e.contains("gt.txt:2") && e.contains("top"), "{e}");
        let e = parse_mot("1,1,2,3\n", "a.txt").unwrap_err().to_string();
        assert!(e.contains("a.txt:1") && e.contains("at least 6"), "{e}");
        let e = parse_mot("1,1,2,3,4,5\n1,1,2,3,4,5\n", "d.txt")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("d.txt:2") && e.contains("twice") && e.contains("line 1"),
            "{e}"
        );
        let e = parse_mot("1.5,1,2,3,4,5\n", "f.txt")
            .unwrap_err()
            .to_string();
        assert!(e.contains("f.txt:1") && e.contains("integer"), "{e}");
    }

    #[test]
    fn frame_numbers_start_at_one() {
        for bad in ["0,1,2,3,4,5\n", "-3,1,2,3,4,5\n"] {
            let e = parse_mot(bad, "g.txt").unwrap_err().to_string();
            assert!(e.contains("g.txt:1") && e.contains("start at 1"), "{e}");
        }
    }

    #[test]
    fn format_round_trips() {
        let rows = parse_mot("4,9,1.25,2.5,30,40,0.9,-1,-1,-1\n", "x").unwrap();
        let again = parse_mot(&format_mot(&rows), "y").unwrap();
        assert_eq!(again[0].bbox, rows[0].bbox);
        assert_eq!((again[0].frame, again[0].id), (4, 9));
    }
}
