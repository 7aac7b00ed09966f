//! A seeded, structure-aware mutator for the stable driver (no coverage feedback: that is what the
//! AFL++ build is for). Deterministic: the same seed gives the same inputs, so a failure found in
//! CI is reproduced with `perch-fuzz mutate --target T --seed S`.

/// splitmix64: small, fast, good enough to drive mutations.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const BYTES: [u8; 10] = [0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff, 0x10, 0x20, 0x40, 0xd9];
const WORDS: [u16; 8] = [0, 1, 0x7fff, 0x8000, 0xffff, 0x00ff, 0xff00, 0x0100];
/// Numbers that break parsers: zero, signs, fractions, non-finite, overflow of every width.
const NUMBERS: [&str; 18] = [
    "0", "-1", "1", "-0", "0.5", "1e22", "1e-300", "nan", "inf", "-inf", "4294967296", "18446744073709551616",
    "9223372036854775807", "-9223372036854775808", "65536", "1e309", "0x10", "1_000",
];
/// Tokens of the formats: JPEG/PNG markers, TOML/INI structure, keys perch reads.
const TOKENS: [&[u8]; 28] = [
    b"\xff\xd8", b"\xff\xd9", b"\xff\xda", b"\xff\xc4", b"\xff\xdb", b"\xff\xc0", b"\xff\xc2", b"\xff\xdd", b"\xff\xd0",
    b"IHDR", b"IDAT", b"IEND", b"PLTE", b"[Sequence]", b"imDir=", b"frameRate=", b"seqLength=", b"[pipeline]",
    b"[source]", b"[stages.detect]", b"budget_ms = ", b"\n%%\n", b"fps=", b"classes = [", b"\"model.", b"\"shape\":[",
    b"\"dtype\":\"F32\"", b"data_offsets",
];

fn is_text(data: &[u8]) -> bool {
    !data.is_empty() && data.iter().filter(|b| b.is_ascii_graphic() || b.is_ascii_whitespace()).count() * 10 >= data.len() * 9
}

/// One to four stacked mutations of `input` (with `other`, another corpus entry, for splicing).
pub fn mutate(rng: &mut Rng, input: &[u8], other: &[u8], max_len: usize) -> Vec<u8> {
    let mut v = input.to_vec();
    let text = is_text(input);
    for _ in 0..1 + rng.below(4) {
        let n = v.len();
        match rng.below(if text { 12 } else { 10 }) {
            0 if n > 0 => {
                let i = rng.below(n);
                v[i] ^= 1 << rng.below(8);
            }
            1 if n > 0 => {
                let i = rng.below(n);
                v[i] = BYTES[rng.below(BYTES.len())];
            }
            2 if n > 1 => {
                let i = rng.below(n - 1);
                let w = WORDS[rng.below(WORDS.len())];
                let b = if rng.below(2) == 0 { w.to_be_bytes() } else { w.to_le_bytes() };
                v[i..i + 2].copy_from_slice(&b);
            }
            3 if n > 0 => {
                let i = rng.below(n);
                let len = 1 + rng.below((n - i).min(256));
                v.drain(i..i + len);
            }
            4 if n > 0 => {
                let i = rng.below(n);
                let len = 1 + rng.below((n - i).min(256));
                let chunk = v[i..i + len].to_vec();
                let at = rng.below(n + 1);
                v.splice(at..at, chunk);
            }
            5 if n > 0 => v.truncate(rng.below(n)),
            6 if !other.is_empty() => {
                let a = rng.below(v.len() + 1);
                let b = rng.below(other.len());
                v.truncate(a);
                v.extend_from_slice(&other[b..]);
            }
            7 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                let at = rng.below(n + 1);
                v.splice(at..at, t.iter().copied());
            }
            8 if n > 3 => {
                // A 16-bit length or size field right after a marker-like 0xff byte (JPEG segments).
                if let Some(p) = (0..8).map(|_| rng.below(n - 3)).find(|&p| v[p] == 0xff) {
                    let w = WORDS[rng.below(WORDS.len())].to_be_bytes();
                    v[p + 2..p + 4].copy_from_slice(&w);
                }
            }
            9 if n > 0 => {
                let i = rng.below(n);
                let len = 1 + rng.below((n - i).min(16));
                for b in &mut v[i..i + len] {
                    *b = rng.next() as u8;
                }
            }
            10 => replace_number(rng, &mut v),
            11 if n > 0 => {
                // Duplicate or drop a line.
                let lines: Vec<usize> = std::iter::once(0).chain(v.iter().enumerate().filter(|(_, &b)| b == b'\n').map(|(i, _)| i + 1)).collect();
                let start = lines[rng.below(lines.len())];
                let end = v[start..].iter().position(|&b| b == b'\n').map_or(v.len(), |e| start + e + 1);
                if rng.below(2) == 0 {
                    let line = v[start..end].to_vec();
                    v.splice(start..start, line);
                } else {
                    v.drain(start..end);
                }
            }
            _ => {}
        }
    }
    v.truncate(max_len);
    v
}

/// Replace one run of digits (with sign, point, exponent) by a number from [`NUMBERS`].
fn replace_number(rng: &mut Rng, v: &mut Vec<u8>) {
    let starts: Vec<usize> =
        (0..v.len()).filter(|&i| v[i].is_ascii_digit() && (i == 0 || !v[i - 1].is_ascii_alphanumeric())).collect();
    if starts.is_empty() {
        return;
    }
    let s = starts[rng.below(starts.len())];
    let e = s + v[s..].iter().position(|b| !(b.is_ascii_digit() || b"-+.eE_".contains(b))).unwrap_or(v.len() - s);
    let num = NUMBERS[rng.below(NUMBERS.len())].as_bytes();
    v.splice(s..e, num.iter().copied());
}
