//! Reading PostgreSQL's WAL records, for one fact barman-cloud does not record: the time of the
//! last transaction a segment commits (or aborts), the true end of what a restore can reach.
//!
//! The layout is PostgreSQL's (`src/include/access/xlog_internal.h`, `xlogrecord.h`, `xact.h`,
//! checked against `pg_waldump` of PostgreSQL 15 in the tests): 8 KiB pages (the size is read
//! from the segment's long header), each with a page header (24 bytes; 40 on a segment's first
//! page) whose `xlp_pageaddr` is the page's own LSN; records MAXALIGNed (8 bytes), each a 24-byte
//! `XLogRecord` (`xl_tot_len`, `xl_xid`, `xl_prev`, `xl_info`, `xl_rmid`, a CRC-32C over the
//! rest of the record and then the header up to the CRC), then block headers and the main data
//! last. A record that does not fit on its page continues after the next page's header
//! (`XLP_FIRST_IS_CONTRECORD`, `xlp_rem_len`), also into the next segment. A commit is resource
//! manager 1 (`RM_XACT_ID`) with `xl_info & 0x70` = `XLOG_XACT_COMMIT` (0x00) or
//! `COMMIT_PREPARED` (0x30), an abort 0x20 or 0x40; its main data begins with `xact_time`,
//! microseconds since 2000-01-01 UTC.
//!
//! Other major versions: the page magic differs (0xD110 for 15, 0xD113 for 16, 0xD116 for 17;
//! all three are read, any other is refused); 16 and 17 keep the record, block-header and
//! commit layouts of 15; 14 and older flag compressed block images differently
//! (`BKPIMAGE_IS_COMPRESSED` 0x02, so the hole-length field would be misread) and are refused.
//!
//! A segment that is shorter than it declares, or whose records break off (a wrong page
//! address, a bad CRC, a broken chain of `xl_prev`) anywhere but after an `XLOG_SWITCH` or in
//! all-zero space, is an error naming the segment: never a panic, and never an earlier time
//! passed off as the last.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};

const XLP_FIRST_IS_CONTRECORD: u16 = 0x0001;
const XLP_LONG_HEADER: u16 = 0x0002;
const SHORT_HEADER: usize = 24;
const LONG_HEADER: usize = 40;
const RECORD_HEADER: usize = 24;
const RM_XLOG_ID: u8 = 0;
const RM_XACT_ID: u8 = 1;
const XLOG_SWITCH: u8 = 0x40;

/// What the newest transaction of some WAL was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct LastTransaction {
    /// When it committed or aborted (`xact_time`).
    pub time: DateTime<Utc>,
    /// The LSN of its record.
    pub lsn: u64,
    /// A commit (`true`) or an abort.
    pub committed: bool,
}

/// Why WAL could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("WAL segment {segment}: {why}")]
pub struct Unreadable {
    pub segment: String,
    pub why: String,
}

/// One segment: its file name (24 hex digits, for the timeline and position) and its bytes,
/// decompressed.
pub struct Segment<'a> {
    pub name: &'a str,
    pub data: &'a [u8],
}

/// The last commit or abort in `segments`, consecutive segments of one timeline, oldest first
/// (give the one before the newest too, so that a record continuing into the newest is read
/// whole). `Ok(None)`: no transaction ended in them.
pub fn last_transaction(segments: &[Segment<'_>]) -> Result<Option<LastTransaction>, Unreadable> {
    let mut reader = Reader::new(segments)?;
    let mut last = None;
    while let Some(rec) = reader.next_record()? {
        if rec.rmid == RM_XACT_ID {
            let op = rec.info & 0x70;
            let committed = match op {
                0x00 | 0x30 => true,
                0x20 | 0x40 => false,
                _ => continue,
            };
            let main = rec
                .main_data()
                .map_err(|why| reader.error_at(rec.lsn, &why))?;
            let micros = main
                .get(..8)
                .map(|b| i64::from_le_bytes(b.try_into().unwrap_or_default()))
                .ok_or_else(|| reader.error_at(rec.lsn, "a commit record without its time"))?;
            let epoch = Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).single();
            let time = epoch
                .and_then(|e| e.checked_add_signed(TimeDelta::microseconds(micros)))
                .ok_or_else(|| reader.error_at(rec.lsn, "a commit time out of range"))?;
            last = Some(LastTransaction {
                time,
                lsn: rec.lsn,
                committed,
            });
        }
    }
    Ok(last)
}

