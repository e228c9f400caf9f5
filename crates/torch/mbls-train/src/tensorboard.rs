//! Writing and reading TensorBoard event files (scalars only), in plain Rust.
//!
//! An event file is a sequence of TFRecord-framed `tensorboard.Event` protocol buffers:
//!
//! ```text
//! u64 LE  length of the data
//! u32 LE  masked CRC-32C of the 8 length bytes
//! [u8]    data (one serialized Event)
//! u32 LE  masked CRC-32C of the data
//! ```
//!
//! The mask is `((crc >> 15) | (crc << 17)).wrapping_add(0xa282_ead8)`. The first record
//! of a file is an Event carrying only `wall_time` and `file_version = "brain.Event:2"`;
//! every later record written here is an Event with `wall_time`, `step` and a `summary`
//! whose values are `(tag, simple_value)` pairs. The encoding is the canonical proto3 one
//! (fields in number order, zero `step` left out), so the bytes are the same as those
//! TensorBoard's own Python writer produces for the same event.
//!
//! [`EventWriter`] writes one new file per run segment, named
//! `events.out.tfevents.<unix seconds>.<hostname>.<pid>.<counter>` like TensorBoard's own
//! files. Each record is built in memory and handed to the buffered file in one
//! `write_all`, so a killed process leaves at most one truncated record at the end of the
//! file; [`read_scalars`] skips such a record and reports it, while a checksum mismatch
//! anywhere else is an error. [`scalars_in_dir`] reads every event file of a run folder,
//! which lets a resumed trainer find the last step it logged for each tag.
//!
//! The reader also understands the scalars written by TensorFlow 2 / `tensorboard.summary`
//! (a one-element `float` or `double` tensor whose tag was declared with plugin name
//! `"scalars"` in the same file); every other kind of summary value is skipped.

use std::cmp::Ordering as CmpOrdering;
use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The `file_version` string of the first record of every event file.
const FILE_VERSION: &str = "brain.Event:2";

/// Event files are recognised by this substring of their name (as TensorBoard does).
const EVENT_FILE_MARKER: &str = "tfevents";

/// One scalar read back from an event file: `(tag, step, value)`.
pub type ScalarPoint = (String, i64, f32);

/// Distinguishes the event files created by one process within one second.
static FILE_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Length prefix plus its checksum.
const RECORD_HEADER_LEN: usize = 12;
/// Checksum after the data.
const RECORD_FOOTER_LEN: usize = 4;

// ---------------------------------------------------------------------------------------
// CRC-32C (Castagnoli), reflected, table driven.
// ---------------------------------------------------------------------------------------

/// The Castagnoli polynomial 0x1EDC6F41, bit-reversed.
const CRC32C_POLY_REFLECTED: u32 = 0x82F6_3B78;

/// `CRC32C_TABLE[b]` is the CRC register after shifting the byte `b` through it.
const CRC32C_TABLE: [u32; 256] = crc32c_table();

const fn crc32c_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ CRC32C_POLY_REFLECTED
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

/// CRC-32C of `data` (initial value and final xor `0xFFFF_FFFF`).
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc = CRC32C_TABLE[usize::from((crc as u8) ^ byte)] ^ (crc >> 8);
    }
    !crc
}

