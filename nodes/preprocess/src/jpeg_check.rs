//! Is this JPEG complete? A structural check run before decoding.
//!
//! Decoders (zune-jpeg included, even in strict mode) answer a stream that ends early — a cut-off
//! file, an EOI marker written mid-scan, an MJPEG frame that lost a USB packet — by padding the
//! missing MCUs with zero bits, i.e. a frame that is grey or flat from some row down and still
//! "decodes". perch must count such a frame as `decode_error`, never publish it, so this module
//! walks the marker segments and, for sequential Huffman JPEGs (baseline and extended: what cameras
//! and datasets write), the entropy-coded data itself: every MCU the frame header announces must be
//! there, Huffman codes must be valid, restart markers must come in order, and nothing but padding
//! may follow the last MCU. It decodes no coefficients (no IDCT, no colour), only code lengths.
//!
//! Progressive JPEGs are checked structurally: segments, the final EOI, and that the scans cover
//! every coefficient of every component down to the last bit (a file missing its last scans is
//! incomplete); data missing *inside* a progressive scan is not detected. Other modes (lossless,
//! arithmetic coding) are checked structurally only.

use std::fmt;

/// Why a JPEG is incomplete or corrupt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incomplete(String);

impl fmt::Display for Incomplete {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Incomplete {}

fn fail<T>(msg: impl Into<String>) -> Result<T, Incomplete> {
    Err(Incomplete(msg.into()))
}

/// The typical Huffman tables of JPEG Annex K.3 (ITU-T T.81 tables K.3-K.6: code counts per length,
/// then the symbols), which MJPEG from USB cameras (and AVI MJPEG) leaves out and implies. A frame
/// with no DHT segment at all is checked against these, as zune-jpeg decodes it.
const STD_DC_LUMA: ([u8; 16], &[u8]) = ([0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0], &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
const STD_DC_CHROMA: ([u8; 16], &[u8]) = ([0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0], &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
const STD_AC_LUMA: ([u8; 16], &[u8]) = (
    [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7d],
    &[
        0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07, //
        0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52, 0xd1, 0xf0, //
        0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0a, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x25, 0x26, 0x27, 0x28, //
        0x29, 0x2a, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, //
        0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, //
        0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, //
        0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, //
        0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5, //
        0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe1, 0xe2, //
        0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, //
        0xf9, 0xfa,
    ],
);
const STD_AC_CHROMA: ([u8; 16], &[u8]) = (
    [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77],
    &[
        0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71, //
        0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xa1, 0xb1, 0xc1, 0x09, 0x23, 0x33, 0x52, 0xf0, //
        0x15, 0x62, 0x72, 0xd1, 0x0a, 0x16, 0x24, 0x34, 0xe1, 0x25, 0xf1, 0x17, 0x18, 0x19, 0x1a, 0x26, //
        0x27, 0x28, 0x29, 0x2a, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, //
        0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, //
        0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, //
        0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, //
        0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, //
        0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, //
        0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, //
        0xf9, 0xfa,
    ],
);

/// Canonical Huffman table (JPEG Annex C) with a 9-bit lookup for short codes.
#[derive(Clone)]
struct Huffman {
    /// (symbol, length) for every 9-bit prefix whose code is at most 9 bits; length 0 = longer.
    fast: Box<[(u8, u8); 512]>,
    /// Largest code of each length 1..=16 (-1: none), first code and index of its first symbol.
    max_code: [i32; 17],
    min_code: [u32; 17],
    first_index: [usize; 17],
    symbols: Vec<u8>,
}

impl Huffman {
    fn new(counts: &[u8; 16], symbols: &[u8]) -> Result<Self, Incomplete> {
        let mut h = Huffman {
            fast: Box::new([(0, 0); 512]),
            max_code: [-1; 17],
            min_code: [0; 17],
            first_index: [0; 17],
            symbols: symbols.to_vec(),
        };
        let (mut code, mut k) = (0u32, 0usize);
        for len in 1..=16usize {
            let n = counts[len - 1] as usize;
            h.first_index[len] = k;
            h.min_code[len] = code;
            for _ in 0..n {
                // More codes of this length than there are: the counts are not a prefix code.
                if code >= (1 << len) {
                    return fail("JPEG: a Huffman table's code lengths do not form a prefix code");
                }
                if len <= 9 {
                    let shift = 9 - len;
                    let base = (code << shift) as usize;
                    for e in &mut h.fast[base..base + (1 << shift)] {
                        *e = (symbols[k], len as u8);
                    }
                }
                code += 1;
                k += 1;
            }
            if n > 0 {
                h.max_code[len] = code as i32 - 1;
            }
            code <<= 1;
        }
        Ok(h)
    }
}

/// Reads the entropy-coded bits of one scan, un-stuffing `FF 00` and stopping at any marker.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    acc: u64,
    nbits: u32,
    /// `pos` is at a marker (or the end of the data): no more bits.
    at_marker: bool,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8], pos: usize) -> Self {
        Bits { data, pos, acc: 0, nbits: 0, at_marker: false }
    }