struct Record {
    lsn: u64,
    rmid: u8,
    info: u8,
    bytes: Vec<u8>,
}

impl Record {
    /// The main data: after the block headers, the last bytes of the record.
    fn main_data(&self) -> Result<&[u8], String> {
        let r = &self.bytes;
        let byte = |at: usize| {
            r.get(at)
                .copied()
                .ok_or("block headers run past the record")
        };
        let u16_at = |at: usize| -> Result<usize, String> {
            Ok(usize::from(u16::from_le_bytes([byte(at)?, byte(at + 1)?])))
        };
        let mut pos = RECORD_HEADER;
        let main_len = loop {
            let id = byte(pos)?;
            pos += 1;
            match id {
                255 => break usize::from(byte(pos)?),
                254 => {
                    let b = r.get(pos..pos + 4).ok_or("a cut data length")?;
                    break usize::try_from(u32::from_le_bytes(b.try_into().unwrap_or_default()))
                        .unwrap_or(usize::MAX);
                }
                253 => pos += 2,
                252 => pos += 4,
                0..=32 => {
                    let fork_flags = byte(pos)?;
                    pos += 3; // fork_flags, data_length
                    if fork_flags & 0x10 != 0 {
                        // bimg_len, hole_offset, bimg_info; a hole length when compressed.
                        let bimg_info = byte(pos + 4)?;
                        pos += 5;
                        if bimg_info & 0x01 != 0 && bimg_info & (0x04 | 0x08 | 0x10) != 0 {
                            u16_at(pos)?;
                            pos += 2;
                        }
                    }
                    if fork_flags & 0x80 == 0 {
                        pos += 12; // RelFileLocator
                    }
                    pos += 4; // BlockNumber
                }
                other => return Err(format!("unknown block id {other}")),
            }
        };
        let start = r
            .len()
            .checked_sub(main_len)
            .ok_or("main data longer than the record")?;
        Ok(&r[start..])
    }
}

struct Reader<'a> {
    segments: &'a [Segment<'a>],
    seg_size: usize,
    page: usize,
    /// LSN of the first byte of the first segment.
    base: u64,
    /// Position (offset from `base`) of the next record.
    pos: usize,
    prev: Option<u64>,
    done: bool,
}

