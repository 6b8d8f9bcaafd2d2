//! Writing files without their all-zero stretches: the file's length is allocated first with
//! `fallocate` (blocks that read as zeros and are really allocated, not a sparse hole, so
//! PostgreSQL writing into them later cannot run out of space), then only the non-zero stretches
//! are written. Used for WAL segments (`wal-get`: a switched segment is mostly zeros) and for
//! the files of a base backup (`restore`).

use std::os::unix::fs::FileExt;

/// All-zero stretches of this size are not written.
pub const ZERO_RUN: usize = 64 << 10;

/// Allocates `len` bytes of zeros for the file (Linux `fallocate`, mode 0); `false` where the
/// filesystem cannot.
pub fn allocate(file: &std::fs::File, len: u64) -> bool {
    rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, len).is_ok()
}

/// Writes `block` at `at` except its all-zero [`ZERO_RUN`] stretches (already zeros on disk:
/// the file was [`allocate`]d).
pub fn write_nonzero(file: &std::fs::File, block: &[u8], at: u64) -> std::io::Result<()> {
    let runs: Vec<&[u8]> = block.chunks(ZERO_RUN).collect();
    let mut i = 0;
    while i < runs.len() {
        if is_zero(runs[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < runs.len() && !is_zero(runs[i]) {
            i += 1;
        }
        let end = (i * ZERO_RUN).min(block.len());
        file.write_all_at(
            &block[start * ZERO_RUN..end],
            at + (start * ZERO_RUN) as u64,
        )?;
    }
    Ok(())
}

/// Whether every byte is zero: compared with zeros, which is a `memcmp`, fast in any build.
#[must_use]
pub fn is_zero(chunk: &[u8]) -> bool {
    static ZEROS: [u8; ZERO_RUN] = [0; ZERO_RUN];
    chunk.chunks(ZERO_RUN).all(|c| c == &ZEROS[..c.len()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeros_are_told_apart() {
        assert!(is_zero(&[]) && is_zero(&[0; 100]) && is_zero(&vec![0; 3 * ZERO_RUN + 7]));
        assert!(!is_zero(&[0, 0, 0, 9]));
        let mut late = vec![0; 2 * ZERO_RUN];
        late[ZERO_RUN + 5] = 1;
        assert!(!is_zero(&late));
    }
}
