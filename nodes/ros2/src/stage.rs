//! `Ros2PublishStage`: perch as a ROS 2 node publishing detections, diagnostics and (optionally) images.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime};

use anyhow::Context as _;
use perch_pipeline::{Frame, LiveStats, Stage, StartContext};
use ros2_client::{MessageTypeName, Name, Node, Publisher};

use crate::config::{self, QosConfig, Ros2Config, ToQosProfile};
use crate::convert::{self, DiagWindow, PublisherCounts};
use crate::msg::{CompressedImage, Detection2DArray, DiagnosticArray, Header, RosMessage, Time};
use crate::overlay::Overlay;
use crate::node::Ros2Node;
use crate::params::LiveParams;

/// Counters shared with the diagnostics thread.
#[derive(Debug, Default)]
struct Counts {
    detections_sent: AtomicU64,
    unsent: AtomicU64,
    images_sent: AtomicU64,
    images_unsent: AtomicU64,
    images_unsupported: AtomicU64,
    image_errors: AtomicU64,
    diagnostics_sent: AtomicU64,
    diagnostics_unsent: AtomicU64,
}

impl Counts {
    fn publisher_counts(&self) -> PublisherCounts {
        PublisherCounts {
            detections_sent: self.detections_sent.load(Ordering::Relaxed),
            unsent: self.unsent.load(Ordering::Relaxed),
            images_sent: self.images_sent.load(Ordering::Relaxed),
        }
    }
}

/// Called with every `Detection2DArray` the stage hands to DDS and whether DDS took it
/// (for tests and tools that must know exactly what was published).
pub type PublishObserver = Box<dyn FnMut(&Detection2DArray, bool) + Send>;

/// The ROS 2 publish stage (name `ros2`). See the crate README for topics, QoS and parameters.
pub struct Ros2PublishStage {
    cfg: Ros2Config,
    domain_id: u16,
    params: Arc<LiveParams>,
    // Field order = drop order: publishers before the node, the node before the context.
    det_pub: Publisher<Detection2DArray>,
    img_pub: Option<Publisher<CompressedImage>>,
    diag_pub: Option<Publisher<DiagnosticArray>>,
    /// After the publishers (field order = drop order); the node ends with its last handle (see [`Ros2Node`]).
    node: Option<Ros2Node>,
    node_name: String,
    diag_thread: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
    class_names: Option<Arc<[String]>>,
    counts: Arc<Counts>,
    overlay: Overlay,
    jpeg: Vec<u8>,
    next_image: Option<Instant>,
    observer: Option<PublishObserver>,
    warned_unsent: bool,
    frames: u64,
    stopped: AtomicBool,
}

impl std::fmt::Debug for Ros2PublishStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ros2PublishStage")
            .field("node", &self.node_name)
            .field("domain_id", &self.domain_id)
            .finish_non_exhaustive()
    }
}

fn create_publisher<M: RosMessage>(node: &mut Node, key: &str, topic: &str, qos: &QosConfig) -> anyhow::Result<Publisher<M>> {
    let t = node
        .create_topic(&topic_name(key, topic)?, MessageTypeName::new(M::PACKAGE, M::NAME), &qos.to_profile())
        .map_err(|e| anyhow::anyhow!("cannot create topic {topic}: {e:?}"))?;
    node.create_publisher::<M>(&t, None).map_err(|e| anyhow::anyhow!("cannot create publisher {topic}: {e:?}"))
}

fn topic_name(key: &str, topic: &str) -> anyhow::Result<Name> {
    Name::parse(topic).map_err(|e| {
        anyhow::anyhow!("ros2.{key}.topic = {topic:?} is not a valid ROS 2 topic name ({e:?}): use e.g. \"detections\" or \"/robot/detections\"")
    })
}

fn describe_qos(q: &QosConfig) -> String {
    format!("{:?}, keep_last({}), {:?}", q.reliability, q.history_depth, q.durability).to_lowercase()
}

impl Ros2PublishStage {
    /// A node with its own default [`LiveParams`] (`conf` 0.25, `iou` 0.7); the pipeline uses [`Self::with_params`].
    pub fn new(cfg: &Ros2Config) -> anyhow::Result<Self> {
        Self::with_params(cfg, Arc::new(LiveParams::default()))
    }

    /// A node whose `conf` / `iou` ROS parameters read and write `params`, the same `Arc` the
    /// detect stage reads each frame. Initial parameter values are `params`' current values.
    /// `PERCH_ROS2_NAMESPACE`, `PERCH_ROS2_NODE_NAME`, `PERCH_ROS2_REMAP` and `ROS_DOMAIN_ID`
    /// are read from the environment.
    pub fn with_params(cfg: &Ros2Config, params: Arc<LiveParams>) -> anyhow::Result<Self> {
        Self::on_node(Ros2Node::open(cfg, params)?)
    }

