//! A ROS 2 image topic as perch's frame source (`[source] kind = "ros2"`).
//!
//! A subscription to `sensor_msgs/Image` or `sensor_msgs/CompressedImage` on perch's node. Each
//! sample is deserialized straight into the pooled frame ([`crate::image_seed`]); its header (stamp,
//! frame_id) rides with the frame, so the published detections carry the input image's header.
//!
//! Timing: the source is live (a camera's rate, not the pipeline's). `wait_until_due` waits for the
//! subscription's readiness in slices of at most [`SLICE`], so a stop request is honoured within one
//! slice; `next_frame` takes one sample (the capture stage's measured work: copy or decode). Images
//! arriving faster than the pipeline runs are thinned by the runtime's `keep_latest` first queue
//! (counted as `stale` drops: the ledger stays exact); images DDS discards before perch reads them
//! (history depth, best-effort loss) never were perch's frames and are not counted.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use perch_pipeline::{FrameData, ImageMessage, QosConfig, Source, SourceEvent, SourceInfo};
use perch_preprocess::{DecodeLimits, ImageDecoder};
use ros2_client::dds::rustdds::mio1::{Events, Interest, Poll, Token};
use ros2_client::{MessageTypeName, Name, Subscription};

use crate::config::ToQosProfile;
use crate::image_in::SUPPORTED_ENCODINGS;
use crate::image_seed::{ImageSeed, Outcome, Sink};
use crate::node::Ros2Node;

/// Longest single wait for an image, so a stop request is seen promptly.
pub const SLICE: Duration = Duration::from_millis(100);
/// With no image after this long, say what usually causes it (once).
const NO_IMAGE_HINT: Duration = Duration::from_secs(5);

/// What the source needs from `[source]` (the binary converts perch-capture's `SourceConfig`; this
/// crate does not depend on it). Errors name the `source.*` keys.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageSourceConfig {
    /// `source.topic`: absolute (`/camera/image_raw`) or relative to the node's namespace.
    pub topic: String,
    /// `source.message`: `sensor_msgs/Image` or `sensor_msgs/CompressedImage`.
    pub message: ImageMessage,
    /// `source.qos` over the sensor-data profile (best effort, keep last 1, volatile).
    pub qos: QosConfig,
    /// `source.max_pixels`: larger images are decode errors, checked before any buffer is sized.
    pub max_pixels: u64,
    /// `source.end_frame`: stop before the image with this index (0-based count of received images).
    pub end_frame: Option<u64>,
}

impl ImageSourceConfig {
    /// `topic` with the message type its name implies (`.../compressed`: CompressedImage), sensor-data QoS.
    pub fn for_topic(topic: &str) -> Self {
        Self {
            topic: topic.to_string(),
            message: ImageMessage::for_topic(topic),
            qos: QosConfig::sensor_data(),
            max_pixels: perch_preprocess::DEFAULT_MAX_PIXELS,
            end_frame: None,
        }
    }

    /// Check every key; returns the parsed topic name. Errors name the key.
    pub fn validate(&self) -> anyhow::Result<Name> {
        let topic = self.topic.trim();
        anyhow::ensure!(
            !topic.is_empty(),
            "source.topic is empty: source.kind = \"ros2\" needs the image topic, e.g. source.topic = \"/camera/image_raw\""
        );
        let name = Name::parse(topic).map_err(|e| {
            anyhow::anyhow!(
                "source.topic = {:?} is not a valid ROS 2 topic name ({e:?}): use e.g. \"/camera/image_raw\" or \"image_raw\"",
                self.topic
            )
        })?;
        anyhow::ensure!(self.qos.history_depth >= 1, "source.qos.history_depth = 0: must be at least 1 (keep_last depth)");
        anyhow::ensure!(self.max_pixels > 0, "source.max_pixels = 0: must be at least 1");
        anyhow::ensure!(self.end_frame != Some(0), "source.end_frame = 0: would stop before the first image");
        Ok(name)
    }

    fn type_name(&self) -> (&'static str, &'static str) {
        match self.message {
            ImageMessage::Image => ("sensor_msgs", "Image"),
            ImageMessage::Compressed => ("sensor_msgs", "CompressedImage"),
        }
    }
}

/// What the report counts (see [`Ros2ImageSource::counters`]).
#[derive(Debug, Default)]
struct Counts {
    received: u64,
    unsupported: u64,
    malformed: u64,
}

