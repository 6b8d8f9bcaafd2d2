//! The keys of a deletion, held compactly: a backup's few keys as they are, a run of WAL segments
//! as its timeline, first and last position and how its keys are spelt. A plan that deletes a
//! million segments names every key (in its JSON, to the executor) by spelling them one at a
//! time as they are read, never all at once (issue 14).

use crate::barman::runs::{KeyBase, Shape};
use serde::{Serialize, Serializer};
use std::borrow::Cow;

/// Keys in deletion order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keys {
    pieces: Vec<Piece>,
    len: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    One(String),
    /// Segments `first..=last` of timeline `tl`.
    Segments {
        base: KeyBase,
        tl: u32,
        first: u64,
        last: u64,
        shape: Shape,
    },
}

impl Keys {
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push(&mut self, key: String) {
        self.pieces.push(Piece::One(key));
        self.len += 1;
    }

    /// Adds segments `first..=last` of timeline `tl`, spelt `shape`.
    pub fn push_segments(&mut self, base: &KeyBase, tl: u32, first: u64, last: u64, shape: &Shape) {
        if last < first {
            return;
        }
        self.len += usize::try_from(last - first + 1).unwrap_or(usize::MAX);
        self.pieces.push(Piece::Segments {
            base: base.clone(),
            tl,
            first,
            last,
            shape: shape.clone(),
        });
    }

    /// Every key, in order, spelt as it is reached.
    pub fn iter(&self) -> impl Iterator<Item = Cow<'_, str>> + '_ {
        self.pieces
            .iter()
            .flat_map(|piece| -> Box<dyn Iterator<Item = Cow<'_, str>> + '_> {
                match piece {
                    Piece::One(k) => Box::new(std::iter::once(Cow::Borrowed(k.as_str()))),
                    Piece::Segments {
                        base,
                        tl,
                        first,
                        last,
                        shape,
                    } => {
                        Box::new((*first..=*last).map(move |p| Cow::Owned(base.key(*tl, p, shape))))
                    }
                }
            })
    }

    #[must_use]
    pub fn first(&self) -> Option<String> {
        self.iter().next().map(Cow::into_owned)
    }

    /// Every key, spelt out (for tests and small plans).
    #[must_use]
    pub fn to_vec(&self) -> Vec<String> {
        self.iter().map(Cow::into_owned).collect()
    }

    /// The keys held as they are, and the WAL held as runs: `(timeline, first, last)`.
    pub(crate) fn parts(&self) -> (Vec<&str>, Vec<(u32, u64, u64)>) {
        let mut one = Vec::new();
        let mut spans = Vec::new();
        for p in &self.pieces {
            match p {
                Piece::One(k) => one.push(k.as_str()),
                Piece::Segments {
                    tl, first, last, ..
                } => spans.push((*tl, *first, *last)),
            }
        }
        (one, spans)
    }
}

impl From<Vec<String>> for Keys {
    fn from(keys: Vec<String>) -> Self {
        Self {
            len: keys.len(),
            pieces: keys.into_iter().map(Piece::One).collect(),
        }
    }
}

impl Serialize for Keys {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_spelt_in_order_between_plain_keys() {
        let base = KeyBase {
            wals: "srv/wals/".into(),
            segment_size: 16 * 1024 * 1024,
        };
        let mut k = Keys::from(vec!["a".to_string()]);
        k.push_segments(&base, 1, 255, 256, &Shape::Canonical(".gz".into()));
        k.push("z".into());
        assert_eq!(k.len(), 4);
        assert_eq!(
            k.to_vec(),
            [
                "a",
                "srv/wals/0000000100000000/0000000100000000000000FF.gz",
                "srv/wals/0000000100000001/000000010000000100000000.gz",
                "z"
            ]
        );
        assert_eq!(
            serde_json::to_value(&k).unwrap().as_array().unwrap().len(),
            4
        );
    }
}
