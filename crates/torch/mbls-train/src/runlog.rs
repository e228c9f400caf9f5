//! The run folder and everything written into it: the resolved config and command line, the
//! log file (everything printed), per-iteration and per-epoch metrics as JSONL and CSV, and
//! TensorBoard event files. One [`RunFolder`] writes them all (in data-parallel runs, rank 0).
//!
//! Metrics are records `{"phase", "epoch", "iter"?, "wall_time", <name>: value, ...}`; the
//! JSONL files are the source of truth: on resume they are cut back to the records before
//! the resumed point, and the CSV and TensorBoard files are rewritten from what is kept, so
//! that no step is duplicated or missing.

use crate::tensorboard::EventWriter;
use crate::{TrainError, io_err};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};

/// One metric record.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// `Train`, `Val`, `Test`, `TestPT`.
    pub phase: String,
    /// Epoch index (0-based); for Test phases the number of epochs trained.
    pub epoch: u64,
    /// Global iteration (`epoch * iterations_per_epoch + i`) for iteration records.
    pub iter: Option<u64>,
    /// Seconds since the Unix epoch.
    pub wall_time: f64,
    /// The values, in order.
    pub values: Vec<(String, f64)>,
}

impl Record {
    /// One JSON object, keys in the record's order (phase, epoch, iter, wall_time, values).
    fn to_json_line(&self) -> String {
        let mut parts: Vec<(String, Value)> = vec![
            ("phase".into(), Value::from(self.phase.clone())),
            ("epoch".into(), Value::from(self.epoch)),
        ];
        if let Some(i) = self.iter {
            parts.push(("iter".into(), Value::from(i)));
        }
        parts.push(("wall_time".into(), Value::from(self.wall_time)));
        for (k, v) in &self.values {
            parts.push((k.clone(), json_number(*v)));
        }
        let fields: Vec<String> = parts
            .iter()
            .map(|(k, v)| format!("{}:{v}", Value::from(k.as_str())))
            .collect();
        format!("{{{}}}", fields.join(","))
    }

    /// The record of a line written by [`Record::to_json_line`] (values in the line's order).
    fn from_json_line(line: &str) -> Option<Record> {
        let Ordered(m) = serde_json::from_str(line).ok()?;
        let get = |key: &str| m.iter().find(|(k, _)| k == key).map(|(_, v)| v);
        let mut values = Vec::new();
        for (k, v) in &m {
            if ["phase", "epoch", "iter", "wall_time"].contains(&k.as_str()) {
                continue;
            }
            values.push((k.clone(), v.as_f64().unwrap_or(f64::NAN)));
        }
        Some(Record {
            phase: get("phase")?.as_str()?.to_string(),
            epoch: get("epoch")?.as_u64()?,
            iter: get("iter").and_then(Value::as_u64),
            wall_time: get("wall_time").and_then(Value::as_f64).unwrap_or(0.0),
            values,
        })
    }

    /// TensorBoard tag of a value: `Train/Iter/<key>` for iteration records, else
    /// `<Phase>/<key>`.
    fn tag(&self, key: &str) -> String {
        match self.iter {
            Some(_) => format!("{}/Iter/{key}", self.phase),
            None => format!("{}/{key}", self.phase),
        }
    }

    fn step(&self) -> i64 {
        self.iter.unwrap_or(self.epoch) as i64
    }
}

/// A JSON object's entries in the order of the text.
struct Ordered(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for Ordered {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Ordered, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = a.next_entry::<String, Value>()? {
                    out.push((k, v));
                }
                Ok(Ordered(out))
            }
        }
        d.deserialize_map(V)
    }
}

fn json_number(v: f64) -> Value {
    serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
}

/// A JSONL stream with its CSV twin (one CSV per phase, columns from the first record).
struct Stream {
    jsonl: PathBuf,
    records: Vec<Record>,
    out: BufWriter<File>,
}

/// Seconds since the Unix epoch, now.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The run folder: logs, metrics, checkpoints, reports.
pub struct RunFolder {
    dir: PathBuf,
    log: BufWriter<File>,
    iters: Stream,
    epochs: Stream,
    tb: Option<EventWriter>,
    bar: Option<ProgressBar>,
    quiet_bar: bool,
}

