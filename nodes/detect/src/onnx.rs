//! The few ONNX protobuf messages the importer reads (a subset of `onnx.proto`, field numbers as
//! upstream), decoded with `prost` so no `protoc` is needed, plus a wire-level pre-check that
//! turns a cut-off file into "truncated protobuf at byte N" instead of a generic decode error.

use prost::Message;

#[derive(Clone, PartialEq, Message)]
pub struct ModelProto {
    #[prost(int64, tag = "1")]
    pub ir_version: i64,
    #[prost(string, tag = "2")]
    pub producer_name: String,
    #[prost(string, tag = "3")]
    pub producer_version: String,
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
    #[prost(message, repeated, tag = "8")]
    pub opset_import: Vec<OperatorSetIdProto>,
    #[prost(message, repeated, tag = "14")]
    pub metadata_props: Vec<StringStringEntryProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct OperatorSetIdProto {
    #[prost(string, tag = "1")]
    pub domain: String,
    #[prost(int64, tag = "2")]
    pub version: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct StringStringEntryProto {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct GraphProto {
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorProto>,
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<ValueInfoProto>,
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfoProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ValueInfoProto {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub r#type: Option<TypeProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TypeProto {
    #[prost(message, optional, tag = "1")]
    pub tensor_type: Option<TypeProtoTensor>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TypeProtoTensor {
    #[prost(int32, tag = "1")]
    pub elem_type: i32,
    #[prost(message, optional, tag = "2")]
    pub shape: Option<TensorShapeProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TensorShapeProto {
    #[prost(message, repeated, tag = "1")]
    pub dim: Vec<Dimension>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Dimension {
    #[prost(int64, optional, tag = "1")]
    pub dim_value: Option<i64>,
    #[prost(string, optional, tag = "2")]
    pub dim_param: Option<String>,
}

impl Dimension {
    /// "640" or the symbolic name ("height").
    pub fn describe(&self) -> String {
        match (&self.dim_value, &self.dim_param) {
            (Some(v), _) => v.to_string(),
            (None, Some(p)) => p.clone(),
            (None, None) => "?".into(),
        }
    }
}

#[derive(Clone, PartialEq, Message)]
pub struct TensorProto {
    #[prost(int64, repeated, tag = "1")]
    pub dims: Vec<i64>,
    #[prost(int32, tag = "2")]
    pub data_type: i32,
    #[prost(float, repeated, tag = "4")]
    pub float_data: Vec<f32>,
    #[prost(int32, repeated, tag = "5")]
    pub int32_data: Vec<i32>,
    #[prost(int64, repeated, tag = "7")]
    pub int64_data: Vec<i64>,
    #[prost(string, tag = "8")]
    pub name: String,
    #[prost(bytes = "vec", tag = "9")]
    pub raw_data: Vec<u8>,
    #[prost(double, repeated, tag = "10")]
    pub double_data: Vec<f64>,
    #[prost(message, repeated, tag = "13")]
    pub external_data: Vec<StringStringEntryProto>,
    #[prost(int32, tag = "14")]
    pub data_location: i32,
}

/// `TensorProto.DataType` values the importer understands.
pub mod data_type {
    pub const FLOAT: i32 = 1;
    pub const INT32: i32 = 6;
    pub const INT64: i32 = 7;
    pub const FLOAT16: i32 = 10;
    pub const DOUBLE: i32 = 11;
    pub const BFLOAT16: i32 = 16;

    pub fn name(t: i32) -> &'static str {
        match t {
            1 => "float32",
            2 => "uint8",
            3 => "int8",
            4 => "uint16",
            5 => "int16",
            6 => "int32",
            7 => "int64",
            8 => "string",
            9 => "bool",
            10 => "float16",
            11 => "float64",
            12 => "uint32",
            13 => "uint64",
            16 => "bfloat16",
            _ => "unknown",
        }
    }
}

/// Why a buffer is not a readable ONNX model.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum WireError {
    #[error("truncated protobuf at byte {offset}: {what}")]
    Truncated { offset: usize, what: String },
    #[error("not a protobuf message: {what} at byte {offset}")]
    Invalid { offset: usize, what: String },
}

fn read_varint(buf: &[u8], pos: &mut usize) -> Result<u64, WireError> {
    let start = *pos;
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let Some(&b) = buf.get(*pos) else {
            return Err(WireError::Truncated { offset: start, what: "varint runs past the end of the file".into() });
        };
        *pos += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(WireError::Invalid { offset: start, what: "varint longer than 10 bytes".into() })
}

/// Walk the fields of one message (not recursing), checking that every field fits in `buf`.
/// `base` is the offset of `buf` in the file (for messages), `recurse` names the length-delimited
/// fields to walk into.
fn check_message(buf: &[u8], base: usize, recurse: &dyn Fn(u64) -> Option<&'static [u64]>) -> Result<(), WireError> {
    let mut pos = 0usize;
    while pos < buf.len() {
        let field_at = pos;
        let key = read_varint(buf, &mut pos).map_err(|e| shift(e, base))?;
        let (field, wire) = (key >> 3, key & 7);
        if field == 0 {
            return Err(WireError::Invalid { offset: base + field_at, what: "field number 0".into() });
        }
        match wire {
            0 => {
                read_varint(buf, &mut pos).map_err(|e| shift(e, base))?;
            }
            1 | 5 => {
                let n = if wire == 1 { 8 } else { 4 };
                if buf.len() - pos < n {
                    return Err(WireError::Truncated {
                        offset: base + field_at,
                        what: format!("field {field} needs {n} bytes, {} remain", buf.len() - pos),
                    });
                }
                pos += n;
            }
            2 => {
                let len = read_varint(buf, &mut pos).map_err(|e| shift(e, base))? as usize;
                let remain = buf.len() - pos;
                if len > remain {
                    return Err(WireError::Truncated {
                        offset: base + field_at,
                        what: format!("field {field} declares {len} bytes, {remain} remain"),
                    });
                }
                if let Some(inner) = recurse(field) {
                    let inner_fields = inner;
                    check_message(&buf[pos..pos + len], base + pos, &|f| {
                        if inner_fields.contains(&f) {
                            Some(&[])
                        } else {
                            None
                        }
                    })?;
                }
                pos += len;
            }
            _ => {
                return Err(WireError::Invalid {
                    offset: base + field_at,
                    what: format!("wire type {wire} (field {field})"),
                })
            }
        }
    }
    Ok(())
}

fn shift(e: WireError, base: usize) -> WireError {
    match e {
        WireError::Truncated { offset, what } => WireError::Truncated { offset: offset + base, what },
        WireError::Invalid { offset, what } => WireError::Invalid { offset: offset + base, what },
    }
}

/// Decode an ONNX model, first checking the wire structure of the model and of its graph so that
/// a cut-off or non-protobuf file is reported with the byte offset where it breaks.
pub fn decode_model(bytes: &[u8]) -> Result<ModelProto, String> {
    if bytes.is_empty() {
        return Err("empty file".into());
    }
    // Model level, and one level into the graph (field 7): its initializers, inputs, outputs, nodes.
    check_message(bytes, 0, &|f| if f == 7 { Some(&[1, 5, 11, 12]) } else { None }).map_err(|e| e.to_string())?;
    ModelProto::decode(bytes).map_err(|e| format!("invalid ONNX protobuf: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_model() -> Vec<u8> {
        let model = ModelProto {
            ir_version: 9,
            producer_name: "pytorch".into(),
            producer_version: "2.5.1".into(),
            graph: Some(GraphProto {
                name: "g".into(),
                initializer: vec![TensorProto {
                    dims: vec![2, 2],
                    data_type: data_type::FLOAT,
                    name: "model.0.conv.weight".into(),
                    raw_data: [1.0f32, 2.0, 3.0, 4.0].iter().flat_map(|v| v.to_le_bytes()).collect(),
                    ..Default::default()
                }],
                input: vec![],
                output: vec![],
            }),
            opset_import: vec![OperatorSetIdProto { domain: String::new(), version: 19 }],
            metadata_props: vec![StringStringEntryProto { key: "task".into(), value: "detect".into() }],
        };
        model.encode_to_vec()
    }

    #[test]
    fn round_trips_a_model() {
        let m = decode_model(&tiny_model()).unwrap();
        let g = m.graph.unwrap();
        assert_eq!(g.initializer[0].name, "model.0.conv.weight");
        assert_eq!(g.initializer[0].dims, vec![2, 2]);
        assert_eq!(m.metadata_props[0].value, "detect");
        assert_eq!(m.opset_import[0].version, 19);
    }

    #[test]
    fn every_cut_is_reported_or_loses_whole_fields() {
        let full = tiny_model();
        let whole = decode_model(&full).unwrap();
        for cut in 1..full.len() {
            match decode_model(&full[..cut]) {
                Err(e) => assert!(e.contains("truncated") || e.contains("invalid"), "cut {cut}: {e}"),
                // A cut exactly between two fields is a valid, shorter message: the importer then
                // misses the graph or the metadata and says so.
                Ok(m) => assert!(
                    m.graph.is_none() || m.metadata_props.len() < whole.metadata_props.len() || m.opset_import.is_empty(),
                    "cut {cut} decoded as the whole model"
                ),
            }
        }
    }

    #[test]
    fn a_cut_inside_the_graph_names_the_graph_field_offset() {
        let full = tiny_model();
        // Cut in the middle of the initializer's raw data (the bytes of 2.0f32).
        let at = full.windows(4).position(|w| w == 2.0f32.to_le_bytes()).unwrap();
        let err = decode_model(&full[..at]).unwrap_err();
        let graph_at = full.iter().position(|&b| b == (7 << 3 | 2)).unwrap();
        assert_eq!(err.split(':').next().unwrap(), format!("truncated protobuf at byte {graph_at}"), "{err}");
    }

    #[test]
    fn a_jpeg_is_not_a_protobuf() {
        let jpeg = [0xffu8, 0xd8, 0xff, 0xe0, 0x00, 0x10, b'J', b'F', b'I', b'F'];
        let err = decode_model(&jpeg).unwrap_err();
        assert!(err.contains("not a protobuf") || err.contains("truncated"), "{err}");
    }
}
