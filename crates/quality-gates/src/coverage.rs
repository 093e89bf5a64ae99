//! Line coverage from the three report formats a plan can name.
//!
//! * **lcov** (`lcov.info`, `cargo llvm-cov --lcov`, `c8`, `coverage.py lcov`): per record, `LF`
//!   (lines found) and `LH` (lines hit); a record without them is counted from its `DA` lines.
//! * **Cobertura XML** (`coverage.py xml`, `cargo tarpaulin`, `jest`): the root `<coverage>`
//!   element's `lines-covered`/`lines-valid` when present, else its `line-rate` (0–1).
//! * **llvm-cov JSON** (`cargo llvm-cov --json --summary-only`): `data[0].totals.lines.percent`,
//!   or `covered / count` when the percentage is absent.
//!
//! Reading the file is separated from parsing it because the two fail differently: a missing
//! report is the agent's failure (its tests did not write it), an unreadable one is the
//! environment's, and a report that parses to no lines at all is a failure that says so.

use std::path::{Path, PathBuf};

use fugue_core::CoverageFormat;

use crate::counts::{attribute, start_tags, tag_end};

/// Why no coverage figure could be read.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum CoverageError {
    /// No file at the expected path.
    Missing(PathBuf),
    /// The file exists but cannot be read.
    Unreadable { path: PathBuf, message: String },
    /// The file was read but holds no usable figure.
    Invalid { path: PathBuf, message: String },
}

/// Reads the report at `path` and returns line coverage in percent.
pub(crate) fn read_coverage(path: &Path, format: CoverageFormat) -> Result<f64, CoverageError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(CoverageError::Missing(path.to_owned())),
        Err(e) => return Err(CoverageError::Unreadable { path: path.to_owned(), message: e.to_string() }),
    };
    let text = String::from_utf8_lossy(&bytes);
    parse_coverage(&text, format).map_err(|message| CoverageError::Invalid { path: path.to_owned(), message })
}

/// Parses a report's text; the error says what was missing.
pub(crate) fn parse_coverage(text: &str, format: CoverageFormat) -> Result<f64, String> {
    let percent = match format {
        CoverageFormat::Lcov => lcov(text)?,
        CoverageFormat::Cobertura => cobertura(text)?,
        CoverageFormat::LlvmCovJson => llvm_cov_json(text)?,
    };
    if percent.is_finite() { Ok(percent.clamp(0.0, 100.0)) } else { Err("the coverage figure is not a number".to_owned()) }
}

fn ratio(hit: u64, found: u64, what: &str) -> Result<f64, String> {
    if found == 0 {
        return Err(format!("the report lists no instrumented lines ({what} is 0)"));
    }
    Ok(hit as f64 * 100.0 / found as f64)
}

fn lcov(text: &str) -> Result<f64, String> {
    #[derive(Default)]
    struct Record {
        lf: Option<u64>,
        lh: Option<u64>,
        da_found: u64,
        da_hit: u64,
    }
    let (mut found, mut hit, mut records) = (0u64, 0u64, 0usize);
    let mut rec = Record::default();
    let mut flush = |rec: &mut Record| {
        let r = std::mem::take(rec);
        match (r.lf, r.lh) {
            (Some(lf), lh) => {
                found += lf;
                hit += lh.unwrap_or(0).min(lf);
            }
            (None, _) => {
                found += r.da_found;
                hit += r.da_hit;
            }
        }
    };
    for line in text.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("LF:") {
            rec.lf = Some(v.trim().parse().map_err(|_| format!("`{line}` is not a line count"))?);
        } else if let Some(v) = line.strip_prefix("LH:") {
            rec.lh = Some(v.trim().parse().map_err(|_| format!("`{line}` is not a line count"))?);
        } else if let Some(v) = line.strip_prefix("DA:") {
            rec.da_found += 1;
            let hits = v.split(',').nth(1).and_then(|h| h.trim().parse::<f64>().ok()).unwrap_or(0.0);
            if hits > 0.0 {
                rec.da_hit += 1;
            }
        } else if line == "end_of_record" {
            records += 1;
            flush(&mut rec);
        }
    }
    if rec.lf.is_some() || rec.da_found > 0 {
        records += 1;
        flush(&mut rec);
    }
    if records == 0 {
        return Err("no lcov records (`LF:`/`LH:` or `DA:` lines) found".to_owned());
    }
    ratio(hit, found, "LF")
}

