//! Evaluation of detectors: COCO-style mAP ([`map`]) and `perch eval quant`, the accuracy–latency
//! trade-off table of a model's precision variants ([`quant`], [`table`], [`plot`]), with ONNX
//! Runtime's f32 and static INT8 as a peer process ([`peer`]).

pub mod frames;
pub mod map;
pub mod peer;
pub mod plot;
pub mod quant;
pub mod settle;
pub mod table;
pub mod variant;

pub use map::{coco_map, DtBox, GtBox, ImageBoxes, MapParams, MapReport};
pub use quant::{eval_quant, EvalQuantOptions};
pub use table::QuantTable;
pub use variant::VariantSpec;
