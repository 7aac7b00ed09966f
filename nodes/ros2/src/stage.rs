//! `Ros2PublishStage`: perch as a ROS 2 node publishing detections, diagnostics and (optionally) images.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime};

use anyhow::Context as _;
use perch_pipeline::{Frame, LiveStats, Stage, StartContext};
use ros2_client::{
    Context, ContextOptions, MessageTypeName, Name, Node, NodeName, NodeOptions, ParameterValue, Publisher,
};

use crate::config::{self, QosConfig, Ros2Config};
use crate::convert::{self, DiagWindow, PublisherCounts};
use crate::msg::{CompressedImage, Detection2DArray, DiagnosticArray, Header, RosMessage, Time};
use crate::overlay::Overlay;
use crate::params::{check_unit, LiveParams};

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
    /// `None` once stopped: dropping the node is what tells its spinner to stop (see `stop`).
    node: Option<Node>,
    node_name: String,
    _context: Context,
    spinner: Option<JoinHandle<()>>,
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
        let mut cfg = cfg.clone();
        cfg.apply_env(|k| std::env::var(k).ok())?;
        cfg.validate()?;
        let domain_id = config::domain_id_from_env()?;
        Self::build(cfg, domain_id, params)
    }

    /// Like [`Self::with_params`] with an explicit domain and no environment overrides (tests).
    pub fn with_domain(cfg: &Ros2Config, domain_id: u16, params: Arc<LiveParams>) -> anyhow::Result<Self> {
        cfg.validate()?;
        anyhow::ensure!(domain_id <= 232, "ROS 2 domain id {domain_id} is out of range 0..=232");
        Self::build(cfg.clone(), domain_id, params)
    }

    fn build(cfg: Ros2Config, domain_id: u16, params: Arc<LiveParams>) -> anyhow::Result<Self> {
        let context = Context::with_options(ContextOptions::new().domain_id(domain_id))
            .with_context(|| format!("cannot start DDS on ROS 2 domain {domain_id}"))?;
        let node_name = NodeName::new(&cfg.namespace, &cfg.node_name).map_err(|e| {
            anyhow::anyhow!(
                "ros2.namespace = {:?} / ros2.node_name = {:?} do not form a valid ROS 2 node name ({e:?}): \
                 namespace like \"/perch\", name like \"perch\"",
                cfg.namespace,
                cfg.node_name
            )
        })?;
        let set_params = params.clone();
        let options = NodeOptions::new()
            .enable_rosout(true)
            .start_parameter_services(true)
            .declare_parameter("conf", ParameterValue::Double(params.conf() as f64))
            .declare_parameter("iou", ParameterValue::Double(params.iou() as f64))
            .parameter_validator(Box::new(|name, value| match (name, value) {
                ("conf" | "iou", ParameterValue::Double(v)) => check_unit(name, *v).map(|_| ()),
                ("conf" | "iou", other) => Err(format!("{name} must be a double in 0..=1, got {other:?}")),
                _ => Ok(()),
            }))
            .parameter_set_action(Box::new(move |name, value| match (name, value) {
                ("conf", ParameterValue::Double(v)) => {
                    tracing::info!(conf = v, "ros2: parameter conf set");
                    set_params.set_conf(*v)
                }
                ("iou", ParameterValue::Double(v)) => {
                    tracing::info!(iou = v, "ros2: parameter iou set");
                    set_params.set_iou(*v)
                }
                _ => Ok(()),
            }));
        let mut node = context
            .new_node(node_name, options)
            .map_err(|e| anyhow::anyhow!("cannot create ROS 2 node {}/{}: {e:?}", cfg.namespace, cfg.node_name))?;

        let det_topic = node
            .create_topic(
                &topic_name("detections", &cfg.detections.topic)?,
                MessageTypeName::new(Detection2DArray::PACKAGE, Detection2DArray::NAME),
                &cfg.detections.qos.to_profile(),
            )
            .map_err(|e| anyhow::anyhow!("cannot create topic {}: {e:?}", cfg.detections.topic))?;
        let det_pub = node
            .create_publisher::<Detection2DArray>(&det_topic, None)
            .map_err(|e| anyhow::anyhow!("cannot create publisher {}: {e:?}", cfg.detections.topic))?;
        let diag_pub = if cfg.diagnostics.enabled {
            let t = node
                .create_topic(
                    &topic_name("diagnostics", &cfg.diagnostics.topic)?,
                    MessageTypeName::new(DiagnosticArray::PACKAGE, DiagnosticArray::NAME),
                    &cfg.diagnostics.qos.to_profile(),
                )
                .map_err(|e| anyhow::anyhow!("cannot create topic {}: {e:?}", cfg.diagnostics.topic))?;
            Some(
                node.create_publisher::<DiagnosticArray>(&t, None)
                    .map_err(|e| anyhow::anyhow!("cannot create publisher {}: {e:?}", cfg.diagnostics.topic))?,
            )
        } else {
            None
        };
        let img_pub = if cfg.image.enabled {
            let t = node
                .create_topic(
                    &topic_name("image", &cfg.image.topic)?,
                    MessageTypeName::new(CompressedImage::PACKAGE, CompressedImage::NAME),
                    &cfg.image.qos.to_profile(),
                )
                .map_err(|e| anyhow::anyhow!("cannot create topic {}: {e:?}", cfg.image.topic))?;
            Some(
                node.create_publisher::<CompressedImage>(&t, None)
                    .map_err(|e| anyhow::anyhow!("cannot create publisher {}: {e:?}", cfg.image.topic))?,
            )
        } else {
            None
        };

        // Graph discovery, parameter services and /rosout need the spinner running.
        let spinner = node.spinner().map_err(|e| anyhow::anyhow!("cannot start the ROS 2 spinner: {e:?}"))?;
        let spinner = std::thread::Builder::new().name("ros2-spinner".into()).spawn(move || {
            if let Err(e) = smol::block_on(spinner.spin()) {
                tracing::warn!("ros2: spinner ended with an error: {e:?}");
            }
        })?;

        tracing::info!(
            node = %node.fully_qualified_name(),
            domain_id,
            detections = %cfg.detections.topic,
            qos = %describe_qos(&cfg.detections.qos),
            "ros2: node up. Subscribers must use compatible QoS: a best-effort publisher never reaches a reliable subscriber"
        );
        Ok(Self {
            domain_id,
            params,
            det_pub,
            img_pub,
            diag_pub,
            node_name: node.fully_qualified_name(),
            node: Some(node),
            _context: context,
            spinner: Some(spinner),
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
        self.node.as_ref().map_or(0, |node| self.det_pub.get_subscription_count(node))
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
        let stamp = Time::from_system(convert::capture_wall_time(frame.captured_at, Instant::now(), SystemTime::now()));
        let mut msg = Detection2DArray::default();
        convert::fill_detection_array(
            &mut msg,
            stamp,
            &self.cfg.frame_id,
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
        // ros2-client signals the spinner once from `stop_spinner` and again from `Node::drop`;
        // the second finds the spinner gone and logs "ERROR Cannot notify spin task to stop" on
        // every clean shutdown. Dropping the node is the one signal (the spinner is still there).
        drop(self.node.take());
        if let Some(h) = self.spinner.take() {
            join_bounded(h, std::time::Duration::from_secs(2));
        }
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

/// Join a thread if it ends within `limit`; otherwise leave it (it is stopping, and must not hold up shutdown).
fn join_bounded(h: JoinHandle<()>, limit: std::time::Duration) {
    let until = Instant::now() + limit;
    while !h.is_finished() && Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    if h.is_finished() {
        let _ = h.join();
    } else {
        tracing::warn!("ros2: spinner did not stop within {limit:?}; leaving it");
    }
}

impl Drop for Ros2PublishStage {
    fn drop(&mut self) {
        let _ = Stage::stop(self);
    }
}