    fn fill(&mut self) {
        while self.nbits <= 56 && !self.at_marker {
            let Some(&b) = self.data.get(self.pos) else {
                self.at_marker = true;
                break;
            };
            if b == 0xff {
                match self.data.get(self.pos + 1) {
                    Some(0x00) => self.pos += 2,
                    _ => {
                        self.at_marker = true;
                        break;
                    }
                }
            } else {
                self.pos += 1;
            }
            self.acc |= (b as u64) << (56 - self.nbits);
            self.nbits += 8;
        }
    }

    /// The next 16 bits, padded with ones past the available data.
    fn peek16(&mut self) -> u32 {
        if self.nbits < 16 {
            self.fill();
        }
        let v = (self.acc >> 48) as u32;
        if self.nbits < 16 {
            v | (0xffff >> self.nbits)
        } else {
            v
        }
    }

    fn consume(&mut self, n: u32) -> Result<(), ()> {
        if n > self.nbits {
            self.fill();
            if n > self.nbits {
                return Err(());
            }
        }
        self.acc <<= n;
        self.nbits -= n;
        Ok(())
    }

    fn decode(&mut self, h: &Huffman) -> Result<u8, &'static str> {
        let peek = self.peek16();
        let (sym, len) = h.fast[(peek >> 7) as usize];
        if len > 0 {
            self.consume(len as u32).map_err(|()| "ends early")?;
            return Ok(sym);
        }
        for len in 10..=16usize {
            let code = peek >> (16 - len);
            if h.max_code[len] >= 0 && code as i32 <= h.max_code[len] {
                let offset = code.checked_sub(h.min_code[len]).ok_or("has an invalid Huffman code")?;
                let sym = *h.symbols.get(h.first_index[len] + offset as usize).ok_or("has an invalid Huffman code")?;
                self.consume(len as u32).map_err(|()| "ends early")?;
                return Ok(sym);
            }
        }
        // All-ones padding past the end reads as no valid code: the data ended.
        if self.at_marker && self.nbits < 16 {
            return Err("ends early");
        }
        Err("has an invalid Huffman code")
    }

    /// After a restart interval or the scan: true when the next marker follows with nothing but
    /// the bits that pad the last code to a byte.
    fn only_padding_left(&mut self) -> bool {
        self.fill();
        self.at_marker && self.nbits < 8
    }
}

#[derive(Clone, Copy, Default)]
struct Component {
    id: u8,
    h: usize,
    v: usize,
}