fn open_append(path: &Path) -> Result<File, TrainError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| io_err(path, e))
}

fn read_records(path: &Path) -> Vec<Record> {
    let Ok(text) = fs::read_to_string(path) else {
        return Vec::new();
    };
    // A kill can leave a partial last line: it does not parse and is dropped.
    text.lines().filter_map(Record::from_json_line).collect()
}

/// Writes `text` to `path` atomically (temporary file beside it, synced, renamed over it).
pub(crate) fn write_text_atomic(path: &Path, text: &str) -> Result<(), TrainError> {
    mbls_base::fs::write_atomic(path, io_err, |w| {
        w.write_all(text.as_bytes()).map_err(|e| io_err(path, e))
    })
}

impl Stream {
    fn open(dir: &Path, name: &str, keep: &dyn Fn(&Record) -> bool) -> Result<Stream, TrainError> {
        let jsonl = dir.join(format!("{name}.jsonl"));
        let records: Vec<Record> = read_records(&jsonl).into_iter().filter(keep).collect();
        let mut text = String::new();
        for r in &records {
            text.push_str(&r.to_json_line());
            text.push('\n');
        }
        write_text_atomic(&jsonl, &text)?;
        let out = BufWriter::new(open_append(&jsonl)?);
        let stream = Stream {
            jsonl,
            records,
            out,
        };
        // The CSV files follow the kept records at once (a resumed run may die before its
        // first flush).
        stream.write_csv()?;
        Ok(stream)
    }

    fn push(&mut self, r: Record) -> Result<(), TrainError> {
        let line = r.to_json_line();
        writeln!(self.out, "{line}").map_err(|e| io_err(&self.jsonl, e))?;
        self.records.push(r);
        Ok(())
    }

    fn flush_jsonl(&mut self) -> Result<(), TrainError> {
        self.out.flush().map_err(|e| io_err(&self.jsonl, e))
    }

    /// `<stem>_<phase>.csv` for each phase of the stream, columns from its first record.
    fn write_csv(&self) -> Result<(), TrainError> {
        let stem = self
            .jsonl
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dir = self.jsonl.parent().unwrap_or(Path::new("."));
        let mut phases: Vec<&str> = Vec::new();
        for r in &self.records {
            if !phases.contains(&r.phase.as_str()) {
                phases.push(&r.phase);
            }
        }
        // CSV files of phases that no record has any more (a resumed run's Test) go.
        if let Ok(rd) = fs::read_dir(dir) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let Some(phase) = name
                    .strip_prefix(&format!("{stem}_"))
                    .and_then(|n| n.strip_suffix(".csv"))
                else {
                    continue;
                };
                if !phases.iter().any(|p| p.to_ascii_lowercase() == phase) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        for phase in phases {
            let rows: Vec<&Record> = self.records.iter().filter(|r| r.phase == phase).collect();
            let cols: Vec<&str> = rows[0].values.iter().map(|(k, _)| k.as_str()).collect();
            let mut text = String::from("epoch");
            if rows[0].iter.is_some() {
                text.push_str(",iter");
            }
            text.push_str(",wall_time");
            for c in &cols {
                text.push(',');
                text.push_str(c);
            }
            text.push('\n');
            for r in rows {
                text.push_str(&r.epoch.to_string());
                if let Some(i) = r.iter {
                    text.push_str(&format!(",{i}"));
                }
                text.push_str(&format!(",{:.3}", r.wall_time));
                for c in &cols {
                    text.push(',');
                    if let Some((_, v)) = r.values.iter().find(|(k, _)| k == c) {
                        text.push_str(&v.to_string());
                    }
                }
                text.push('\n');
            }
            let name = format!("{stem}_{}.csv", phase.to_ascii_lowercase());
            write_text_atomic(&dir.join(name), &text)?;
        }
        Ok(())
    }
}

