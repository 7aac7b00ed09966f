//! Deserialize a received `sensor_msgs/Image` or `CompressedImage` straight into a pooled frame.
//!
//! ros2-client hands a sample's CDR bytes to a serde [`DeserializeSeed`] (`Subscription::take_seed`).
//! This seed walks the message's fields in `.msg` order and writes them where they belong: the
//! header into the frame's [`SourceHeader`] (reusing its `frame_id` allocation), the pixels, borrowed
//! from the sample, copied row by row into the frame's pooled [`ImageBuf`] (raw) or decoded into it
//! (JPEG/PNG). No owned message is built, so a steady stream allocates nothing here.
//!
//! An image perch cannot use (unsupported encoding, sizes that do not fit) is still read to its end
//! and comes back as an [`Outcome`], not a serde error: only bytes that are not CDR at all are errors.

use std::cell::RefCell;
use std::fmt;

use perch_pipeline::{ImageBuf, ImageMessage, SourceHeader};
use perch_preprocess::ImageDecoder;
use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};

use crate::image_in::{self, RawImage, Reject};
use crate::msg::Time;

/// What one received image became.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The frame's image and header are filled.
    Frame,
    /// Not an encoding perch reads; the encoding (or format) is in [`Sink::encoding`].
    Unsupported,
    /// The message does not describe a usable image (why).
    Malformed(String),
}

/// ros2-client's readiness polling (mio) wants a `DeserializeOwned` message type; samples are only
/// ever read through [`ImageSeed`], so this impl only says so.
impl<'de> serde::Deserialize<'de> for Outcome {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(de::Error::custom("perch reads images with ImageSeed (take_seed), not Deserialize"))
    }
}

/// Where a received image goes: the frame's pooled buffers and the source's reusable state.
pub struct Sink<'a> {
    pub image: &'a mut ImageBuf,
    pub header: &'a mut SourceHeader,
    /// JPEG/PNG decoder with `source.max_pixels` (raw images are checked against the same limits).
    pub decoder: &'a mut ImageDecoder,
    /// The message's `encoding` (`CompressedImage.format`), kept for the log line of an unsupported one.
    pub encoding: &'a mut String,
}

/// The seed `take_seed` clones per sample (a shared reference to the sink).
#[derive(Clone, Copy)]
pub struct ImageSeed<'s, 'a> {
    pub message: ImageMessage,
    pub sink: &'s RefCell<Sink<'a>>,
}

const IMAGE_FIELDS: &[&str] = &["header", "height", "width", "encoding", "is_bigendian", "step", "data"];
const COMPRESSED_FIELDS: &[&str] = &["header", "format", "data"];

impl<'de> DeserializeSeed<'de> for ImageSeed<'_, '_> {
    type Value = Outcome;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Outcome, D::Error> {
        match self.message {
            ImageMessage::Image => deserializer.deserialize_struct("Image", IMAGE_FIELDS, self),
            ImageMessage::Compressed => deserializer.deserialize_struct("CompressedImage", COMPRESSED_FIELDS, self),
        }
    }
}

fn next<'de, A: SeqAccess<'de>, S: DeserializeSeed<'de>>(seq: &mut A, seed: S, field: &'static str) -> Result<S::Value, A::Error> {
    seq.next_element_seed(seed)?.ok_or_else(|| de::Error::missing_field(field))
}

fn plain<'de, A: SeqAccess<'de>, T: serde::Deserialize<'de>>(seq: &mut A, field: &'static str) -> Result<T, A::Error> {
    next(seq, std::marker::PhantomData::<T>, field)
}

impl<'de> Visitor<'de> for ImageSeed<'_, '_> {
    type Value = Outcome;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a sensor_msgs Image or CompressedImage")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Outcome, A::Error> {
        let mut sink = self.sink.borrow_mut();
        let Sink { image, header, decoder, encoding } = &mut *sink;
        next(&mut seq, HeaderSeed(header), "header")?;
        let result = match self.message {
            ImageMessage::Image => {
                let height: u32 = plain(&mut seq, "height")?;
                let width: u32 = plain(&mut seq, "width")?;
                next(&mut seq, StrInto(encoding), "encoding")?;
                let _big_endian: u8 = plain(&mut seq, "is_bigendian")?; // 8-bit encodings only: no byte order
                let step: u32 = plain(&mut seq, "step")?;
                let format = image_in::pixel_format(encoding);
                next(&mut seq, Pixels::Raw { format, width, height, step, decoder, out: image }, "data")?
            }
            ImageMessage::Compressed => {
                next(&mut seq, StrInto(encoding), "format")?;
                // image_transport writes "jpeg", "png" or "bgr8; jpeg compressed bgr8"; the decoder
                // tells JPEG and PNG apart by their bytes, so an empty format is tried too.
                let known = encoding.is_empty() || ["jpeg", "jpg", "png"].iter().any(|n| contains_ignore_case(encoding, n));
                next(&mut seq, Pixels::Encoded { known, decoder, out: image }, "data")?
            }
        };
        Ok(match result {
            Ok(()) => Outcome::Frame,
            Err(Reject::Unsupported) => Outcome::Unsupported,
            Err(Reject::Malformed(m)) => Outcome::Malformed(m),
        })
    }
}