/// Check that `bytes` is a complete JPEG (see the module docs). `Ok` means: every scan of a
/// sequential Huffman JPEG holds all its MCUs, and the file reaches its EOI marker.
pub fn check_complete(bytes: &[u8]) -> Result<(), Incomplete> {
    if !bytes.starts_with(&[0xff, 0xd8]) {
        return fail("JPEG: no SOI marker at the start");
    }
    let mut pos = 2usize;
    let mut frame: Option<(bool, usize, usize, Vec<Component>)> = None; // (sequential, width, height, comps)
    let mut dc: [Option<Huffman>; 4] = Default::default();
    let mut ac: [Option<Huffman>; 4] = Default::default();
    let mut restart = 0usize;
    let mut dht_seen = false;
    let mut scans = 0usize;
    let mut scanned = 0u64; // bitmask of components that had a (sequential) scan
    let mut progressive = false;
    // Progressive: per component, a bitmask of the coefficients refined down to bit 0.
    let mut finished = [0u64; 4];
    loop {
        // A marker: 0xFF, optional fill bytes 0xFF, the code.
        if bytes.get(pos) != Some(&0xff) {
            if pos >= bytes.len() {
                return fail(format!("JPEG: the file ends at byte {pos} before the EOI marker (a truncated frame)"));
            }
            return fail(format!("JPEG: expected a marker at byte {pos}, found {:#04x} (corrupt data)", bytes[pos]));
        }
        while bytes.get(pos + 1) == Some(&0xff) {
            pos += 1;
        }
        let Some(&m) = bytes.get(pos + 1) else {
            return fail("JPEG: the file ends inside a marker (a truncated frame)");
        };
        pos += 2;
        match m {
            0xd9 => break,
            0x01 | 0xd0..=0xd7 => continue,
            0xd8 => return fail(format!("JPEG: a second SOI marker at byte {}", pos - 2)),
            _ => {}
        }
        let Some(len) = bytes.get(pos..pos + 2).map(|b| u16::from_be_bytes([b[0], b[1]]) as usize) else {
            return fail("JPEG: the file ends inside a segment header (a truncated frame)");
        };
        if len < 2 || pos + len > bytes.len() {
            return fail(format!("JPEG: segment {m:#04x} at byte {} runs past the end of the file (a truncated frame)", pos - 2));
        }
        let seg = &bytes[pos + 2..pos + len];
        pos += len;
        match m {
            0xc0..=0xcf if m != 0xc4 && m != 0xc8 && m != 0xcc => {
                if frame.is_some() {
                    return fail("JPEG: more than one frame header");
                }
                if seg.len() < 6 {
                    return fail("JPEG: frame header too short");
                }
                let (height, width, n) =
                    (u16::from_be_bytes([seg[1], seg[2]]) as usize, u16::from_be_bytes([seg[3], seg[4]]) as usize, seg[5] as usize);
                if n == 0 || n > 4 || seg.len() < 6 + 3 * n {
                    return fail(format!("JPEG: frame header with {n} components"));
                }
                let comps: Vec<Component> = (0..n)
                    .map(|i| Component { id: seg[6 + 3 * i], h: (seg[7 + 3 * i] >> 4) as usize, v: (seg[7 + 3 * i] & 15) as usize })
                    .collect();
                if comps.iter().any(|c| !(1..=4).contains(&c.h) || !(1..=4).contains(&c.v)) {
                    return fail("JPEG: sampling factors out of range 1..4");
                }
                // Baseline and extended sequential Huffman; height 0 (DNL) cannot be counted here.
                let sequential = matches!(m, 0xc0 | 0xc1) && height > 0;
                progressive = m == 0xc2;
                frame = Some((sequential, width, height, comps));
            }
            0xc4 => {
                dht_seen = true;
                let mut s = seg;
                while !s.is_empty() {
                    if s.len() < 17 {
                        return fail("JPEG: Huffman table segment too short");
                    }
                    let (class, id) = (s[0] >> 4, (s[0] & 15) as usize);
                    let counts: [u8; 16] = s[1..17].try_into().unwrap_or([0; 16]);
                    let total: usize = counts.iter().map(|&c| c as usize).sum();
                    if class > 1 || id > 3 || s.len() < 17 + total || total > 256 {
                        return fail("JPEG: invalid Huffman table");
                    }
                    let table = Huffman::new(&counts, &s[17..17 + total])?;
                    if class == 0 {
                        dc[id] = Some(table);
                    } else {
                        ac[id] = Some(table);
                    }
                    s = &s[17 + total..];
                }
            }
            0xdd => {
                if seg.len() < 2 {
                    return fail("JPEG: DRI segment too short");
                }
                restart = u16::from_be_bytes([seg[0], seg[1]]) as usize;
            }
            0xda => {
                let Some((sequential, width, height, comps)) = &frame else {
                    return fail("JPEG: a scan before the frame header");
                };
                scans += 1;
                if !dht_seen && dc.iter().chain(&ac).all(Option::is_none) {
                    // Webcam MJPEG: the Annex K tables are implied (see STD_DC_LUMA).
                    let std = |(counts, symbols): ([u8; 16], &[u8])| Huffman::new(&counts, symbols).map(Some);
                    (dc[0], dc[1]) = (std(STD_DC_LUMA)?, std(STD_DC_CHROMA)?);
                    (ac[0], ac[1]) = (std(STD_AC_LUMA)?, std(STD_AC_CHROMA)?);
                }
                let ns = *seg.first().unwrap_or(&0) as usize;
                if ns == 0 || ns > 4 || seg.len() < 1 + 2 * ns + 3 {
                    return fail(format!("JPEG: scan header with {ns} components"));
                }
                if !sequential {
                    if progressive {
                        let (ss, se, al) = (seg[1 + 2 * ns] as usize, seg[2 + 2 * ns] as usize, seg[3 + 2 * ns] & 15);
                        if ss > se || se > 63 {
                            return fail(format!("JPEG: progressive scan of coefficients {ss}..{se}"));
                        }
                        let band = if se - ss == 63 { !0u64 } else { ((1u64 << (se - ss + 1)) - 1) << ss };
                        for i in 0..ns {
                            if let Some(ci) = comps.iter().position(|c| c.id == seg[1 + 2 * i]) {
                                if al == 0 {
                                    finished[ci] |= band;
                                }
                            }
                        }
                    }
                    pos = skip_entropy_data(bytes, pos);
                    continue;
                }
                let mut plan: Vec<(usize, &Huffman, &Huffman)> = Vec::new(); // (blocks per MCU, dc, ac)
                let mut scan_comps = Vec::new();
                for i in 0..ns {
                    let (cid, tables) = (seg[1 + 2 * i], seg[2 + 2 * i]);
                    let Some(ci) = comps.iter().position(|c| c.id == cid) else {
                        return fail(format!("JPEG: scan names component {cid}, which the frame does not have"));
                    };
                    let (Some(d), Some(a)) = (dc[(tables >> 4) as usize & 3].as_ref(), ac[(tables & 15) as usize & 3].as_ref()) else {
                        return fail("JPEG: a scan uses a Huffman table that was never defined");
                    };
                    scanned |= 1 << ci;
                    scan_comps.push(comps[ci]);
                    plan.push((0, d, a));
                }
                let hmax = comps.iter().map(|c| c.h).max().unwrap_or(1);
                let vmax = comps.iter().map(|c| c.v).max().unwrap_or(1);
                let mcus = if ns == 1 {
                    // A non-interleaved scan codes one component's blocks, each an MCU.
                    let c = scan_comps[0];
                    plan[0].0 = 1;
                    (width * c.h).div_ceil(hmax).div_ceil(8) * (height * c.v).div_ceil(vmax).div_ceil(8)
                } else {
                    for (p, c) in plan.iter_mut().zip(&scan_comps) {
                        p.0 = c.h * c.v;
                    }
                    width.div_ceil(8 * hmax) * height.div_ceil(8 * vmax)
                };
                pos = walk_scan(bytes, pos, mcus, restart, &plan)?;
            }
            _ => {} // DQT, APPn, COM, DNL, ...: their length was checked above.
        }
    }
    let Some((sequential, _, _, comps)) = frame else {
        return fail("JPEG: no frame header before EOI");
    };
    if scans == 0 {
        return fail("JPEG: no scan before EOI");
    }
    if sequential && scanned != (1u64 << comps.len()) - 1 {
        return fail("JPEG: some colour components have no scan (a truncated frame)");
    }
    if progressive && finished[..comps.len()].iter().any(|&f| f != !0u64) {
        return fail("JPEG: the progressive scans stop before every coefficient is complete (a truncated frame)");
    }
    Ok(())
}

