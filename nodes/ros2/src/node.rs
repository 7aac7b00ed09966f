//! perch's one ROS 2 node, shared by the publish stage and the image source.
//!
//! A process that both subscribes to a camera and publishes detections shows up as **one** node in
//! `ros2 node list` (`/perch/perch`), with one DDS participant, one spinner and one set of parameter
//! services, whichever part of perch opened it first. [`Ros2Node`] is a cheap clonable handle; the
//! node, its spinner thread and its DDS context end when the last handle is dropped (the image
//! source ends before the stages stop, so in practice the publish stage's `stop` ends it).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ros2_client::{Context, ContextOptions, Node, NodeName, NodeOptions, ParameterValue};

use crate::config::{self, Ros2Config};
use crate::params::{check_unit, LiveParams};

/// A handle on the process's ROS 2 node. Clone it to share the node.
#[derive(Clone)]
pub struct Ros2Node(Arc<Inner>);

struct Inner {
    /// `None` once dropped: dropping the node is what tells its spinner to stop (see `Drop`).
    node: Mutex<Option<Node>>,
    spinner: Mutex<Option<JoinHandle<()>>>,
    // Dropped after the node (field order); ros2-client's entities keep their own context handles.
    _context: Context,
    /// `[ros2]` with the `PERCH_ROS2_*` environment overrides applied and validated.
    cfg: Ros2Config,
    domain_id: u16,
    name: String,
    params: Arc<LiveParams>,
}

impl std::fmt::Debug for Ros2Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ros2Node").field("name", &self.0.name).field("domain_id", &self.0.domain_id).finish()
    }
}

impl Ros2Node {
    /// The node of `[ros2]` (`namespace`/`node_name`) on the domain of `ROS_DOMAIN_ID`, with
    /// `PERCH_ROS2_NAMESPACE`, `PERCH_ROS2_NODE_NAME` and `PERCH_ROS2_REMAP` applied. Its `conf` and
    /// `iou` parameters read and write `params`.
    pub fn open(cfg: &Ros2Config, params: Arc<LiveParams>) -> anyhow::Result<Self> {
        let mut cfg = cfg.clone();
        cfg.apply_env(|k| std::env::var(k).ok())?;
        cfg.validate()?;
        let domain_id = config::domain_id_from_env()?;
        Self::create(cfg, domain_id, params)
    }

    /// Like [`Self::open`] with an explicit domain and no environment overrides (tests).
    pub fn with_domain(cfg: &Ros2Config, domain_id: u16, params: Arc<LiveParams>) -> anyhow::Result<Self> {
        cfg.validate()?;
        anyhow::ensure!(domain_id <= 232, "ROS 2 domain id {domain_id} is out of range 0..=232");
        Self::create(cfg.clone(), domain_id, params)
    }

    fn create(cfg: Ros2Config, domain_id: u16, params: Arc<LiveParams>) -> anyhow::Result<Self> {
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
        // Graph discovery, parameter services and /rosout need the spinner running. Publishers and
        // subscriptions created later are announced by the node itself (ros_discovery_info).
        let spinner = node.spinner().map_err(|e| anyhow::anyhow!("cannot start the ROS 2 spinner: {e:?}"))?;
        let spinner = std::thread::Builder::new().name("ros2-spinner".into()).spawn(move || {
            if let Err(e) = smol::block_on(spinner.spin()) {
                tracing::warn!("ros2: spinner ended with an error: {e:?}");
            }
        })?;
        let name = node.fully_qualified_name();
        tracing::info!(node = %name, domain_id, "ros2: node up");
        Ok(Self(Arc::new(Inner {
            node: Mutex::new(Some(node)),
            spinner: Mutex::new(Some(spinner)),
            _context: context,
            cfg,
            domain_id,
            name,
            params,
        })))
    }

    /// Run `f` on the node (creating topics, publishers, subscriptions; graph queries). `None` once
    /// the node has been shut down.
    pub fn with<R>(&self, f: impl FnOnce(&mut Node) -> R) -> Option<R> {
        lock(&self.0.node).as_mut().map(f)
    }

    /// `[ros2]` as this node applies it (environment overrides included).
    pub fn config(&self) -> &Ros2Config {
        &self.0.cfg
    }

    pub fn domain_id(&self) -> u16 {
        self.0.domain_id
    }

    /// `/namespace/name`.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The parameters the node's `conf`/`iou` services write.
    pub fn params(&self) -> Arc<LiveParams> {
        self.0.params.clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Drop for Inner {
    fn drop(&mut self) {
        // ros2-client signals the spinner once from `stop_spinner` and again from `Node::drop`;
        // the second finds the spinner gone and logs "ERROR Cannot notify spin task to stop" on
        // every clean shutdown. Dropping the node is the one signal (the spinner is still there).
        drop(lock(&self.node).take());
        if let Some(h) = lock(&self.spinner).take() {
            join_bounded(h, Duration::from_secs(2));
        }
    }
}

/// Join a thread if it ends within `limit`; otherwise leave it (it is stopping, and must not hold up shutdown).
fn join_bounded(h: JoinHandle<()>, limit: Duration) {
    let until = Instant::now() + limit;
    while !h.is_finished() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    if h.is_finished() {
        let _ = h.join();
    } else {
        tracing::warn!("ros2: spinner did not stop within {limit:?}; leaving it");
    }
}