/// A ROS 2 image subscription as perch's capture source.
pub struct Ros2ImageSource {
    // Field order = drop order: the subscription before the node handle that keeps the node alive.
    sub: Subscription<Outcome>,
    poll: Poll,
    events: Events,
    node: Ros2Node,
    cfg: ImageSourceConfig,
    name: String,
    decoder: ImageDecoder,
    /// The last sample's `encoding`/`format` (reused buffer).
    encoding: String,
    /// A sample may be waiting: the last take found one (readiness was consumed with it).
    ready: bool,
    next_index: u64,
    counts: Counts,
    /// Unsupported encodings already named in the log (each once).
    unsupported_logged: Vec<String>,
    opened: Instant,
    hinted: bool,
}

/// Open the image source on `node` (shared with the publish stage: one node in the graph).
pub fn open_image_source(node: &Ros2Node, cfg: &ImageSourceConfig) -> anyhow::Result<Box<dyn Source>> {
    Ok(Box::new(Ros2ImageSource::open(node, cfg)?))
}

impl Ros2ImageSource {
    pub fn open(node: &Ros2Node, cfg: &ImageSourceConfig) -> anyhow::Result<Self> {
        let name = cfg.validate()?;
        let (package, ty) = cfg.type_name();
        let mut sub = node
            .with(|n| -> anyhow::Result<Subscription<Outcome>> {
                let topic = n
                    .create_topic(&name, MessageTypeName::new(package, ty), &cfg.qos.to_profile())
                    .map_err(|e| anyhow::anyhow!("source.topic = {:?}: cannot create the topic: {e:?}", cfg.topic))?;
                n.create_subscription::<Outcome>(&topic, None)
                    .map_err(|e| anyhow::anyhow!("source.topic = {:?}: cannot subscribe: {e:?}", cfg.topic))
            })
            .context("the ROS 2 node was already shut down")??;
        let poll = Poll::new().context("ros2 source: cannot create a poller")?;
        poll.registry()
            .register(&mut sub, Token(0), Interest::READABLE)
            .context("ros2 source: cannot poll the subscription")?;
        let q = &cfg.qos;
        tracing::info!(
            node = %node.name(),
            topic = %cfg.topic,
            r#type = %format!("{package}/msg/{ty}"),
            qos = %format!("{:?}, keep_last({}), {:?}", q.reliability, q.history_depth, q.durability).to_lowercase(),
            "ros2: subscribed to images"
        );
        Ok(Self {
            sub,
            poll,
            events: Events::with_capacity(4),
            node: node.clone(),
            name: format!("ros2 {} ({package}/{ty})", cfg.topic),
            decoder: ImageDecoder::new(DecodeLimits { max_pixels: cfg.max_pixels }),
            encoding: String::new(),
            ready: true,
            next_index: 0,
            counts: Counts::default(),
            unsupported_logged: Vec::new(),
            opened: Instant::now(),
            hinted: false,
            cfg: cfg.clone(),
        })
    }

    fn ended(&self) -> bool {
        self.cfg.end_frame.is_some_and(|end| self.next_index >= end)
    }

    /// Nothing received for a while since the start: name the usual causes, once. (Not asked of the
    /// graph: ros2-client logs an ERROR for a publisher count of a subscription that never matched.)
    fn hint_if_silent(&mut self) {
        if self.hinted || self.counts.received > 0 || self.opened.elapsed() < NO_IMAGE_HINT {
            return;
        }
        self.hinted = true;
        tracing::info!(
            "ros2: no image on {} after {} s (domain {}). If a publisher is running: same ROS_DOMAIN_ID? Same message \
             type (source.message: {})? QoS: a reliable subscription (source.qos.reliability) never hears a best-effort \
             publisher",
            self.cfg.topic,
            NO_IMAGE_HINT.as_secs(),
            self.node.domain_id(),
            match self.cfg.message {
                ImageMessage::Image => "image",
                ImageMessage::Compressed => "compressed",
            }
        );
    }

    fn unsupported(&mut self, index: u64) -> SourceEvent {
        self.counts.unsupported += 1;
        let what = match self.cfg.message {
            ImageMessage::Image => "encoding",
            ImageMessage::Compressed => "format",
        };
        if !self.unsupported_logged.contains(&self.encoding) {
            tracing::warn!(
                "ros2 source {}: images with {what} {:?} are not supported (perch reads {}); each is counted as a decode_error",
                self.cfg.topic,
                self.encoding,
                match self.cfg.message {
                    ImageMessage::Image => SUPPORTED_ENCODINGS,
                    ImageMessage::Compressed => "jpeg, png",
                }
            );
            self.unsupported_logged.push(self.encoding.clone());
        }
        // The same text for every such image: the runtime logs a repeated decode error only once.
        SourceEvent::DecodeError { source_index: index, what: format!("{}: unsupported {what} {:?}", self.name, self.encoding) }
    }
}