/// Decode the code lengths of `mcus` MCUs starting at `pos`; returns the position of the marker
/// that ends the scan.
fn walk_scan(bytes: &[u8], pos: usize, mcus: usize, restart: usize, plan: &[(usize, &Huffman, &Huffman)]) -> Result<usize, Incomplete> {
    let mut bits = Bits::new(bytes, pos);
    let mut next_rst = 0u8;
    let err = |what: &str, mcu: usize| Incomplete(format!("JPEG: the entropy-coded data {what} in MCU {mcu} of {mcus} (a truncated or damaged frame)"));
    for mcu in 0..mcus {
        if restart > 0 && mcu > 0 && mcu % restart == 0 {
            // Between intervals: only padding, then RSTn with n counting 0..7.
            if !bits.only_padding_left() {
                return Err(err("has extra data before a restart marker", mcu));
            }
            if bytes.get(bits.pos + 1) != Some(&(0xd0 + next_rst)) {
                return Err(err("ends early (a restart marker is missing)", mcu));
            }
            next_rst = (next_rst + 1) & 7;
            bits = Bits::new(bytes, bits.pos + 2);
        }
        for &(blocks, dc, ac) in plan {
            for _ in 0..blocks {
                let s = bits.decode(dc).map_err(|w| err(w, mcu))?;
                if s > 16 {
                    return Err(err("has an invalid DC category", mcu));
                }
                bits.consume(s as u32).map_err(|()| err("ends early", mcu))?;
                let mut k = 1;
                while k < 64 {
                    let rs = bits.decode(ac).map_err(|w| err(w, mcu))?;
                    let (r, s) = ((rs >> 4) as usize, (rs & 15) as u32);
                    if s == 0 {
                        if r != 15 {
                            break; // end of block
                        }
                        k += 16;
                    } else {
                        k += r + 1;
                        bits.consume(s).map_err(|()| err("ends early", mcu))?;
                    }
                }
                if k > 64 {
                    return Err(err("has run lengths past the end of a block", mcu));
                }
            }
        }
    }
    if !bits.only_padding_left() {
        return Err(Incomplete(format!(
            "JPEG: unexpected data after the last of {mcus} MCUs (a damaged frame: its data does not fit the header)"
        )));
    }
    Ok(bits.pos)
}

/// Position of the first marker (not a stuffed `FF 00` or a restart marker) at or after `pos`.
fn skip_entropy_data(bytes: &[u8], mut pos: usize) -> usize {
    while pos + 1 < bytes.len() {
        if bytes[pos] == 0xff && !matches!(bytes[pos + 1], 0x00 | 0xd0..=0xd7 | 0xff) {
            return pos;
        }
        pos += 1;
    }
    bytes.len()
}