/// `needle` (lowercase ASCII) in `hay`, ignoring ASCII case, without allocating.
fn contains_ignore_case(hay: &str, needle: &str) -> bool {
    hay.as_bytes().windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// `std_msgs/Header` into the frame's [`SourceHeader`].
struct HeaderSeed<'h>(&'h mut SourceHeader);

impl<'de> DeserializeSeed<'de> for HeaderSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_struct("Header", &["stamp", "frame_id"], self)
    }
}

impl<'de> Visitor<'de> for HeaderSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a std_msgs Header")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let stamp: Time = plain(&mut seq, "stamp")?;
        next(&mut seq, FrameIdSeed { header: self.0, stamp }, "frame_id")
    }
}

struct FrameIdSeed<'h> {
    header: &'h mut SourceHeader,
    stamp: Time,
}

impl<'de> DeserializeSeed<'de> for FrameIdSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for FrameIdSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a frame id string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.header.set(self.stamp.to_duration(), v);
        Ok(())
    }
}

/// A string field into a reused `String`.
struct StrInto<'s>(&'s mut String);

impl<'de> DeserializeSeed<'de> for StrInto<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for StrInto<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.0.clear();
        self.0.push_str(v);
        Ok(())
    }
}

/// The `data` field: borrowed from the sample and converted into the frame's image.
enum Pixels<'o> {
    Raw { format: Option<perch_pipeline::PixelFormat>, width: u32, height: u32, step: u32, decoder: &'o ImageDecoder, out: &'o mut ImageBuf },
    Encoded { known: bool, decoder: &'o mut ImageDecoder, out: &'o mut ImageBuf },
}

impl<'de> DeserializeSeed<'de> for Pixels<'_> {
    type Value = Result<(), Reject>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_bytes(self)
    }
}