fn cobertura(text: &str) -> Result<f64, String> {
    let start = start_tags(text, "coverage").into_iter().next().ok_or("no `<coverage>` element found")?;
    let end = tag_end(text, start).ok_or("the `<coverage>` tag is not closed")?;
    let tag = &text[start..end];
    let number = |name: &str| attribute(tag, name).and_then(|v| v.trim().parse::<f64>().ok());
    if let (Some(covered), Some(valid)) = (number("lines-covered"), number("lines-valid"))
        && valid > 0.0
    {
        return Ok(covered * 100.0 / valid);
    }
    match number("line-rate") {
        Some(rate) if (0.0..=1.0).contains(&rate) => Ok(rate * 100.0),
        Some(rate) => Err(format!("`line-rate` is {rate}, outside 0-1")),
        None => Err("the `<coverage>` element has no `line-rate` attribute".to_owned()),
    }
}

fn llvm_cov_json(text: &str) -> Result<f64, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let lines =
        v.pointer("/data/0/totals/lines").ok_or("no `data[0].totals.lines` (write it with `cargo llvm-cov --json --summary-only`)")?;
    if let Some(p) = lines.get("percent").and_then(serde_json::Value::as_f64) {
        return Ok(p);
    }
    match (lines.get("covered").and_then(serde_json::Value::as_u64), lines.get("count").and_then(serde_json::Value::as_u64)) {
        (Some(covered), Some(count)) => ratio(covered, count, "lines.count"),
        _ => Err("`data[0].totals.lines` has no `percent`".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lcov_sums_records_and_falls_back_to_da() {
        let text = "TN:\nSF:src/a.rs\nDA:1,1\nLF:10\nLH:9\nend_of_record\nSF:src/b.rs\nDA:1,0\nDA:2,3\nend_of_record\n";
        let p = parse_coverage(text, CoverageFormat::Lcov).expect("parses");
        assert!((p - 10.0 / 12.0 * 100.0).abs() < 1e-9, "{p}");
        assert!(parse_coverage("SF:x\nLF:0\nLH:0\nend_of_record\n", CoverageFormat::Lcov).is_err());
        assert!(parse_coverage("hello", CoverageFormat::Lcov).expect_err("no records").contains("no lcov records"));
        assert!(parse_coverage("LF:x\n", CoverageFormat::Lcov).is_err());
    }

    #[test]
    fn cobertura_prefers_counts() {
        let xml =
            r#"<?xml version="1.0" ?><coverage version="7" line-rate="0.5" lines-covered="87" lines-valid="100"><packages/></coverage>"#;
        assert_eq!(parse_coverage(xml, CoverageFormat::Cobertura), Ok(87.0));
        assert_eq!(parse_coverage(r#"<coverage line-rate="0.9">"#, CoverageFormat::Cobertura), Ok(90.0));
        assert!(parse_coverage(r#"<coverage line-rate="9">"#, CoverageFormat::Cobertura).is_err());
        assert!(parse_coverage("<report/>", CoverageFormat::Cobertura).is_err());
    }

    #[test]
    fn llvm_cov_json_reads_totals() {
        let json = r#"{"data":[{"totals":{"lines":{"count":200,"covered":180,"percent":90.0}}}],"type":"llvm.coverage.json.export"}"#;
        assert_eq!(parse_coverage(json, CoverageFormat::LlvmCovJson), Ok(90.0));
        let no_percent = r#"{"data":[{"totals":{"lines":{"count":4,"covered":1}}}]}"#;
        assert_eq!(parse_coverage(no_percent, CoverageFormat::LlvmCovJson), Ok(25.0));
        assert!(parse_coverage("{}", CoverageFormat::LlvmCovJson).is_err());
        assert!(parse_coverage("nope", CoverageFormat::LlvmCovJson).is_err());
    }

    #[test]
    fn missing_and_unreadable_files_differ() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("lcov.info");
        assert_eq!(read_coverage(&missing, CoverageFormat::Lcov), Err(CoverageError::Missing(missing.clone())));
        // A directory where the report should be cannot be read.
        std::fs::create_dir(&missing).expect("mkdir");
        assert!(matches!(read_coverage(&missing, CoverageFormat::Lcov), Err(CoverageError::Unreadable { .. })));
    }
}