    /// Like [`Self::with_params`] with an explicit domain and no environment overrides (tests).
    pub fn with_domain(cfg: &Ros2Config, domain_id: u16, params: Arc<LiveParams>) -> anyhow::Result<Self> {
        Self::on_node(Ros2Node::with_domain(cfg, domain_id, params)?)
    }

    /// The stage on a node that already exists (shared with the ROS 2 image source, so perch is
    /// one node in the graph). Topics and QoS come from the node's `[ros2]` config.
    pub fn on_node(node: Ros2Node) -> anyhow::Result<Self> {
        let cfg = node.config().clone();
        let (det_pub, diag_pub, img_pub) = node
            .with(|n| -> anyhow::Result<_> {
                let det_pub = create_publisher::<Detection2DArray>(n, "detections", &cfg.detections.topic, &cfg.detections.qos)?;
                let diag_pub = match cfg.diagnostics.enabled {
                    true => Some(create_publisher::<DiagnosticArray>(n, "diagnostics", &cfg.diagnostics.topic, &cfg.diagnostics.qos)?),
                    false => None,
                };
                let img_pub = match cfg.image.enabled {
                    true => Some(create_publisher::<CompressedImage>(n, "image", &cfg.image.topic, &cfg.image.qos)?),
                    false => None,
                };
                Ok((det_pub, diag_pub, img_pub))
            })
            .context("the ROS 2 node was already shut down")??;
        tracing::info!(
            node = %node.name(),
            domain_id = node.domain_id(),
            detections = %cfg.detections.topic,
            qos = %describe_qos(&cfg.detections.qos),
            "ros2: publishing. Subscribers must use compatible QoS: a best-effort publisher never reaches a reliable subscriber"
        );
        Ok(Self {
            domain_id: node.domain_id(),
            params: node.params(),
            det_pub,
            img_pub,
            diag_pub,
            node_name: node.name().to_string(),
            node: Some(node),
            diag_thread: None,
            class_names: None,
            counts: Arc::default(),
            overlay: Overlay::default(),
            jpeg: Vec::new(),
            next_image: None,
            observer: None,
            warned_unsent: false,
            frames: 0,
            stopped: AtomicBool::new(false),
            cfg,
        })
    }

    /// The node this stage publishes on (an image source can subscribe on it: [`crate::open_image_source`]).
    pub fn node(&self) -> Option<Ros2Node> {
        self.node.clone()
    }

    /// The parameters the ROS 2 parameter services write; hand the same `Arc` to the detect stage.
    pub fn params(&self) -> Arc<LiveParams> {
        self.params.clone()
    }

    pub fn domain_id(&self) -> u16 {
        self.domain_id
    }

    /// `/namespace/name`.
    pub fn node_name(&self) -> String {
        self.node_name.clone()
    }

    /// Subscriptions currently matched to the detections publisher.
    pub fn detections_subscribers(&self) -> usize {
        let det_pub = &self.det_pub;
        self.node.as_ref().and_then(|node| node.with(|n| det_pub.get_subscription_count(n))).unwrap_or(0)
    }

    /// Observe every detections message right after it was handed to DDS (tools, tests).
    pub fn set_observer(&mut self, observer: PublishObserver) {
        self.observer = Some(observer);
    }

    fn publish_image(&mut self, frame: &Frame, header: &Header) {
        let Some(img_pub) = &self.img_pub else { return };
        let now = Instant::now();
        if self.next_image.is_some_and(|t| now < t) {
            return;
        }
        self.next_image = Some(now + convert::image_interval(self.cfg.image.rate_hz));
        match self.overlay.encode(&frame.image, &frame.detections, self.cfg.image.jpeg_quality, &mut self.jpeg) {
            Ok(Some(())) => {
                let msg = CompressedImage { header: header.clone(), format: "jpeg".into(), data: self.jpeg.clone() };
                match img_pub.publish(msg) {
                    Ok(()) => self.counts.images_sent.fetch_add(1, Ordering::Relaxed),
                    Err(_) => self.counts.images_unsent.fetch_add(1, Ordering::Relaxed),
                };
            }
            Ok(None) => {
                self.counts.images_unsupported.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                if self.counts.image_errors.fetch_add(1, Ordering::Relaxed) == 0 {
                    tracing::warn!("ros2: cannot encode the overlay image: {e:#}");
                }
            }
        }
    }
}

