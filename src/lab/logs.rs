//! Reading the nodes' JSON log lines: the lab takes kvip's own takeover measurement (lease
//! acquired → VIP up → first GARP handed to the kernel) from there, because only the process
//! that took over knows when it got the Lease's answer.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};

/// The log's current size: where the lines of what happens next begin.
pub fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// The first line after byte `offset` that contains `needle`.
pub fn find(path: &Path, offset: u64, needle: &str) -> Result<Option<String>> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    file.seek(SeekFrom::Start(offset))?;
    let mut text = String::new();
    file.take(16 << 20)
        .read_to_string(&mut text)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .find(|line| line.contains(needle))
        .map(str::to_string))
}

/// A microsecond field of a JSON log line (tracing puts fields under `fields`).
pub fn field_us(line: &str, key: &str) -> Option<Duration> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    let field = value
        .get("fields")
        .and_then(|f| f.get(key))
        .or_else(|| value.get(key))?;
    // tracing records u128 values (`Duration::as_micros`) as strings in JSON.
    let micros = field
        .as_u64()
        .or_else(|| field.as_str().and_then(|s| s.parse().ok()))?;
    Some(Duration::from_micros(micros))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takeover_fields_are_read_from_tracing_json() {
        let line = r#"{"level":"INFO","fields":{"message":"leading: VIP up and announced","lease_acquired_to_first_garp_us":412}}"#;
        assert_eq!(
            field_us(line, "lease_acquired_to_first_garp_us"),
            Some(Duration::from_micros(412))
        );
        assert_eq!(field_us(line, "missing"), None);
        let quoted = r#"{"fields":{"lease_acquired_to_vip_up_us":"93"}}"#;
        assert_eq!(
            field_us(quoted, "lease_acquired_to_vip_up_us"),
            Some(Duration::from_micros(93))
        );
    }
}