impl<'a> Reader<'a> {
    fn new(segments: &'a [Segment<'a>]) -> Result<Self, Unreadable> {
        let first = segments.first().ok_or_else(|| Unreadable {
            segment: "(none)".into(),
            why: "no segment given".into(),
        })?;
        let err = |s: &Segment<'_>, why: String| Unreadable {
            segment: s.name.to_string(),
            why,
        };
        let header = |s: &Segment<'_>| -> Result<(usize, usize), Unreadable> {
            let d = s.data;
            if d.len() < LONG_HEADER {
                return Err(err(s, format!("only {} bytes", d.len())));
            }
            let magic = u16::from_le_bytes([d[0], d[1]]);
            if !matches!(magic, 0xD110 | 0xD113 | 0xD116) {
                return Err(err(
                    s,
                    format!("page magic {magic:#06x} is not PostgreSQL 15, 16 or 17's"),
                ));
            }
            if u16::from_le_bytes([d[2], d[3]]) & XLP_LONG_HEADER == 0 {
                return Err(err(s, "the first page has no long header".into()));
            }
            let seg = u32::from_le_bytes([d[32], d[33], d[34], d[35]]) as usize;
            let page = u32::from_le_bytes([d[36], d[37], d[38], d[39]]) as usize;
            if !seg.is_power_of_two() || !page.is_power_of_two() || page < 1024 || seg < page {
                return Err(err(s, format!("segment size {seg}, page size {page}")));
            }
            if d.len() != seg {
                return Err(err(
                    s,
                    format!("{} bytes, but it declares {seg}: truncated", d.len()),
                ));
            }
            Ok((seg, page))
        };
        let (seg_size, page) = header(first)?;
        for s in segments {
            if header(s)? != (seg_size, page) {
                return Err(err(s, "a different segment or page size".into()));
            }
        }
        let base = u64::from_le_bytes(first.data[8..16].try_into().unwrap_or_default());
        let mut r = Self {
            segments,
            seg_size,
            page,
            base,
            pos: 0,
            prev: None,
            done: false,
        };
        for (i, s) in segments.iter().enumerate() {
            let want = base + (i * seg_size) as u64;
            let got = u64::from_le_bytes(s.data[8..16].try_into().unwrap_or_default());
            if got != want {
                return Err(err(s, format!("starts at {}, not {}", lsn(got), lsn(want))));
            }
        }
        // Skip the end of a record that began before the first segment.
        let info = u16::from_le_bytes([first.data[2], first.data[3]]);
        let rem = u32::from_le_bytes(first.data[16..20].try_into().unwrap_or_default()) as usize;
        r.pos = LONG_HEADER;
        if info & XLP_FIRST_IS_CONTRECORD != 0 {
            r.pos = r.skip(LONG_HEADER, rem)?;
        }
        r.pos = align(r.pos);
        Ok(r)
    }

    fn len(&self) -> usize {
        self.segments.len() * self.seg_size
    }

    fn byte_slice(&self, at: usize, n: usize) -> &'a [u8] {
        let seg = &self.segments[at / self.seg_size];
        let off = at % self.seg_size;
        &seg.data[off..off + n]
    }

    fn segment_name(&self, at: usize) -> &str {
        self.segments[(at / self.seg_size).min(self.segments.len() - 1)].name
    }

    fn error_at(&self, at_lsn: u64, why: &str) -> Unreadable {
        let at = usize::try_from(at_lsn.saturating_sub(self.base)).unwrap_or(usize::MAX);
        Unreadable {
            segment: self
                .segment_name(at.min(self.len().saturating_sub(1)))
                .to_string(),
            why: format!("at {}: {why}", lsn(at_lsn)),
        }
    }

    /// Checks the page header at `at` (a page start) and returns where its data begins.
    fn page_data(&self, at: usize, cont: Option<usize>) -> Result<usize, Unreadable> {
        let h = self.byte_slice(at, SHORT_HEADER);
        let info = u16::from_le_bytes([h[2], h[3]]);
        let addr = u64::from_le_bytes(h[8..16].try_into().unwrap_or_default());
        let want = self.base + at as u64;
        if addr != want {
            return Err(self.error_at(want, &format!("a page claiming to be at {}", lsn(addr))));
        }
        if let Some(rem) = cont {
            let got = u32::from_le_bytes(h[16..20].try_into().unwrap_or_default()) as usize;
            if info & XLP_FIRST_IS_CONTRECORD == 0 || got != rem {
                return Err(self.error_at(want, "a record's continuation is missing"));
            }
        }
        let header = if info & XLP_LONG_HEADER != 0 {
            LONG_HEADER
        } else {
            SHORT_HEADER
        };
        Ok(at + header)
    }

    /// The position after `n` bytes of record data starting at `at`, across page headers.
    fn skip(&self, mut at: usize, mut n: usize) -> Result<usize, Unreadable> {
        while n > 0 {
            if at >= self.len() {
                return Ok(self.len());
            }
            let room = self.page - at % self.page;
            let take = room.min(n);
            at += take;
            n -= take;
            if n > 0 && at < self.len() {
                at = self.page_data(at, Some(n))?;
            }
        }
        Ok(at)
    }

    /// Reads `n` bytes of record data from `at`; `None` when the WAL given ends first.
    fn read(&self, mut at: usize, n: usize) -> Result<Option<(Vec<u8>, usize)>, Unreadable> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            if at >= self.len() {
                return Ok(None);
            }
            if at.is_multiple_of(self.page) {
                at = self.page_data(at, Some(n - out.len()))?;
            }
            let room = self.page - at % self.page;
            let take = room.min(n - out.len());
            out.extend_from_slice(self.byte_slice(at, take));
            at += take;
        }
        Ok(Some((out, at)))
    }

    fn next_record(&mut self) -> Result<Option<Record>, Unreadable> {
        if self.done {
            return Ok(None);
        }
        let mut at = self.pos;
        if at >= self.len() {
            return Ok(None);
        }
        if at.is_multiple_of(self.page) {
            // The WAL written ended with the page before: nothing but zeros from here.
            if self.rest_is_zero(at) {
                self.done = true;
                return Ok(None);
            }
            at = self.page_data(at, None)?;
        }
        let rec_lsn = self.base + at as u64;
        // Records are 8-byte aligned, so the length is always on this page; the rest of the
        // header may continue on the next one (read below, as the record's data is).
        let head = self.byte_slice(at, 4);
        let tot_len = u32::from_le_bytes(head[0..4].try_into().unwrap_or_default()) as usize;
        if tot_len == 0 {
            // The end of the WAL written: only zeros may follow.
            if self.rest_is_zero(at) {
                self.done = true;
                return Ok(None);
            }
            return Err(self.error_at(rec_lsn, "a record of length 0 before the end"));
        }
        if tot_len < RECORD_HEADER {
            return Err(self.error_at(rec_lsn, &format!("a record of {tot_len} bytes")));
        }
        let Some((bytes, end)) = self.read(at, tot_len)? else {
            // It continues past the WAL given: not restorable from it yet.
            self.done = true;
            return Ok(None);
        };
        let prev = u64::from_le_bytes(bytes[8..16].try_into().unwrap_or_default());
        if self.prev.is_some_and(|p| p != prev) {
            return Err(self.error_at(rec_lsn, "its link to the previous record is broken"));
        }
        let crc = u32::from_le_bytes(bytes[20..24].try_into().unwrap_or_default());
        let mut c = Crc32c::new();
        c.update(&bytes[RECORD_HEADER..]);
        c.update(&bytes[..20]);
        if c.finish() != crc {
            return Err(self.error_at(rec_lsn, "its CRC does not match (the record is damaged)"));
        }
        let rec = Record {
            lsn: rec_lsn,
            rmid: bytes[17],
            info: bytes[16],
            bytes,
        };
        self.prev = Some(rec_lsn);
        self.pos = align(end);
        if rec.rmid == RM_XLOG_ID && rec.info & 0xF0 == XLOG_SWITCH {
            // The rest of the segment is unused.
            self.pos = (end / self.seg_size + 1) * self.seg_size;
            if end.is_multiple_of(self.seg_size) {
                self.pos = end;
            }
        }
        Ok(Some(rec))
    }

    fn rest_is_zero(&self, at: usize) -> bool {
        let seg = at / self.seg_size;
        let off = at % self.seg_size;
        self.segments[seg].data[off..].iter().all(|b| *b == 0)
            && self.segments[seg + 1..]
                .iter()
                .all(|s| s.data.iter().all(|b| *b == 0))
    }
}

