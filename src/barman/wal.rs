//! WAL file names as they sit in a Barman Cloud archive, and timeline history files.

use serde::Serialize;
use std::fmt;

/// Compression suffixes barman-cloud-wal-archive may add.
pub const COMPRESSIONS: [&str; 6] = ["gz", "bz2", "xz", "snappy", "zst", "lz4"];

/// What kind of file a WAL archive name is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WalKind {
    Segment,
    Partial,
    /// `SEGMENT.OFFSET.backup`: the label file written when a base backup stops.
    Backup,
    History,
}

/// A parsed archive file name: `000000010000000000000003.gz`, `00000002.history`, ...
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WalFile {
    pub timeline: u32,
    /// `(log, seg)` from the name; zero for history files.
    pub log: u32,
    pub seg: u32,
    pub kind: WalKind,
    pub compression: Option<String>,
}

impl WalFile {
    /// Parses a file name (no folder). `None` when it is not a WAL archive name.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        let (base, compression) = match name.rsplit_once('.') {
            Some((b, ext)) if COMPRESSIONS.contains(&ext) => (b, Some(ext.to_string())),
            _ => (name, None),
        };
        let with = |kind, t, l, s| {
            Some(Self {
                timeline: t,
                log: l,
                seg: s,
                kind,
                compression: compression.clone(),
            })
        };
        if let Some(tl) = base.strip_suffix(".history") {
            return with(WalKind::History, hex8(tl)?, 0, 0);
        }
        let (seg_name, kind) = if let Some(s) = base.strip_suffix(".partial") {
            (s, WalKind::Partial)
        } else if let Some(s) = base.strip_suffix(".backup") {
            let (s, offset) = s.split_once('.')?;
            hex8(offset)?;
            (s, WalKind::Backup)
        } else {
            (base, WalKind::Segment)
        };
        let (t, l, s) = split_segment(seg_name)?;
        with(kind, t, l, s)
    }

    /// The 24-hex-digit segment name (for history files, the timeline's 8 digits).
    #[must_use]
    pub fn segment_name(&self) -> String {
        match self.kind {
            WalKind::History => format!("{:08X}", self.timeline),
            _ => segment_name(self.timeline, self.log, self.seg),
        }
    }
}

fn hex8(s: &str) -> Option<u32> {
    (s.len() == 8 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| u32::from_str_radix(s, 16).ok())?
}

/// Splits `TTTTTTTTLLLLLLLLSSSSSSSS` into (timeline, log, seg).
#[must_use]
pub fn split_segment(name: &str) -> Option<(u32, u32, u32)> {
    if name.len() != 24 {
        return None;
    }
    Some((hex8(&name[..8])?, hex8(&name[8..16])?, hex8(&name[16..])?))
}

#[must_use]
pub fn segment_name(timeline: u32, log: u32, seg: u32) -> String {
    format!("{timeline:08X}{log:08X}{seg:08X}")
}

/// Segments per 4 GiB "log" for a segment size (256 for the default 16 MiB).
#[must_use]
pub fn segments_per_log(segment_size: u64) -> u64 {
    0x1_0000_0000 / segment_size.max(1)
}

/// A segment's position on its timeline, so ranges can be walked with plain integers.
#[must_use]
pub fn seg_no(log: u32, seg: u32, segment_size: u64) -> u64 {
    u64::from(log) * segments_per_log(segment_size) + u64::from(seg)
}

/// The segment name of a position on a timeline (inverse of [`seg_no`]).
#[must_use]
pub fn name_of(timeline: u32, no: u64, segment_size: u64) -> String {
    let per = segments_per_log(segment_size);
    segment_name(
        timeline,
        u32::try_from(no / per).unwrap_or(u32::MAX),
        u32::try_from(no % per).unwrap_or(0),
    )
}

/// The segment holding an LSN written `X/Y` (hex), as a position.
#[must_use]
pub fn lsn_seg_no(lsn: &str, segment_size: u64) -> Option<u64> {
    let (hi, lo) = lsn.split_once('/')?;
    let lsn = (u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?;
    Some(lsn / segment_size.max(1))
}

/// One line of a `.history` file: this timeline branched off `parent` at `switch_lsn`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryEntry {
    pub parent: u32,
    pub switch_lsn: String,
    pub reason: String,
}

/// Parses a timeline history file (`parentTLI<TAB>switchpoint<TAB>reason` lines, `#` comments).
/// Returns the line that could not be read on error.
pub fn parse_history(text: &str) -> Result<Vec<HistoryEntry>, String> {
    let mut out = Vec::new();
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let mut parts = line.splitn(3, |c: char| c.is_whitespace());
        let parent = parts.next().and_then(|p| p.parse().ok());
        let lsn = parts.next().filter(|l| l.contains('/'));
        match (parent, lsn) {
            (Some(parent), Some(lsn)) => out.push(HistoryEntry {
                parent,
                switch_lsn: lsn.to_string(),
                reason: parts.next().unwrap_or("").trim().to_string(),
            }),
            _ => return Err(line.to_string()),
        }
    }
    Ok(out)
}

impl fmt::Display for WalFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.segment_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_archive_name_form() {
        let s = WalFile::parse("000000010000000A000000FF.gz").unwrap();
        assert_eq!(
            (s.timeline, s.log, s.seg, s.kind.clone()),
            (1, 10, 255, WalKind::Segment)
        );
        assert_eq!(s.compression.as_deref(), Some("gz"));
        assert_eq!(
            WalFile::parse("00000002.history").unwrap().kind,
            WalKind::History
        );
        assert_eq!(WalFile::parse("00000002.history").unwrap().timeline, 2);
        let b = WalFile::parse("000000010000000000000002.00000028.backup").unwrap();
        assert_eq!(b.kind, WalKind::Backup);
        let p = WalFile::parse("000000010000000000000005.partial.bz2").unwrap();
        assert_eq!((p.kind, p.seg), (WalKind::Partial, 5));
        for bad in [
            "00000001000000000000000",
            "README",
            "0000000100000000000000GG",
            "x.history",
        ] {
            assert_eq!(WalFile::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn positions_round_trip_across_log_boundaries() {
        let size = 16 * 1024 * 1024;
        assert_eq!(seg_no(1, 0, size), 256);
        assert_eq!(name_of(1, 255, size), "0000000100000000000000FF");
        assert_eq!(name_of(1, 256, size), "000000010000000100000000");
        assert_eq!(lsn_seg_no("0/3000028", size), Some(3));
        assert_eq!(lsn_seg_no("1/0", size), Some(256));
    }

    #[test]
    fn parses_history_files() {
        let h = parse_history(
            "1\t0/3000000\tno recovery target specified\n\n2\t0/5000000\tbefore 2026\n",
        )
        .unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(h[1].parent, 2);
        assert_eq!(h[0].reason, "no recovery target specified");
        assert_eq!(parse_history("garbage\n"), Err("garbage".to_string()));
    }
}
