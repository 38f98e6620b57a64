//! Writing results: every file is written to a temporary sibling and renamed into place, so
//! a reader sees the whole file or none. Also the per-epoch curve CSV and the report JSON of
//! a training run.

use crate::error::{Error, Result};
use crate::model::Model;
use crate::trainer::TrainReport;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` through `<path>.tmp` and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let werr = |source| Error::Write { path: path.to_path_buf(), source };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(werr)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(werr)
}

/// Serializes `rows` as CSV with headers from the field names.
pub fn csv_bytes<T: serde::Serialize>(rows: &[T]) -> Result<Vec<u8>> {
    let ser = |e: csv::Error| Error::Serialize { what: "CSV", reason: e.to_string() };
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        w.serialize(r).map_err(ser)?;
    }
    w.into_inner().map_err(|e| Error::Serialize { what: "CSV", reason: e.to_string() })
}

/// Serializes `value` as pretty JSON.
pub fn json_bytes<T: serde::Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(value).map_err(|e| Error::Serialize { what: "JSON", reason: e.to_string() })
}

/// Writes a run's `curves.csv` (one row per epoch), `report.json` and
/// `checkpoint.safetensors` into `dir`; returns the paths written.
pub fn write_run(dir: &Path, model: &Model, report: &TrainReport) -> Result<Vec<PathBuf>> {
    let curves = dir.join("curves.csv");
    write_atomic(&curves, &csv_bytes(&report.history)?)?;
    let json = dir.join("report.json");
    write_atomic(&json, &json_bytes(report)?)?;
    let ckpt = dir.join("checkpoint.safetensors");
    crate::checkpoint::save(model, &ckpt)?;
    Ok(vec![curves, json, ckpt])
}