fn align(at: usize) -> usize {
    (at + 7) & !7
}

/// `0/1A3B2C8`, as PostgreSQL prints an LSN.
#[must_use]
pub fn lsn(v: u64) -> String {
    format!("{:X}/{:X}", v >> 32, v & 0xFFFF_FFFF)
}

/// CRC-32C (Castagnoli), as PostgreSQL computes it over WAL records.
struct Crc32c(u32);

impl Crc32c {
    fn new() -> Self {
        Self(0xFFFF_FFFF)
    }

    fn update(&mut self, data: &[u8]) {
        static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
        let table = TABLE.get_or_init(|| {
            let mut t = [0u32; 256];
            for (i, slot) in t.iter_mut().enumerate() {
                let mut c = i as u32;
                for _ in 0..8 {
                    c = if c & 1 != 0 {
                        0x82F6_3B78 ^ (c >> 1)
                    } else {
                        c >> 1
                    };
                }
                *slot = c;
            }
            t
        });
        for b in data {
            self.0 = table[((self.0 ^ u32::from(*b)) & 0xFF) as usize] ^ (self.0 >> 8);
        }
    }

    fn finish(&self) -> u32 {
        self.0 ^ 0xFFFF_FFFF
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        let mut c = Crc32c::new();
        c.update(b"123456789");
        assert_eq!(c.finish(), 0xE306_9283);
    }

    #[test]
    fn nonsense_is_an_error_naming_the_segment() {
        for data in [&[][..], &[0u8; 100][..], &[0xFFu8; 64][..]] {
            let e = last_transaction(&[Segment {
                name: "000000010000000000000007",
                data,
            }])
            .unwrap_err();
            assert_eq!(e.segment, "000000010000000000000007", "{e}");
        }
    }
}