impl RunFolder {
    /// Opens (creating) the run folder `dir`. Metrics already there are kept only where
    /// `keep` says so (a resumed run keeps the records before its resume point; a fresh run
    /// keeps none), and the TensorBoard files are rewritten from what is kept.
    ///
    /// `log_name` is the log file (`train.log`, `test.log`), appended to.
    pub fn open(
        dir: &Path,
        log_name: &str,
        keep: &dyn Fn(&Record) -> bool,
        tensorboard: bool,
    ) -> Result<RunFolder, TrainError> {
        fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        let log = BufWriter::new(open_append(&dir.join(log_name))?);
        let iters = Stream::open(dir, "iterations", keep)?;
        let epochs = Stream::open(dir, "epochs", keep)?;
        let tb = if tensorboard {
            let tb_dir = dir.join("tensorboard");
            let old: Vec<PathBuf> = fs::read_dir(&tb_dir)
                .map(|rd| {
                    rd.flatten()
                        .map(|e| e.path())
                        .filter(|p| {
                            p.file_name()
                                .is_some_and(|n| n.to_string_lossy().starts_with("events.out"))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let mut w = EventWriter::create(&tb_dir).map_err(|e| io_err(&tb_dir, e))?;
            for r in iters.records.iter().chain(&epochs.records) {
                let tags: Vec<(String, f64)> =
                    r.values.iter().map(|(k, v)| (r.tag(k), *v)).collect();
                let refs: Vec<(&str, f64)> = tags.iter().map(|(k, v)| (k.as_str(), *v)).collect();
                w.scalars(&refs, r.step())
                    .map_err(|e| io_err(w.path(), e))?;
            }
            w.flush().map_err(|e| io_err(w.path(), e))?;
            for p in old {
                if p != w.path() {
                    let _ = fs::remove_file(p);
                }
            }
            Some(w)
        } else {
            None
        };
        Ok(RunFolder {
            dir: dir.to_path_buf(),
            log,
            iters,
            epochs,
            tb,
            bar: None,
            quiet_bar: !std::io::stderr().is_terminal(),
        })
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Prints a line (above the progress bar, if any) and appends it to the log file with a
    /// timestamp.
    pub fn say(&mut self, line: &str) {
        match &self.bar {
            Some(b) => b.println(line),
            None => println!("{line}"),
        }
        let ts = timestamp_utc(now(), false);
        for l in line.lines() {
            let _ = writeln!(self.log, "[{ts}] {l}");
        }
        let _ = self.log.flush();
    }

    /// Appends to the log file only.
    pub fn log_only(&mut self, line: &str) {
        let ts = timestamp_utc(now(), false);
        for l in line.lines() {
            let _ = writeln!(self.log, "[{ts}] {l}");
        }
    }

    /// Starts a progress bar of `len` steps for a phase (on a terminal only).
    pub fn start_bar(&mut self, len: usize, phase: &str) {
        if self.quiet_bar {
            return;
        }
        let bar = ProgressBar::new(len as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>8} [{bar:30}] {pos}/{len} {msg} {per_sec} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix(phase.to_string());
        self.bar = Some(bar);
    }

    /// Advances the progress bar to `pos` with a message.
    pub fn bar_update(&self, pos: usize, msg: String) {
        if let Some(b) = &self.bar {
            b.set_position(pos as u64);
            b.set_message(msg);
        }
    }

    /// Ends the progress bar.
    pub fn end_bar(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }

    /// Adds an iteration record.
    pub fn iteration(&mut self, r: Record) -> Result<(), TrainError> {
        self.tb_write(&r)?;
        self.iters.push(r)
    }

    /// Adds an epoch (or test) record.
    pub fn epoch(&mut self, r: Record) -> Result<(), TrainError> {
        self.tb_write(&r)?;
        self.epochs.push(r)
    }

    fn tb_write(&mut self, r: &Record) -> Result<(), TrainError> {
        if let Some(w) = &mut self.tb {
            let tags: Vec<(String, f64)> = r.values.iter().map(|(k, v)| (r.tag(k), *v)).collect();
            let refs: Vec<(&str, f64)> = tags.iter().map(|(k, v)| (k.as_str(), *v)).collect();
            w.scalars(&refs, r.step())
                .map_err(|e| io_err(w.path(), e))?;
        }
        Ok(())
    }

    /// Flushes every file (JSONL, CSV, TensorBoard, log) to disk.
    pub fn flush(&mut self) -> Result<(), TrainError> {
        self.flush_records()?;
        self.iters.write_csv()?;
        self.epochs.write_csv()
    }

    /// Writes out the buffered JSONL records, TensorBoard events and log lines, without
    /// rewriting the CSV files (derived from the JSONL records, and rewritten from them on
    /// resume): what a mid-epoch checkpoint needs on disk before it is committed.
    pub fn flush_records(&mut self) -> Result<(), TrainError> {
        self.iters.flush_jsonl()?;
        self.epochs.flush_jsonl()?;
        if let Some(w) = &mut self.tb {
            w.flush().map_err(|e| io_err(w.path(), e))?;
        }
        self.log.flush().map_err(|e| io_err(&self.dir, e))
    }

    /// Writes a file of the run folder atomically.
    pub fn write(&self, name: &str, text: &str) -> Result<PathBuf, TrainError> {
        let p = self.dir.join(name);
        write_text_atomic(&p, text)?;
        Ok(p)
    }
}

/// `YYYY-MM-DD HH:MM:SS` (or `YYYYMMDD-HH:MM:SS-ffffff` for folder names, as the
/// reference's `${now:%Y%m%d-%H:%M:%S-%f}`), in UTC.
pub fn timestamp_utc(secs: f64, folder: bool) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos((secs * 1e9) as i128)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    if folder {
        format!(
            "{:04}{:02}{:02}-{:02}:{:02}:{:02}-{:06}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.microsecond()
        )
    } else {
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(phase: &str, epoch: u64, iter: Option<u64>, v: f64) -> Record {
        Record {
            phase: phase.into(),
            epoch,
            iter,
            wall_time: 1.0,
            values: vec![("loss".into(), v), ("acc".into(), v / 2.0)],
        }
    }

    #[test]
    fn resume_keeps_only_the_records_before_the_resume_point() {
        let d = tempfile::tempdir().unwrap();
        {
            let mut f = RunFolder::open(d.path(), "train.log", &|_| false, true).unwrap();
            for e in 0..3 {
                for i in 0..2 {
                    f.iteration(rec("Train", e, Some(e * 2 + i), i as f64))
                        .unwrap();
                }
                f.epoch(rec("Train", e, None, 1.0)).unwrap();
                f.epoch(rec("Val", e, None, 2.0)).unwrap();
            }
            f.flush().unwrap();
        }
        let f = RunFolder::open(d.path(), "train.log", &|r| r.epoch < 2, true).unwrap();
        assert_eq!(f.iters.records.len(), 4);
        assert_eq!(f.epochs.records.len(), 4);
        let csv = fs::read_to_string(d.path().join("epochs_val.csv")).unwrap();
        assert_eq!(csv.lines().count(), 3, "{csv:?}");
        assert!(csv.starts_with("epoch,wall_time,loss,acc"), "{csv}");
        let files: Vec<_> = fs::read_dir(d.path().join("tensorboard"))
            .unwrap()
            .collect();
        assert_eq!(files.len(), 1, "one event file after the rewrite");
        let (scalars, truncated) =
            crate::tensorboard::read_scalars(&files[0].as_ref().unwrap().path()).unwrap();
        assert_eq!(truncated, 0);
        // 4 iteration records and 4 epoch records, 2 values each
        assert_eq!(scalars.len(), 16);
        assert!(
            scalars
                .iter()
                .any(|(t, s, _)| t == "Train/Iter/loss" && *s == 3)
        );
        assert!(!scalars.iter().any(|(_, s, _)| *s == 4));
    }

    #[test]
    fn folder_timestamps_look_like_the_reference() {
        assert_eq!(timestamp_utc(0.5, true), "19700101-00:00:00-500000");
        assert_eq!(timestamp_utc(86_400.0, false), "1970-01-02 00:00:00");
    }
}