/// The TFRecord checksum mask: rotate right by 15 bits, then add a constant.
fn mask_crc(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Masked CRC-32C of `data`, as stored in TFRecord framing.
fn masked_crc32c(data: &[u8]) -> u32 {
    mask_crc(crc32c(data))
}

/// Frames one record: length, masked CRC of the length, data, masked CRC of the data.
fn frame_record(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut record = Vec::with_capacity(RECORD_HEADER_LEN + data.len() + RECORD_FOOTER_LEN);
    record.extend_from_slice(&len);
    record.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    record.extend_from_slice(data);
    record.extend_from_slice(&masked_crc32c(data).to_le_bytes());
    record
}

// ---------------------------------------------------------------------------------------
// Protocol buffer field numbers and wire types.
// ---------------------------------------------------------------------------------------

const WIRE_VARINT: u8 = 0;
const WIRE_FIXED64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_FIXED32: u8 = 5;

// tensorboard.Event
const EVENT_WALL_TIME: u64 = 1;
const EVENT_STEP: u64 = 2;
const EVENT_FILE_VERSION: u64 = 3;
const EVENT_GRAPH_DEF: u64 = 4;
const EVENT_SUMMARY: u64 = 5;
const EVENT_LOG_MESSAGE: u64 = 6;
const EVENT_SESSION_LOG: u64 = 7;
const EVENT_TAGGED_RUN_METADATA: u64 = 8;
const EVENT_META_GRAPH_DEF: u64 = 9;

// tensorboard.Summary
const SUMMARY_VALUE: u64 = 1;

// tensorboard.Summary.Value
const VALUE_TAG: u64 = 1;
const VALUE_SIMPLE_VALUE: u64 = 2;
const VALUE_OBSOLETE_HISTOGRAM: u64 = 3;
const VALUE_IMAGE: u64 = 4;
const VALUE_HISTO: u64 = 5;
const VALUE_AUDIO: u64 = 6;
const VALUE_TENSOR: u64 = 8;
const VALUE_METADATA: u64 = 9;

// tensorboard.SummaryMetadata and its PluginData
const METADATA_PLUGIN_DATA: u64 = 1;
const PLUGIN_DATA_PLUGIN_NAME: u64 = 1;
const SCALARS_PLUGIN_NAME: &[u8] = b"scalars";

// tensorboard.TensorProto, TensorShapeProto and TensorShapeProto.Dim
const TENSOR_DTYPE: u64 = 1;
const TENSOR_SHAPE: u64 = 2;
const TENSOR_CONTENT: u64 = 4;
const TENSOR_FLOAT_VAL: u64 = 5;
const TENSOR_DOUBLE_VAL: u64 = 6;
const SHAPE_DIM: u64 = 2;
const SHAPE_UNKNOWN_RANK: u64 = 3;
const DIM_SIZE: u64 = 1;
const DT_FLOAT: u64 = 1;
const DT_DOUBLE: u64 = 2;

// ---------------------------------------------------------------------------------------
// Encoding.
// ---------------------------------------------------------------------------------------

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_key(out: &mut Vec<u8>, field: u64, wire_type: u8) {
    put_varint(out, (field << 3) | u64::from(wire_type));
}

fn put_len_delimited(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_key(out, field, WIRE_LEN);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// `wall_time` (proto3: left out when zero).
fn put_wall_time(out: &mut Vec<u8>, wall_time: f64) {
    if wall_time.to_bits() != 0 {
        put_key(out, EVENT_WALL_TIME, WIRE_FIXED64);
        out.extend_from_slice(&wall_time.to_le_bytes());
    }
}

/// The serialized first Event of a file.
fn encode_file_version_event(wall_time: f64) -> Vec<u8> {
    let mut event = Vec::with_capacity(32);
    put_wall_time(&mut event, wall_time);
    put_len_delimited(&mut event, EVENT_FILE_VERSION, FILE_VERSION.as_bytes());
    event
}

/// The serialized Event holding `values` (converted to `f32`) at `step`.
fn encode_scalars_event(wall_time: f64, step: i64, values: &[(&str, f64)]) -> Vec<u8> {
    let mut summary = Vec::new();
    let mut value = Vec::new();
    for &(tag, number) in values {
        value.clear();
        if !tag.is_empty() {
            put_len_delimited(&mut value, VALUE_TAG, tag.as_bytes());
        }
        // `simple_value` is a oneof member, so it is written even when it is zero.
        put_key(&mut value, VALUE_SIMPLE_VALUE, WIRE_FIXED32);
        value.extend_from_slice(&(number as f32).to_le_bytes());
        put_len_delimited(&mut summary, SUMMARY_VALUE, &value);
    }
    let mut event = Vec::with_capacity(summary.len() + 24);
    put_wall_time(&mut event, wall_time);
    if step != 0 {
        put_key(&mut event, EVENT_STEP, WIRE_VARINT);
        // int64 is encoded as its two's complement bit pattern (10 bytes when negative).
        put_varint(&mut event, step as u64);
    }
    put_len_delimited(&mut event, EVENT_SUMMARY, &summary);
    event
}

/// Seconds since the Unix epoch, as TensorBoard stores them.
fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The host name for file names: `/etc/hostname`, else `$HOSTNAME`, else `localhost`;
/// characters other than ASCII letters, digits, `-`, `_` and `.` become `_`.
fn hostname() -> String {
    let non_empty = |s: String| {
        let s = s.trim().to_string();
        (!s.is_empty()).then_some(s)
    };
    let name = fs::read_to_string("/etc/hostname")
        .ok()
        .and_then(non_empty)
        .or_else(|| std::env::var("HOSTNAME").ok().and_then(non_empty))
        .unwrap_or_else(|| "localhost".to_string());
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn invalid_data(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

/// Prefixes an I/O error's message with the file it concerns.
fn with_path(error: io::Error, path: &Path) -> io::Error {
    io::Error::new(error.kind(), format!("{}: {error}", path.display()))
}

// ---------------------------------------------------------------------------------------
// Writer.
// ---------------------------------------------------------------------------------------

/// Appends scalar summaries to a new TensorBoard event file.
///
/// Records go through a [`BufWriter`]; call [`EventWriter::flush`] to push them to disk
/// (for instance once per epoch). Whatever is still buffered is written when the writer is
/// dropped, but without `fsync` and with errors ignored.
#[derive(Debug)]
pub struct EventWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl EventWriter {
    /// Creates a new event file in `dir` (creating the folder).
    ///
    /// The file is named `events.out.tfevents.<unix seconds>.<hostname>.<pid>.<counter>`,
    /// where the counter counts the files created by this process; an existing file is
    /// never overwritten. The `file_version` record is written and flushed at once, so the
    /// new file is already a valid (empty) event file.
    pub fn create(dir: &Path) -> io::Result<EventWriter> {
        fs::create_dir_all(dir).map_err(|e| with_path(e, dir))?;
        let seconds = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let host = hostname();
        let pid = std::process::id();
        loop {
            let counter = FILE_COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = dir.join(format!(
                "events.out.tfevents.{seconds}.{host}.{pid}.{counter}"
            ));
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => {
                    let mut writer = EventWriter {
                        path,
                        out: BufWriter::new(file),
                    };
                    writer.write_record(&encode_file_version_event(now_seconds()))?;
                    writer.out.flush().map_err(|e| with_path(e, &writer.path))?;
                    return Ok(writer);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(with_path(e, &path)),
            }
        }
    }

    /// Appends one scalar.
    ///
    /// The value is stored as `f32` (TensorBoard's `simple_value`).
    pub fn scalar(&mut self, tag: &str, value: f64, step: i64) -> io::Result<()> {
        self.scalars(&[(tag, value)], step)
    }

    /// Appends several scalars of one step in one Event.
    ///
    /// Values are stored as `f32`. An empty `values` writes nothing.
    pub fn scalars(&mut self, values: &[(&str, f64)], step: i64) -> io::Result<()> {
        if values.is_empty() {
            return Ok(());
        }
        self.write_record(&encode_scalars_event(now_seconds(), step, values))
    }

    /// Flushes to disk (and fsync).
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush().map_err(|e| with_path(e, &self.path))?;
        self.out
            .get_ref()
            .sync_data()
            .map_err(|e| with_path(e, &self.path))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one whole record with a single `write_all`, so the buffer only ever holds
    /// (and hands to the OS) complete records.
    fn write_record(&mut self, event: &[u8]) -> io::Result<()> {
        self.out
            .write_all(&frame_record(event))
            .map_err(|e| with_path(e, &self.path))
    }
}

// ---------------------------------------------------------------------------------------
// Reading.
// ---------------------------------------------------------------------------------------

/// One record's byte offset in its file and its data (a serialized Event).
type RawRecord<'a> = (usize, &'a [u8]);

/// Splits a file's bytes into record data slices (with their byte offsets).
///
/// A last record cut short (its header, data or footer incomplete), or a tail made only of
/// zero bytes (what a crash can leave on some file systems), counts as one truncated
/// record. A complete record whose length or data checksum is wrong is an error.
fn split_records(bytes: &[u8]) -> io::Result<(Vec<RawRecord<'_>>, usize)> {
    let mut records = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let rest = &bytes[pos..];
        if rest.len() < RECORD_HEADER_LEN {
            return Ok((records, 1));
        }
        let len_bytes = &rest[..8];
        if masked_crc32c(len_bytes) != le_u32(&rest[8..12]) {
            if rest.iter().all(|&b| b == 0) {
                return Ok((records, 1));
            }
            return Err(invalid_data(format!(
                "length checksum mismatch in the record at byte {pos}"
            )));
        }
        let len = le_u64(len_bytes);
        let body = &rest[RECORD_HEADER_LEN..];
        if (body.len() as u64) < len.saturating_add(RECORD_FOOTER_LEN as u64) {
            return Ok((records, 1));
        }
        // `len + 4 <= body.len()`, so it fits in usize.
        let len = len as usize;
        let data = &body[..len];
        if masked_crc32c(data) != le_u32(&body[len..len + RECORD_FOOTER_LEN]) {
            return Err(invalid_data(format!(
                "data checksum mismatch in the record at byte {pos}"
            )));
        }
        records.push((pos, data));
        pos += RECORD_HEADER_LEN + len + RECORD_FOOTER_LEN;
    }
    Ok((records, 0))
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn le_u64(b: &[u8]) -> u64 {
    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// One decoded protobuf field value.
#[derive(Clone, Copy, Debug)]
enum Field<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

/// Iterates over the fields of one serialized protobuf message.
struct ProtoReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> ProtoReader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        ProtoReader { buf, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or("truncated field")?;
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for i in 0..10 {
            let byte = *self.buf.get(self.pos).ok_or("truncated varint")?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint longer than 10 bytes".to_string())
    }

    /// The next `(field number, value)`, or `None` at the end of the message.
    fn next_field(&mut self) -> Result<Option<(u64, Field<'a>)>, String> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let number = key >> 3;
        if number == 0 {
            return Err("field number 0".to_string());
        }
        let value = match (key & 7) as u8 {
            WIRE_VARINT => Field::Varint(self.varint()?),
            WIRE_FIXED64 => Field::Fixed64(le_u64(self.take(8)?)),
            WIRE_LEN => {
                let len = usize::try_from(self.varint()?).map_err(|_| "field too long")?;
                Field::Bytes(self.take(len)?)
            }
            WIRE_FIXED32 => Field::Fixed32(le_u32(self.take(4)?)),
            wire => return Err(format!("unsupported wire type {wire} (field {number})")),
        };
        Ok(Some((number, value)))
    }
}

/// Appends the scalars of one serialized Event to `out`.
///
/// `scalar_tags` collects the tags declared (by summary metadata) as tensor scalars.
fn parse_event(
    data: &[u8],
    scalar_tags: &mut HashSet<String>,
    out: &mut Vec<ScalarPoint>,
) -> Result<(), String> {
    let mut step = 0i64;
    // Repeated occurrences of the `summary` field merge, i.e. their values concatenate.
    let mut summaries: Vec<&[u8]> = Vec::new();
    let mut reader = ProtoReader::new(data);
    while let Some((number, value)) = reader.next_field()? {
        match (number, value) {
            (EVENT_STEP, Field::Varint(v)) => step = v as i64,
            (EVENT_SUMMARY, Field::Bytes(b)) => summaries.push(b),
            // Another member of the `what` oneof replaces the summary.
            (
                EVENT_FILE_VERSION
                | EVENT_GRAPH_DEF
                | EVENT_LOG_MESSAGE
                | EVENT_SESSION_LOG
                | EVENT_TAGGED_RUN_METADATA
                | EVENT_META_GRAPH_DEF,
                _,
            ) => summaries.clear(),
            _ => {}
        }
    }
    for summary in summaries {
        let mut reader = ProtoReader::new(summary);
        while let Some((number, value)) = reader.next_field()? {
            if let (SUMMARY_VALUE, Field::Bytes(b)) = (number, value) {
                out.extend(parse_value(b, scalar_tags)?.map(|(tag, v)| (tag, step, v)));
            }
        }
    }
    Ok(())
}

/// The `(tag, value)` of one Summary.Value if it is a scalar.
fn parse_value(
    data: &[u8],
    scalar_tags: &mut HashSet<String>,
) -> Result<Option<(String, f32)>, String> {
    let mut tag: &[u8] = &[];
    let mut simple_value = None;
    let mut tensor = None;
    let mut metadata = None;
    let mut reader = ProtoReader::new(data);
    while let Some((number, value)) = reader.next_field()? {
        match (number, value) {
            (VALUE_TAG, Field::Bytes(b)) => tag = b,
            (VALUE_METADATA, Field::Bytes(b)) => metadata = Some(b),
            // Members of the `value` oneof: the last one present wins.
            (VALUE_SIMPLE_VALUE, Field::Fixed32(bits)) => {
                simple_value = Some(f32::from_bits(bits));
                tensor = None;
            }
            (VALUE_TENSOR, Field::Bytes(b)) => {
                tensor = Some(b);
                simple_value = None;
            }
            (VALUE_OBSOLETE_HISTOGRAM | VALUE_IMAGE | VALUE_HISTO | VALUE_AUDIO, _) => {
                simple_value = None;
                tensor = None;
            }
            _ => {}
        }
    }
    let tag = String::from_utf8_lossy(tag).into_owned();
    let declares_scalar = match metadata {
        Some(metadata) => metadata_names_scalars_plugin(metadata)?,
        None => false,
    };
    if declares_scalar {
        scalar_tags.insert(tag.clone());
    }
    if let Some(v) = simple_value {
        return Ok(Some((tag, v)));
    }
    match tensor {
        Some(t) if scalar_tags.contains(&tag) => Ok(scalar_from_tensor(t)?.map(|v| (tag, v))),
        _ => Ok(None),
    }
}

/// Whether a SummaryMetadata names the `scalars` plugin.
fn metadata_names_scalars_plugin(data: &[u8]) -> Result<bool, String> {
    let mut found = false;
    let mut reader = ProtoReader::new(data);
    while let Some((number, value)) = reader.next_field()? {
        if let (METADATA_PLUGIN_DATA, Field::Bytes(plugin_data)) = (number, value) {
            let mut inner = ProtoReader::new(plugin_data);
            while let Some((number, value)) = inner.next_field()? {
                if let (PLUGIN_DATA_PLUGIN_NAME, Field::Bytes(name)) = (number, value) {
                    found = name == SCALARS_PLUGIN_NAME;
                }
            }
        }
    }
    Ok(found)
}

/// The value of a one-element `float` or `double` TensorProto, else `None`.
fn scalar_from_tensor(data: &[u8]) -> Result<Option<f32>, String> {
    let mut dtype = 0u64;
    let mut elements = 1u64;
    let mut content: &[u8] = &[];
    let mut floats: Vec<f32> = Vec::new();
    let mut doubles: Vec<f64> = Vec::new();
    let mut reader = ProtoReader::new(data);
    while let Some((number, value)) = reader.next_field()? {
        match (number, value) {
            (TENSOR_DTYPE, Field::Varint(v)) => dtype = v,
            (TENSOR_SHAPE, Field::Bytes(b)) => elements = shape_elements(b)?,
            (TENSOR_CONTENT, Field::Bytes(b)) => content = b,
            (TENSOR_FLOAT_VAL, Field::Fixed32(bits)) => floats.push(f32::from_bits(bits)),
            (TENSOR_FLOAT_VAL, Field::Bytes(packed)) => {
                if packed.len() % 4 != 0 {
                    return Err("packed float_val length is not a multiple of 4".to_string());
                }
                floats.extend(packed.chunks_exact(4).map(|c| f32::from_bits(le_u32(c))));
            }
            (TENSOR_DOUBLE_VAL, Field::Fixed64(bits)) => doubles.push(f64::from_bits(bits)),
            (TENSOR_DOUBLE_VAL, Field::Bytes(packed)) => {
                if packed.len() % 8 != 0 {
                    return Err("packed double_val length is not a multiple of 8".to_string());
                }
                doubles.extend(packed.chunks_exact(8).map(|c| f64::from_bits(le_u64(c))));
            }
            _ => {}
        }
    }
    if elements != 1 {
        return Ok(None);
    }
    let value = match dtype {
        DT_FLOAT if content.len() == 4 => f32::from_bits(le_u32(content)),
        DT_FLOAT if content.is_empty() && floats.len() == 1 => floats[0],
        DT_DOUBLE if content.len() == 8 => f64::from_bits(le_u64(content)) as f32,
        DT_DOUBLE if content.is_empty() && doubles.len() == 1 => doubles[0] as f32,
        _ => return Ok(None),
    };
    Ok(Some(value))
}

/// The number of elements of a TensorShapeProto (0 for an unknown rank or size).
fn shape_elements(data: &[u8]) -> Result<u64, String> {
    let mut elements = 1u64;
    let mut reader = ProtoReader::new(data);
    while let Some((number, value)) = reader.next_field()? {
        match (number, value) {
            (SHAPE_DIM, Field::Bytes(dim)) => {
                let mut size = 0i64;
                let mut inner = ProtoReader::new(dim);
                while let Some((number, value)) = inner.next_field()? {
                    if let (DIM_SIZE, Field::Varint(v)) = (number, value) {
                        size = v as i64;
                    }
                }
                elements = elements.saturating_mul(u64::try_from(size).unwrap_or(0));
            }
            (SHAPE_UNKNOWN_RANK, Field::Varint(v)) if v != 0 => elements = 0,
            _ => {}
        }
    }
    Ok(elements)
}

/// Reads every scalar (tag, step, value) of an event file written by this writer or by
/// TensorBoard (checks both CRCs; a truncated last record — e.g. after a kill — is ignored
/// and reported by count; a CRC mismatch elsewhere is an error).
///
/// Returns the scalars in file order and the number of truncated records ignored (0 or 1).
/// Scalars are Summary values with a `simple_value`, or one-element `float`/`double`
/// tensors whose tag was declared with the `scalars` plugin earlier in the same file (the
/// TensorFlow 2 layout). Other events and values are skipped. A record that is not a valid
/// Event is an [`io::ErrorKind::InvalidData`] error, as is a checksum mismatch.
pub fn read_scalars(path: &Path) -> io::Result<(Vec<ScalarPoint>, usize)> {
    let bytes = fs::read(path).map_err(|e| with_path(e, path))?;
    let (records, truncated) = split_records(&bytes).map_err(|e| with_path(e, path))?;
    let mut scalars = Vec::new();
    let mut scalar_tags = HashSet::new();
    for (offset, data) in records {
        parse_event(data, &mut scalar_tags, &mut scalars).map_err(|message| {
            with_path(
                invalid_data(format!(
                    "bad Event in the record at byte {offset}: {message}"
                )),
                path,
            )
        })?;
    }
    Ok((scalars, truncated))
}

/// One part of a file name split at `.`: numbers compare by value, before text.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum NamePart {
    Number(u64),
    Text(String),
}

/// A sort key that orders `...tfevents.<seconds>.<host>.<pid>.<counter>` names by their
/// numbers' values, so `.9` comes before `.10`.
fn file_name_key(name: &str) -> Vec<NamePart> {
    name.split('.')
        .map(|part| match part.parse::<u64>() {
            Ok(n) if part.bytes().all(|b| b.is_ascii_digit()) => NamePart::Number(n),
            _ => NamePart::Text(part.to_string()),
        })
        .collect()
}

fn compare_file_names(a: &str, b: &str) -> CmpOrdering {
    file_name_key(a)
        .cmp(&file_name_key(b))
        .then_with(|| a.cmp(b))
}

/// All (tag, step, value) of all event files in a folder, sorted by file name then order.
///
/// Event files are the regular files whose name contains `tfevents` (subfolders are not
/// searched). File names are compared part by part between dots, numeric parts by value,
/// so the files of one run come in the order they were created. A missing folder gives an
/// empty list; a truncated last record in any file is ignored (see [`read_scalars`]).
/// A trainer resuming an interrupted run can take, per tag, the largest step found here.
pub fn scalars_in_dir(dir: &Path) -> io::Result<Vec<ScalarPoint>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(with_path(e, dir)),
    };
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| with_path(e, dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name.contains(EVENT_FILE_MARKER) && path.is_file() {
            files.push((name, path));
        }
    }
    files.sort_by(|(a, _), (b, _)| compare_file_names(a, b));
    let mut scalars = Vec::new();
    for (_, path) in files {
        let (mut found, _truncated) = read_scalars(&path)?;
        scalars.append(&mut found);
    }
    Ok(scalars)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_bytes(path: &Path) -> Vec<u8> {
        fs::read(path).unwrap()
    }

    /// Writes `bytes` as an event file in a new temp folder.
    fn temp_event_file(bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.out.tfevents.1.test.1.0");
        fs::write(&path, bytes).unwrap();
        (dir, path)
    }

    #[test]
    fn crc32c_known_vectors() {
        assert_eq!(crc32c(b""), 0);
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        // RFC 3720 (iSCSI) appendix B.4.
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xFFu8; 32]), 0x62A8_AB43);
        let ascending: Vec<u8> = (0..32).collect();
        assert_eq!(crc32c(&ascending), 0x46DD_794E);
        let descending: Vec<u8> = (0..32).rev().collect();
        assert_eq!(crc32c(&descending), 0x113F_DB5C);
    }

    #[test]
    #[allow(clippy::manual_rotate)] // The test spells out the format's definition.
    fn masked_crc_matches_definition_and_tensorboard() {
        let crc = crc32c(b"123456789");
        let by_definition = ((crc >> 15) | (crc << 17)).wrapping_add(0xa282_ead8);
        assert_eq!(mask_crc(crc), by_definition);
        // Values from TensorBoard's Python `masked_crc32c`.
        assert_eq!(masked_crc32c(b"123456789"), 0xC78A_B0E5);
        assert_eq!(masked_crc32c(&0u64.to_le_bytes()), 0x0798_0329);
        assert_eq!(masked_crc32c(b""), 0xA282_EAD8);
    }

    #[test]
    fn varint_encoding() {
        let encode = |v: u64| {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            out
        };
        assert_eq!(encode(0), [0x00]);
        assert_eq!(encode(1), [0x01]);
        assert_eq!(encode(127), [0x7f]);
        assert_eq!(encode(128), [0x80, 0x01]);
        assert_eq!(encode(300), [0xac, 0x02]);
        let minus_one = encode(-1i64 as u64);
        assert_eq!(minus_one.len(), 10);
        let mut reader = ProtoReader::new(&minus_one);
        assert_eq!(reader.varint().unwrap() as i64, -1);
    }

    /// A file version record and a scalars record written by TensorBoard's Python
    /// `EventFileWriter`/`RecordWriter` (protobuf `SerializeToString`), byte for byte.
    const TB_FILE_VERSION_RECORD: &[u8] = &[
        0x18, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xa3, 0x7f, 0x4b, 0x22, 0x09, 0x00, 0x00,
        0x20, 0x40, 0xfc, 0x54, 0xd9, 0x41, 0x1a, 0x0d, 0x62, 0x72, 0x61, 0x69, 0x6e, 0x2e, 0x45,
        0x76, 0x65, 0x6e, 0x74, 0x3a, 0x32, 0x2b, 0x35, 0x31, 0x10,
    ];
    const TB_SCALARS_RECORD: &[u8] = &[
        0x26, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x73, 0x4f, 0xe3, 0x00, 0x09, 0x00, 0x00,
        0x20, 0x40, 0xfc, 0x54, 0xd9, 0x41, 0x10, 0x2a, 0x2a, 0x19, 0x0a, 0x0b, 0x0a, 0x04, 0x6c,
        0x6f, 0x73, 0x73, 0x15, 0x00, 0x00, 0x80, 0x3e, 0x0a, 0x0a, 0x0a, 0x03, 0x61, 0x63, 0x63,
        0x15, 0xcd, 0xcc, 0x4c, 0x3f, 0x5e, 0x47, 0x9a, 0x11,
    ];
    const TB_WALL_TIME: f64 = 1_700_000_000.5;

    #[test]
    fn encoding_matches_tensorboard_bytes() {
        assert_eq!(
            frame_record(&encode_file_version_event(TB_WALL_TIME)),
            TB_FILE_VERSION_RECORD
        );
        assert_eq!(
            frame_record(&encode_scalars_event(
                TB_WALL_TIME,
                42,
                &[("loss", 0.25), ("acc", 0.8)]
            )),
            TB_SCALARS_RECORD
        );
    }

    #[test]
    fn reads_tensorboard_written_bytes() {
        let mut bytes = TB_FILE_VERSION_RECORD.to_vec();
        bytes.extend_from_slice(TB_SCALARS_RECORD);
        let (_dir, path) = temp_event_file(&bytes);
        let (scalars, truncated) = read_scalars(&path).unwrap();
        assert_eq!(truncated, 0);
        assert_eq!(
            scalars,
            vec![
                ("loss".to_string(), 42, 0.25f32),
                ("acc".to_string(), 42, 0.8f32),
            ]
        );
    }

    /// Two records written by TensorBoard's `tensorboard.plugins.scalar.summary.scalar_pb`
    /// (TensorFlow 2 layout): tag `lr` at steps 1 and 2 with values 0.5 and 0.25, the
    /// `scalars` plugin metadata only in the first, then a `text` plugin tensor (`note`)
    /// that must be skipped.
    const TB_TENSOR_SCALAR_RECORDS: &[u8] = &[
        0x35, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xd6, 0xc5, 0x5d, 0xe6, 0x09, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0xf0, 0x3f, 0x10, 0x01, 0x2a, 0x28, 0x0a, 0x26, 0x0a, 0x02, 0x6c,
        0x72, 0x42, 0x0a, 0x08, 0x01, 0x12, 0x00, 0x2a, 0x04, 0x00, 0x00, 0x00, 0x3f, 0x4a, 0x14,
        0x0a, 0x09, 0x0a, 0x07, 0x73, 0x63, 0x61, 0x6c, 0x61, 0x72, 0x73, 0x1a, 0x07, 0x6c, 0x72,
        0x20, 0x64, 0x6f, 0x63, 0x73, 0x68, 0x34, 0xca, 0x2e, 0x1f, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x51, 0x4b, 0x44, 0x18, 0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x40,
        0x10, 0x02, 0x2a, 0x12, 0x0a, 0x10, 0x0a, 0x02, 0x6c, 0x72, 0x42, 0x0a, 0x08, 0x01, 0x12,
        0x00, 0x2a, 0x04, 0x00, 0x00, 0x80, 0x3e, 0x63, 0xa8, 0x79, 0xf6, 0x2a, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0xae, 0x8d, 0x91, 0xf5, 0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x08, 0x40, 0x10, 0x03, 0x2a, 0x1d, 0x0a, 0x1b, 0x0a, 0x04, 0x6e, 0x6f, 0x74, 0x65, 0x42,
        0x09, 0x08, 0x07, 0x12, 0x00, 0x42, 0x03, 0x68, 0x69, 0x21, 0x4a, 0x08, 0x0a, 0x06, 0x0a,
        0x04, 0x74, 0x65, 0x78, 0x74, 0xaa, 0x7e, 0x4b, 0x92,
    ];

    #[test]
    fn reads_tensorflow2_tensor_scalars() {
        let mut bytes = TB_FILE_VERSION_RECORD.to_vec();
        bytes.extend_from_slice(TB_TENSOR_SCALAR_RECORDS);
        let (_dir, path) = temp_event_file(&bytes);
        let (scalars, truncated) = read_scalars(&path).unwrap();
        assert_eq!(truncated, 0);
        assert_eq!(
            scalars,
            vec![
                ("lr".to_string(), 1, 0.5f32),
                ("lr".to_string(), 2, 0.25f32)
            ]
        );
    }

    /// What the writer stores for `value`: the nearest `f32`.
    fn stored(value: f64) -> f32 {
        value as f32
    }

    /// Scalars written by [`EventWriter`] in a fresh folder, with their expected read-back.
    fn write_sample(dir: &Path) -> (PathBuf, Vec<ScalarPoint>) {
        let ln2 = std::f64::consts::LN_2;
        let mut writer = EventWriter::create(dir).unwrap();
        writer.scalar("train/loss", ln2, 0).unwrap();
        writer.scalar("train/loss", 0.5, 1).unwrap();
        writer
            .scalars(&[("val/ece", 0.031_25), ("val/acc", 0.1), ("zero", 0.0)], 2)
            .unwrap();
        writer.scalars(&[], 3).unwrap();
        writer.scalar("neg", -1.5e-8, -7).unwrap();
        writer.scalar("big", f64::INFINITY, i64::MAX).unwrap();
        writer.flush().unwrap();
        let expected = vec![
            ("train/loss".to_string(), 0, stored(ln2)),
            ("train/loss".to_string(), 1, 0.5),
            ("val/ece".to_string(), 2, 0.031_25),
            ("val/acc".to_string(), 2, stored(0.1)),
            ("zero".to_string(), 2, 0.0),
            ("neg".to_string(), -7, stored(-1.5e-8)),
            ("big".to_string(), i64::MAX, f32::INFINITY),
        ];
        (writer.path().to_path_buf(), expected)
    }

    #[test]
    fn write_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("nested").join("run");
        let (path, expected) = write_sample(&run);
        assert_eq!(path.parent().unwrap(), run);
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with("events.out.tfevents."), "{name}");
        let parts: Vec<&str> = name.split('.').collect();
        assert!(parts.len() >= 7, "{name}");
        assert!(parts[3].parse::<u64>().unwrap() > 1_600_000_000, "{name}");
        assert_eq!(
            parts[parts.len() - 2],
            std::process::id().to_string(),
            "{name}"
        );
        assert!(parts[parts.len() - 1].parse::<u64>().is_ok(), "{name}");

        let (scalars, truncated) = read_scalars(&path).unwrap();
        assert_eq!(truncated, 0);
        assert_eq!(scalars, expected);

        // The first record is the file version event.
        let bytes = read_bytes(&path);
        let (records, _) = split_records(&bytes).unwrap();
        assert_eq!(records.len(), 6);
        let first = records[0].1;
        assert_eq!(first[0], 0x09); // wall_time, fixed64
        assert_eq!(&first[9..11], &[0x1a, 13]);
        assert_eq!(&first[11..], FILE_VERSION.as_bytes());
    }

    #[test]
    fn new_file_is_valid_before_any_scalar() {
        let dir = tempfile::tempdir().unwrap();
        let writer = EventWriter::create(dir.path()).unwrap();
        let (scalars, truncated) = read_scalars(writer.path()).unwrap();
        assert!(scalars.is_empty());
        assert_eq!(truncated, 0);
    }

    #[test]
    fn truncated_last_record_is_ignored_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let (path, expected) = write_sample(dir.path());
        let bytes = read_bytes(&path);
        let (records, _) = split_records(&bytes).unwrap();
        let last_start = records.last().unwrap().0;
        // Every cut inside the last record: in its header, data or footer.
        for cut in last_start + 1..bytes.len() {
            fs::write(&path, &bytes[..cut]).unwrap();
            let (scalars, truncated) = read_scalars(&path).unwrap();
            assert_eq!(truncated, 1, "cut at {cut}");
            assert_eq!(scalars, expected[..expected.len() - 1], "cut at {cut}");
        }
        // A cut between records loses nothing else and is not a truncation.
        fs::write(&path, &bytes[..last_start]).unwrap();
        let (scalars, truncated) = read_scalars(&path).unwrap();
        assert_eq!(truncated, 0);
        assert_eq!(scalars, expected[..expected.len() - 1]);
        // Zeros after the last complete record (a crash on some file systems).
        let mut zero_tail = bytes[..last_start].to_vec();
        zero_tail.extend_from_slice(&[0u8; 40]);
        fs::write(&path, &zero_tail).unwrap();
        let (scalars, truncated) = read_scalars(&path).unwrap();
        assert_eq!(truncated, 1);
        assert_eq!(scalars, expected[..expected.len() - 1]);
    }

    #[test]
    fn flipped_byte_is_a_crc_error() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = write_sample(dir.path());
        let bytes = read_bytes(&path);
        let (records, _) = split_records(&bytes).unwrap();
        let (second_start, second_data) = records[1];
        let (last_start, _) = *records.last().unwrap();
        // A data byte of a middle record, a data byte of the last record, a length byte,
        // and a byte of a data checksum.
        let positions = [
            second_start + RECORD_HEADER_LEN + 3,
            last_start + RECORD_HEADER_LEN + 1,
            second_start,
            second_start + RECORD_HEADER_LEN + second_data.len(),
        ];
        for pos in positions {
            let mut corrupt = bytes.clone();
            corrupt[pos] ^= 0x01;
            fs::write(&path, &corrupt).unwrap();
            let error = read_scalars(&path).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidData, "byte {pos}");
            assert!(error.to_string().contains("checksum"), "{error}");
        }
    }

    #[test]
    fn scalars_in_dir_reads_all_files_in_order() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            scalars_in_dir(&dir.path().join("missing"))
                .unwrap()
                .is_empty()
        );

        let mut first = EventWriter::create(dir.path()).unwrap();
        first.scalar("loss", 1.0, 1).unwrap();
        first.scalar("loss", 0.5, 2).unwrap();
        first.flush().unwrap();
        let mut second = EventWriter::create(dir.path()).unwrap();
        second.scalars(&[("loss", 0.25), ("acc", 0.75)], 3).unwrap();
        second.flush().unwrap();
        assert_ne!(first.path(), second.path());
        // Not event files: ignored.
        fs::write(dir.path().join("notes.txt"), b"hello").unwrap();
        fs::create_dir(dir.path().join("sub.tfevents.dir")).unwrap();

        let all = scalars_in_dir(dir.path()).unwrap();
        assert_eq!(
            all,
            vec![
                ("loss".to_string(), 1, 1.0f32),
                ("loss".to_string(), 2, 0.5f32),
                ("loss".to_string(), 3, 0.25f32),
                ("acc".to_string(), 3, 0.75f32),
            ]
        );
    }

    #[test]
    fn file_names_sort_numerically() {
        let mut names = vec![
            "events.out.tfevents.1700000001.host.7.0",
            "events.out.tfevents.1700000000.host.7.10",
            "events.out.tfevents.1700000000.host.7.9",
            "events.out.tfevents.1700000000.host.12.0",
        ];
        names.sort_by(|a, b| compare_file_names(a, b));
        assert_eq!(
            names,
            vec![
                "events.out.tfevents.1700000000.host.7.9",
                "events.out.tfevents.1700000000.host.7.10",
                "events.out.tfevents.1700000000.host.12.0",
                "events.out.tfevents.1700000001.host.7.0",
            ]
        );
    }

    #[test]
    fn hostname_is_safe_for_file_names() {
        let host = hostname();
        assert!(!host.is_empty());
        assert!(
            host.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        );
    }
}