impl Source for Ros2ImageSource {
    fn info(&self) -> SourceInfo {
        // Size and rate are the publisher's and may change per image: not known before the first.
        SourceInfo { name: self.name.clone(), width: 0, height: 0, fps: None, frames: None, device: None }
    }

    fn wait_until_due(&mut self) {
        if self.ready || self.ended() {
            return;
        }
        // Woken by a new sample or after one slice; either way `next_frame` tries one take.
        if let Err(e) = self.poll.poll(&mut self.events, Some(SLICE)) {
            if e.kind() != std::io::ErrorKind::Interrupted {
                tracing::debug!("ros2 source: poll failed: {e}");
                std::thread::sleep(SLICE);
            }
        }
        self.ready = true;
    }

    fn next_frame(&mut self, data: &mut FrameData) -> SourceEvent {
        if self.ended() {
            return SourceEvent::End;
        }
        let taken = {
            let sink = RefCell::new(Sink {
                image: &mut data.image,
                header: &mut data.header,
                decoder: &mut self.decoder,
                encoding: &mut self.encoding,
            });
            self.sub.take_seed(ImageSeed { message: self.cfg.message, sink: &sink })
        };
        let outcome = match taken {
            Ok(None) => {
                self.ready = false;
                self.hint_if_silent();
                return SourceEvent::Idle;
            }
            Ok(Some((outcome, _info))) => Ok(outcome),
            Err(e) => Err(e),
        };
        // One sample was taken; more may be waiting behind it.
        self.ready = true;
        let index = self.next_index;
        self.next_index += 1;
        self.counts.received += 1;
        match outcome {
            Ok(Outcome::Frame) => SourceEvent::Frame { source_index: index, source_ts: data.header.stamp.unwrap_or_default() },
            Ok(Outcome::Unsupported) => self.unsupported(index),
            Ok(Outcome::Malformed(why)) => {
                self.counts.malformed += 1;
                SourceEvent::DecodeError { source_index: index, what: format!("{}: {why}", self.name) }
            }
            Err(e) => {
                self.counts.malformed += 1;
                SourceEvent::DecodeError { source_index: index, what: format!("{}: not a valid sample of this type: {e:?}", self.name) }
            }
        }
    }

    fn counters(&self) -> Vec<(String, u64)> {
        vec![
            ("images_received".into(), self.counts.received),
            ("images_unsupported_encoding".into(), self.counts.unsupported),
            ("images_malformed".into(), self.counts.malformed),
        ]
    }

    fn is_live(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use perch_pipeline::qos::{QosOverrides, ReliabilityKind};

    #[test]
    fn config_errors_name_the_key() {
        let err = |c: ImageSourceConfig| c.validate().unwrap_err().to_string();
        let e = err(ImageSourceConfig::for_topic(""));
        assert!(e.contains("source.topic is empty"), "{e}");
        for bad in ["/camera//image", "camera image", "/1camera/image", "/camera/image/"] {
            let e = err(ImageSourceConfig::for_topic(bad));
            assert!(e.contains("source.topic") && e.contains("not a valid ROS 2 topic name"), "{bad}: {e}");
        }
        let mut c = ImageSourceConfig::for_topic("/camera/image_raw");
        c.qos.history_depth = 0;
        assert!(err(c).contains("source.qos.history_depth = 0"));
        let mut c = ImageSourceConfig::for_topic("/camera/image_raw");
        c.max_pixels = 0;
        assert!(err(c).contains("source.max_pixels"));
        let mut c = ImageSourceConfig::for_topic("/camera/image_raw");
        c.end_frame = Some(0);
        assert!(err(c).contains("source.end_frame"));
    }

    #[test]
    fn defaults_follow_the_topic_and_sensor_data_qos() {
        let c = ImageSourceConfig::for_topic("/camera/image_raw");
        assert_eq!(c.message, ImageMessage::Image);
        assert_eq!(c.qos, QosConfig::sensor_data());
        c.validate().unwrap();
        let c = ImageSourceConfig::for_topic("/camera/image_raw/compressed");
        assert_eq!(c.message, ImageMessage::Compressed);
        assert_eq!(c.type_name(), ("sensor_msgs", "CompressedImage"));
        ImageSourceConfig::for_topic("image_raw").validate().unwrap();
        // An override keeps the other keys of the sensor-data profile.
        let o = QosOverrides { reliability: Some(ReliabilityKind::Reliable), ..Default::default() };
        assert_eq!(o.over(QosConfig::sensor_data()).history_depth, 1);
    }
}