fn spawn_diagnostics(
    publisher: Publisher<DiagnosticArray>,
    live: Arc<LiveStats>,
    cfg: &Ros2Config,
    hardware_id: String,
    counts: Arc<Counts>,
) -> anyhow::Result<(mpsc::Sender<()>, JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel::<()>();
    let period = config::period(cfg.diagnostics.period_s);
    let (frame_id, warn) = (cfg.frame_id.clone(), cfg.diagnostics.miss_rate_warn);
    let handle = std::thread::Builder::new().name("ros2-diagnostics".into()).spawn(move || {
        let mut window = DiagWindow::default();
        let mut next = Instant::now() + period;
        // Any message or a dropped sender means stop; only a timeout means "publish now".
        while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(next.saturating_duration_since(Instant::now())) {
            next += period;
            let stamp = Time::from_system(SystemTime::now());
            let arr = convert::diagnostics(
                &live.snapshot(),
                &mut window,
                stamp,
                &frame_id,
                &hardware_id,
                warn,
                counts.publisher_counts(),
            );
            match publisher.publish(arr) {
                Ok(()) => counts.diagnostics_sent.fetch_add(1, Ordering::Relaxed),
                Err(_) => counts.diagnostics_unsent.fetch_add(1, Ordering::Relaxed),
            };
        }
    })?;
    Ok((tx, handle))
}

impl Stage for Ros2PublishStage {
    fn name(&self) -> &'static str {
        "ros2"
    }

    fn start(&mut self, ctx: &mut StartContext) -> anyhow::Result<()> {
        self.class_names = ctx.class_names.clone();
        if let Some(diag_pub) = self.diag_pub.take() {
            self.diag_thread = Some(spawn_diagnostics(
                diag_pub,
                ctx.live.clone(),
                &self.cfg,
                self.node_name.clone(),
                self.counts.clone(),
            )?);
        }
        Ok(())
    }

    fn process(&mut self, frame: &mut Frame) -> anyhow::Result<()> {
        // The input image's own header when the source has one (a ROS 2 image topic), so consumers
        // can pair detections with images; otherwise the capture time and `ros2.frame_id`.
        let (stamp, frame_id) = convert::output_header(
            &frame.data.header,
            || Time::from_system(convert::capture_wall_time(frame.captured_at, Instant::now(), SystemTime::now())),
            &self.cfg.frame_id,
        );
        let mut msg = Detection2DArray::default();
        convert::fill_detection_array(
            &mut msg,
            stamp,
            frame_id,
            &frame.detections,
            self.cfg.class_id,
            self.class_names.as_deref(),
        );
        let header = self.img_pub.is_some().then(|| msg.header.clone());
        let logged = self.observer.as_ref().map(|_| msg.clone());
        let sent = match self.det_pub.publish(msg) {
            Ok(()) => {
                self.counts.detections_sent.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(e) => {
                let n = self.counts.unsent.fetch_add(1, Ordering::Relaxed) + 1;
                if !self.warned_unsent || n.is_multiple_of(1000) {
                    self.warned_unsent = true;
                    tracing::warn!("ros2: detections not sent ({e}); {n} unsent so far (a slow reliable subscriber?)");
                }
                false
            }
        };
        self.frames += 1;
        if self.frames == 100 && self.detections_subscribers() == 0 {
            tracing::info!(
                "ros2: no subscriber matched {} after 100 frames (domain {}). If one is running: same ROS_DOMAIN_ID? \
                 QoS compatible (this publisher is {}; a best-effort publisher never reaches a reliable subscriber)?",
                self.cfg.detections.topic,
                self.domain_id,
                describe_qos(&self.cfg.detections.qos)
            );
        }
        if let (Some(obs), Some(msg)) = (self.observer.as_mut(), logged) {
            obs(&msg, sent);
        }
        if let Some(header) = header {
            self.publish_image(frame, &header);
        }
        // A frame that could not be sent is still processed: ROS output is a side channel.
        Ok(())
    }

    fn stop(&mut self) -> anyhow::Result<()> {
        if self.stopped.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        if let Some((tx, h)) = self.diag_thread.take() {
            let _ = tx.send(());
            let _ = h.join();
        }
        // The node handle stays until the stage is dropped: its fields drop in order, the
        // publishers before the node (a publisher dropped after the node's DDS context is gone
        // logs "ERROR ... Cannot remove Writer"). The last handle ends the node and its spinner.
        Ok(())
    }

    fn counters(&self) -> Vec<(String, u64)> {
        let c = &self.counts;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        vec![
            ("detections_sent".into(), l(&c.detections_sent)),
            ("unsent".into(), l(&c.unsent)),
            ("images_sent".into(), l(&c.images_sent)),
            ("images_unsent".into(), l(&c.images_unsent)),
            ("images_unsupported_format".into(), l(&c.images_unsupported)),
            ("image_errors".into(), l(&c.image_errors)),
            ("diagnostics_sent".into(), l(&c.diagnostics_sent)),
            ("diagnostics_unsent".into(), l(&c.diagnostics_unsent)),
        ]
    }
}

impl Drop for Ros2PublishStage {
    fn drop(&mut self) {
        let _ = Stage::stop(self);
    }
}