impl<'de> Visitor<'de> for Pixels<'_> {
    type Value = Result<(), Reject>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("image bytes")
    }
    fn visit_bytes<E: de::Error>(self, data: &[u8]) -> Result<Self::Value, E> {
        Ok(match self {
            Pixels::Raw { format: None, .. } | Pixels::Encoded { known: false, .. } => Err(Reject::Unsupported),
            Pixels::Raw { format: Some(format), width, height, step, decoder, out } => {
                image_in::copy_raw(format, RawImage { width, height, step, data }, &decoder.limits, out)
            }
            Pixels::Encoded { known: true, decoder, out } => decoder.decode(data, out).map_err(|e| Reject::Malformed(format!("{e:#}"))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::{to_cdr, CompressedImage, Header, Image};
    use perch_pipeline::PixelFormat;
    use perch_preprocess::DecodeLimits;
    use ros2_client::dds::rustdds::cdr_encoding::CdrDeserializer;

    struct Frame {
        image: ImageBuf,
        header: SourceHeader,
        decoder: ImageDecoder,
        encoding: String,
    }

    impl Frame {
        fn new() -> Self {
            Self { image: ImageBuf::default(), header: SourceHeader::default(), decoder: ImageDecoder::new(DecodeLimits::default()), encoding: String::new() }
        }

        /// Decode one sample (with its 4-byte encapsulation header) as ros2-client would.
        fn read(&mut self, message: ImageMessage, sample: &[u8]) -> Result<Outcome, String> {
            let sink = RefCell::new(Sink { image: &mut self.image, header: &mut self.header, decoder: &mut self.decoder, encoding: &mut self.encoding });
            let seed = ImageSeed { message, sink: &sink };
            let body = &sample[4..];
            if sample[1] == 0x01 {
                seed.deserialize(&mut CdrDeserializer::<byteorder::LittleEndian>::new(body)).map_err(|e| e.to_string())
            } else {
                seed.deserialize(&mut CdrDeserializer::<byteorder::BigEndian>::new(body)).map_err(|e| e.to_string())
            }
        }
    }

    fn image(encoding: &str, width: u32, height: u32, step: u32, data: Vec<u8>) -> Image {
        let header = Header { stamp: Time { sec: 1_700_000_000, nanosec: 123_456_789 }, frame_id: "cam_optical".into() };
        Image { header, height, width, encoding: encoding.into(), is_bigendian: 0, step, data }
    }

    #[test]
    fn a_padded_rgb8_image_lands_tight_with_its_header() {
        // 3x2 rgb8, step 12 (3 bytes of padding per row).
        let data: Vec<u8> = (0..24).collect();
        let bytes = to_cdr(&image("rgb8", 3, 2, 12, data)).unwrap();
        let mut f = Frame::new();
        assert_eq!(f.read(ImageMessage::Image, &bytes).unwrap(), Outcome::Frame);
        assert_eq!((f.image.format, f.image.width, f.image.height), (PixelFormat::Rgb8, 3, 2));
        assert_eq!(f.image.data, [0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 13, 14, 15, 16, 17, 18, 19, 20]);
        assert_eq!(f.header.stamp, Some(std::time::Duration::new(1_700_000_000, 123_456_789)));
        assert_eq!(f.header.frame_id, "cam_optical");
    }

    #[test]
    fn big_endian_samples_decode_too() {
        let msg = image("mono8", 2, 2, 2, vec![1, 2, 3, 4]);
        let body = ros2_client::dds::rustdds::cdr_encoding::to_vec::<_, byteorder::BigEndian>(&msg).unwrap();
        let sample = [&[0u8, 0, 0, 0][..], &body].concat();
        let mut f = Frame::new();
        assert_eq!(f.read(ImageMessage::Image, &sample).unwrap(), Outcome::Frame);
        assert_eq!((f.image.format, &f.image.data[..]), (PixelFormat::Gray8, &[1u8, 2, 3, 4][..]));
        assert_eq!(f.header.frame_id, "cam_optical");
    }

    #[test]
    fn unsupported_and_malformed_are_outcomes_not_errors() {
        let mut f = Frame::new();
        let bytes = to_cdr(&image("bayer_rggb8", 2, 2, 2, vec![0; 4])).unwrap();
        assert_eq!(f.read(ImageMessage::Image, &bytes).unwrap(), Outcome::Unsupported);
        assert_eq!(f.encoding, "bayer_rggb8");
        let bytes = to_cdr(&image("bgr8", 4, 4, 12, vec![0; 47])).unwrap();
        match f.read(ImageMessage::Image, &bytes).unwrap() {
            Outcome::Malformed(m) => assert!(m.contains("data is 47 bytes"), "{m}"),
            other => panic!("{other:?}"),
        }
        // Truncated CDR is an error (the sample is not an Image at all).
        let bytes = to_cdr(&image("rgb8", 2, 2, 6, vec![0; 12])).unwrap();
        assert!(f.read(ImageMessage::Image, &bytes[..bytes.len() - 5]).is_err());
    }

    #[test]
    fn compressed_jpeg_decodes_to_rgb8_and_other_formats_are_unsupported() {
        let mut jpeg = Vec::new();
        let img = image::RgbImage::from_fn(32, 16, |x, y| image::Rgb([(x * 8) as u8, (y * 16) as u8, 128]));
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95).encode_image(&img).unwrap();
        let header = Header { stamp: Time { sec: 5, nanosec: 6 }, frame_id: "cam".into() };
        let mut f = Frame::new();
        for format in ["jpeg", "bgr8; jpeg compressed bgr8", ""] {
            let msg = CompressedImage { header: header.clone(), format: format.into(), data: jpeg.clone() };
            assert_eq!(f.read(ImageMessage::Compressed, &to_cdr(&msg).unwrap()).unwrap(), Outcome::Frame, "{format:?}");
            assert_eq!((f.image.format, f.image.width, f.image.height), (PixelFormat::Rgb8, 32, 16));
            assert_eq!(f.header.stamp, Some(std::time::Duration::new(5, 6)));
        }
        let msg = CompressedImage { header: header.clone(), format: "16UC1; compressedDepth".into(), data: jpeg.clone() };
        assert_eq!(f.read(ImageMessage::Compressed, &to_cdr(&msg).unwrap()).unwrap(), Outcome::Unsupported);
        let msg = CompressedImage { header, format: "jpeg".into(), data: jpeg[..jpeg.len() / 2].to_vec() };
        assert!(matches!(f.read(ImageMessage::Compressed, &to_cdr(&msg).unwrap()).unwrap(), Outcome::Malformed(_)));
    }

    #[test]
    fn steady_state_reuses_the_frame_allocations() {
        let bytes = to_cdr(&image("rgb8", 64, 48, 64 * 3, vec![7; 64 * 48 * 3])).unwrap();
        let mut f = Frame::new();
        f.read(ImageMessage::Image, &bytes).unwrap();
        let (img, id) = (f.image.data.as_ptr(), f.header.frame_id.as_ptr());
        for _ in 0..5 {
            assert_eq!(f.read(ImageMessage::Image, &bytes).unwrap(), Outcome::Frame);
            assert_eq!((f.image.data.as_ptr(), f.header.frame_id.as_ptr()), (img, id));
        }
    }
}