/// Property tests on synthetic WAL written here with PostgreSQL 15's page and record layout:
/// records of every size (crossing pages and segments), commits, aborts and other records at
/// random; the reader must find the model's last transaction in any run of the segments, and a
/// truncated or damaged segment must be an error naming a segment given, or (a byte the reader
/// does not use) the same answer: never a panic, never another time.
#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    const PAGE: usize = 8192;
    const SEG: usize = 64 << 10;
    const SEGS: usize = 3;
    /// LSN of the first segment (timeline 1, segment 0x20 of 64 KiB segments).
    const BASE: u64 = 0x20 * SEG as u64;

    /// One record to write: (resource manager, info, main data length, `xact_time`).
    type Spec = (u8, u8, usize, i64);

    /// A record the model knows: where it starts and ends, and what it says.
    struct Written {
        start: usize,
        end: usize,
        xact: Option<(i64, bool)>,
    }

    /// WAL as PostgreSQL writes it: page headers (long at each segment start, with
    /// `XLP_FIRST_IS_CONTRECORD` and the remaining length where a record continues), records
    /// MAXALIGNed, each with its CRC-32C and a link to the previous one; zeros after the last.
    struct Wal {
        buf: Vec<u8>,
        pos: usize,
        prev: u64,
        written: Vec<Written>,
    }

    impl Wal {
        fn new() -> Self {
            let mut w = Self {
                buf: vec![0; SEGS * SEG],
                pos: 0,
                prev: 0,
                written: Vec::new(),
            };
            w.pos = w.page_header(0, 0);
            w
        }

        fn page_header(&mut self, at: usize, rem: usize) -> usize {
            let long = at.is_multiple_of(SEG);
            let mut info = if long { XLP_LONG_HEADER } else { 0 };
            if rem > 0 {
                info |= XLP_FIRST_IS_CONTRECORD;
            }
            let h = &mut self.buf[at..];
            h[0..2].copy_from_slice(&0xD110u16.to_le_bytes());
            h[2..4].copy_from_slice(&info.to_le_bytes());
            h[4..8].copy_from_slice(&1u32.to_le_bytes());
            h[8..16].copy_from_slice(&(BASE + at as u64).to_le_bytes());
            h[16..20].copy_from_slice(&u32::try_from(rem).unwrap().to_le_bytes());
            if long {
                h[24..32].copy_from_slice(&7u64.to_le_bytes());
                h[32..36].copy_from_slice(&u32::try_from(SEG).unwrap().to_le_bytes());
                h[36..40].copy_from_slice(&u32::try_from(PAGE).unwrap().to_le_bytes());
                at + LONG_HEADER
            } else {
                at + SHORT_HEADER
            }
        }

        /// Appends a record; `false` (nothing written) when it would not fit in the buffer.
        fn record(&mut self, (rmid, info, len, time): Spec) -> bool {
            let mut main = vec![0xA5u8; len.max(8)];
            main[..8].copy_from_slice(&time.to_le_bytes());
            let mut body = Vec::new();
            if main.len() <= 255 {
                body.extend([255, u8::try_from(main.len()).unwrap()]);
            } else {
                body.push(254);
                body.extend(u32::try_from(main.len()).unwrap().to_le_bytes());
            }
            body.extend(&main);
            let tot = RECORD_HEADER + body.len();
            let mut rec = vec![0u8; RECORD_HEADER];
            rec[0..4].copy_from_slice(&u32::try_from(tot).unwrap().to_le_bytes());
            rec[4..8].copy_from_slice(&42u32.to_le_bytes());
            rec[8..16].copy_from_slice(&self.prev.to_le_bytes());
            rec[16] = info;
            rec[17] = rmid;
            rec.extend(&body);
            let mut c = Crc32c::new();
            c.update(&rec[RECORD_HEADER..]);
            c.update(&rec[..20]);
            let crc = c.finish();
            rec[20..24].copy_from_slice(&crc.to_le_bytes());
            // Room: the data plus a header per page it may cross, and a page to spare.
            if self.pos + tot + (tot / (PAGE - SHORT_HEADER) + 2) * LONG_HEADER + PAGE
                > self.buf.len()
            {
                return false;
            }
            if self.pos.is_multiple_of(PAGE) {
                self.pos = self.page_header(self.pos, 0);
            }
            let start = self.pos;
            let mut rest = &rec[..];
            while !rest.is_empty() {
                if self.pos.is_multiple_of(PAGE) {
                    self.pos = self.page_header(self.pos, rest.len());
                }
                let take = (PAGE - self.pos % PAGE).min(rest.len());
                self.buf[self.pos..self.pos + take].copy_from_slice(&rest[..take]);
                self.pos += take;
                rest = &rest[take..];
            }
            let xact = match (rmid == RM_XACT_ID, info & 0x70) {
                (true, 0x00 | 0x30) => Some((time, true)),
                (true, 0x20 | 0x40) => Some((time, false)),
                _ => None,
            };
            self.written.push(Written {
                start,
                end: self.pos,
                xact,
            });
            self.prev = BASE + start as u64;
            self.pos = align(self.pos);
            true
        }

        /// The model's answer for segments `from..to`: the last transaction whose record starts
        /// in them and ends before their end.
        fn expected(&self, from: usize, to: usize) -> Option<LastTransaction> {
            self.written
                .iter()
                .filter(|w| w.start >= from * SEG && w.end <= to * SEG)
                .filter_map(|w| {
                    let (micros, committed) = w.xact?;
                    Some(LastTransaction {
                        time: Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).single()?
                            + TimeDelta::microseconds(micros),
                        lsn: BASE + w.start as u64,
                        committed,
                    })
                })
                .next_back()
        }

        fn segments(&self, from: usize, to: usize) -> Vec<Segment<'_>> {
            (from..to)
                .map(|i| Segment {
                    name: NAMES[i],
                    data: &self.buf[i * SEG..(i + 1) * SEG],
                })
                .collect()
        }
    }

    const NAMES: [&str; SEGS] = [
        "000000010000000000000020",
        "000000010000000000000021",
        "000000010000000000000022",
    ];

    fn spec() -> impl Strategy<Value = Spec> {
        let rmid = prop_oneof![3 => Just(RM_XACT_ID), 1 => Just(10u8), 1 => Just(RM_XLOG_ID)];
        // xact: commit, commit prepared, abort, abort prepared, and others (assignment: 0x50).
        let info = prop_oneof![
            Just(0x00u8),
            Just(0x30),
            Just(0x20),
            Just(0x40),
            Just(0x50),
            Just(0x10)
        ];
        // Sizes from a few bytes to two pages and more, so records cross pages and segments.
        let len = prop_oneof![3 => 8usize..200, 2 => 200usize..3000, 1 => 3000usize..20_000];
        // Up to 2030 (in microseconds since 2000).
        (rmid, info, len, 0i64..946_684_800_000_000)
    }

    fn wal(specs: &[Spec]) -> Wal {
        let mut w = Wal::new();
        for s in specs {
            // No XLOG_SWITCH: the model does not follow one.
            let s = if s.1 & 0xF0 == XLOG_SWITCH && s.0 == RM_XLOG_ID {
                (s.0, 0x00, s.2, s.3)
            } else {
                *s
            };
            if !w.record(s) {
                break;
            }
        }
        // Archived segments are written ones: records reach into the last (a segment past the
        // end of the WAL is never archived).
        while w.pos < (SEGS - 1) * SEG + PAGE {
            assert!(w.record((10, 0x00, 1000, 0)), "room for a filler record");
        }
        w
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn finds_the_models_last_transaction_in_any_run_of_segments(
            specs in proptest::collection::vec(spec(), 1..80)
        ) {
            let w = wal(&specs);
            for (from, to) in [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)] {
                let got = last_transaction(&w.segments(from, to));
                prop_assert_eq!(got, Ok(w.expected(from, to)), "segments {}..{}", from, to);
            }
        }

        #[test]
        fn a_truncated_segment_is_an_error_naming_it(
            specs in proptest::collection::vec(spec(), 1..60),
            which in 0usize..SEGS,
            cut in 0usize..SEG,
        ) {
            let w = wal(&specs);
            let mut segs = w.segments(0, SEGS);
            segs[which].data = &segs[which].data[..cut];
            let e = last_transaction(&segs).unwrap_err();
            prop_assert_eq!(e.segment, NAMES[which]);
        }

        #[test]
        fn a_damaged_byte_is_an_error_or_the_same_answer(
            specs in proptest::collection::vec(spec(), 1..60),
            at in any::<proptest::sample::Index>(),
            bit in 0u8..8,
            from in 0usize..2,
        ) {
            let w = wal(&specs);
            let expected = w.expected(from, SEGS);
            let mut bad = w.buf.clone();
            // Anywhere in what was written, or in the zeros right after it.
            let end = (w.pos + 64).max(from * SEG + 64).min(bad.len());
            let i = from * SEG + at.index(end - from * SEG);
            bad[i] ^= 1 << bit;
            let segs: Vec<Segment<'_>> = (from..SEGS)
                .map(|s| Segment { name: NAMES[s], data: &bad[s * SEG..(s + 1) * SEG] })
                .collect();
            match last_transaction(&segs) {
                Err(e) => prop_assert!(NAMES[from..].contains(&e.segment.as_str()), "{}", e),
                Ok(got) => prop_assert_eq!(got, expected, "byte {} bit {} flipped", i, bit),
            }
        }
    }
}
