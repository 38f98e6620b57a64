//! The N:M sparsity rule, defined once for the whole project.
//!
//! A weight is N:M sparse along a dimension when every group of `M` consecutive elements along
//! that dimension keeps at most `N` nonzeros. The mask rule (SAT.md section 2): in each group of
//! `M`, keep the `N` entries of largest magnitude; **ties go to the earlier index** (ours). The
//! training reference (`train`), the SORE model in the simulator and the RTL all call or mirror
//! [`keep_in_group`], so the three agree on every mask.
//!
//! Two layouts matter for BDWP on a weight `W` of shape `C_out x K` stored row-major:
//! - FF order groups `M` consecutive elements along `K` (within a row): [`mask_along_rows`];
//! - BP order groups `M` consecutive elements along `C_out` (within a column): [`mask_along_cols`].
//!
//! The vocabulary of the training methods ([`Method`], [`BpMaskSource`]) lives here too, so the
//! training reference and the compiler parse and print them the same way.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// An N:M ratio: keep `n` of every `m` consecutive elements. `n == m` means dense.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NmRatio {
    /// Kept elements per group.
    pub n: u32,
    /// Group size.
    pub m: u32,
}

/// Why an N:M ratio string or value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("N:M ratio `{text}`: {reason}")]
pub struct NmParseError {
    /// The text as given.
    pub text: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl NmRatio {
    /// Builds a ratio, checking `1 <= n <= m <= 16`.
    pub fn new(n: u32, m: u32) -> Result<Self, NmParseError> {
        let text = format!("{n}:{m}");
        if n == 0 {
            return Err(NmParseError { text, reason: "N must be at least 1" });
        }
        if n > m {
            return Err(NmParseError { text, reason: "N must not exceed M" });
        }
        if m > 16 {
            return Err(NmParseError { text, reason: "M must be at most 16" });
        }
        Ok(Self { n, m })
    }

    /// True when nothing is pruned (`n == m`).
    pub fn is_dense(self) -> bool {
        self.n == self.m
    }

    /// Fraction of elements kept, `n / m`.
    pub fn density(self) -> f64 {
        f64::from(self.n) / f64::from(self.m)
    }

    /// Number of kept elements when a dimension of `len` elements is compressed.
    /// `len` must be a multiple of `m` (see [`NmRatio::fits`]).
    pub fn compressed_len(self, len: usize) -> usize {
        len / self.m as usize * self.n as usize
    }

    /// True when a dimension of `len` elements splits into whole groups.
    pub fn fits(self, len: usize) -> bool {
        len.is_multiple_of(self.m as usize)
    }
}

impl fmt::Display for NmRatio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.n, self.m)
    }
}

impl FromStr for NmRatio {
    type Err = NmParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason| NmParseError { text: s.to_string(), reason };
        let (n, m) = s.trim().split_once(':').ok_or_else(|| bad("expected the form N:M, e.g. 2:8"))?;
        let n = n.trim().parse::<u32>().map_err(|_| bad("N is not a whole number"))?;
        let m = m.trim().parse::<u32>().map_err(|_| bad("M is not a whole number"))?;
        NmRatio::new(n, m).map_err(|e| NmParseError { text: s.to_string(), reason: e.reason })
    }
}

impl TryFrom<String> for NmRatio {
    type Error = NmParseError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<NmRatio> for String {
    fn from(r: NmRatio) -> String {
        r.to_string()
    }
}

/// The training method (SAT.md section 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Dense training.
    Dense,
    /// SR-STE: N:M along `K` in the forward pass only; dense backward-data.
    Srste,
    /// BDWP: N:M along `K` forward and along `C_out` for the backward-data pass.
    Bdwp,
}

impl FromStr for Method {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, crate::Error> {
        match s {
            "dense" => Ok(Method::Dense),
            "srste" | "sr-ste" => Ok(Method::Srste),
            "bdwp" => Ok(Method::Bdwp),
            _ => Err(crate::Error::UnknownName { what: "method", name: s.to_string(), expected: "dense, srste, bdwp" }),
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Method::Dense => "dense",
            Method::Srste => "srste",
            Method::Bdwp => "bdwp",
        })
    }
}

/// Which weights BDWP's backward mask ranks (SAT.md leaves it open; default `dense`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BpMaskSource {
    /// Rank the dense master weights `W`.
    Dense,
    /// Rank the forward-pruned weights `W * mask_ff`.
    ForwardMasked,
}

impl FromStr for BpMaskSource {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, crate::Error> {
        match s {
            "dense" => Ok(BpMaskSource::Dense),
            "forward_masked" | "forward-masked" => Ok(BpMaskSource::ForwardMasked),
            _ => {
                Err(crate::Error::UnknownName { what: "BP mask source", name: s.to_string(), expected: "dense, forward_masked" })
            }
        }
    }
}

impl fmt::Display for BpMaskSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BpMaskSource::Dense => "dense",
            BpMaskSource::ForwardMasked => "forward_masked",
        })
    }
}

/// Largest group size any ratio may use.
const MAX_GROUP: usize = 16;

/// The mask rule, streaming: visits `group` in index order and inserts each element into a
/// top-`n` stack ordered by decreasing magnitude, an element going below every kept element
/// of equal magnitude (so ties go to the earlier index), exactly as a SORE lane does. Writes
/// the kept indices, in increasing order, to the front of `kept` and returns how many.
fn top_n<T>(group: &[T], n: usize, magnitude: impl Fn(&T) -> f64, kept: &mut [usize; MAX_GROUP]) -> usize {
    let n = n.min(group.len()).min(MAX_GROUP);
    let mut stack = [(f64::NEG_INFINITY, 0usize); MAX_GROUP];
    let mut len = 0;
    for (i, x) in group.iter().enumerate() {
        let v = magnitude(x);
        let v = if v.is_nan() { f64::NEG_INFINITY } else { v };
        // First slot whose magnitude is strictly smaller.
        let pos = stack[..len].iter().position(|&(s, _)| s < v).unwrap_or(len);
        // A full stack drops its last element; an element below all n kept ones is dropped.
        if pos < n {
            let end = len.min(n - 1);
            stack.copy_within(pos..end, pos + 1);
            stack[pos] = (v, i);
            len = (len + 1).min(n);
        }
    }
    for (slot, &(_, i)) in kept.iter_mut().zip(&stack[..len]) {
        *slot = i;
    }
    kept[..len].sort_unstable();
    len
}

/// The mask rule on one group: returns, in increasing index order, the indices of the `n`
/// entries of `group` with the largest magnitude, ties going to the earlier index.
///
/// `magnitude` maps an element to the value compared (callers pass `|w|` in their own type).
/// NaN magnitudes compare as smaller than every number, so they are pruned first. Groups
/// hold at most 16 elements (the largest M of an [`NmRatio`]).
pub fn keep_in_group<T>(group: &[T], n: usize, magnitude: impl Fn(&T) -> f64) -> Vec<usize> {
    assert!(group.len() <= MAX_GROUP, "keep_in_group: groups hold at most {MAX_GROUP} elements");
    let mut kept = [0; MAX_GROUP];
    let len = top_n(group, n, magnitude, &mut kept);
    kept[..len].to_vec()
}

/// 0/1 mask (1 = kept) of a row-major `rows x cols` matrix with groups of `ratio.m` consecutive
/// elements along each row (FF order for a `C_out x K` weight). `cols` must be a multiple of `m`.
pub fn mask_along_rows(values: &[f32], rows: usize, cols: usize, ratio: NmRatio) -> Vec<u8> {
    assert_eq!(values.len(), rows * cols, "mask_along_rows: shape does not match the data");
    assert!(ratio.fits(cols), "mask_along_rows: {cols} columns do not split into groups of {}", ratio.m);
    let m = ratio.m as usize;
    let mut mask = vec![0u8; values.len()];
    if values.is_empty() {
        return mask;
    }
    for (row_values, row_mask) in values.chunks(cols).zip(mask.chunks_mut(cols)) {
        for (group, group_mask) in row_values.chunks(m).zip(row_mask.chunks_mut(m)) {
            let mut kept = [0; MAX_GROUP];
            let len = top_n(group, ratio.n as usize, |w| f64::from(w.abs()), &mut kept);
            for &i in &kept[..len] {
                group_mask[i] = 1;
            }
        }
    }
    mask
}

/// 0/1 mask of a row-major `rows x cols` matrix with groups of `ratio.m` consecutive elements
/// along each column (BP order for a `C_out x K` weight: groups along `C_out`). `rows` must be a
/// multiple of `m`.
pub fn mask_along_cols(values: &[f32], rows: usize, cols: usize, ratio: NmRatio) -> Vec<u8> {
    assert_eq!(values.len(), rows * cols, "mask_along_cols: shape does not match the data");
    assert!(ratio.fits(rows), "mask_along_cols: {rows} rows do not split into groups of {}", ratio.m);
    let m = ratio.m as usize;
    let mut mask = vec![0u8; values.len()];
    let mut group = vec![0f32; m];
    for col in 0..cols {
        for group_start in (0..rows).step_by(m) {
            for (i, g) in group.iter_mut().enumerate() {
                *g = values[(group_start + i) * cols + col];
            }
            let mut kept = [0; MAX_GROUP];
            let len = top_n(&group, ratio.n as usize, |w| f64::from(w.abs()), &mut kept);
            for &i in &kept[..len] {
                mask[(group_start + i) * cols + col] = 1;
            }
        }
    }
    mask
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_prints() {
        let r: NmRatio = "2:8".parse().unwrap();
        assert_eq!(r, NmRatio { n: 2, m: 8 });
        assert_eq!(r.to_string(), "2:8");
        assert!("3:2".parse::<NmRatio>().is_err());
        assert!("0:4".parse::<NmRatio>().is_err());
        assert!("2-8".parse::<NmRatio>().is_err());
    }

    #[test]
    fn ties_go_to_the_earlier_index() {
        assert_eq!(keep_in_group(&[1.0f32, -1.0, 1.0, 0.5], 2, |w| f64::from(w.abs())), vec![0, 1]);
        assert_eq!(keep_in_group(&[0.0f32; 8], 2, |w| f64::from(w.abs())), vec![0, 1]);
    }

    #[test]
    fn streaming_insertion_equals_the_sorted_definition() {
        // Values with many ties, NaN and signs; every group size and n.
        let pool = [0.5f32, -0.5, 1.0, 0.0, -0.0, 2.0, f32::NAN, 1.0, -2.0, 0.25, 0.5, 3.0, -3.0, 0.5, 1.0, 0.0];
        for len in 1..=16 {
            for start in 0..pool.len() {
                let group: Vec<f32> = (0..len).map(|i| pool[(start + i * 7) % pool.len()]).collect();
                for n in 1..=len {
                    let key = |i: usize| if group[i].is_nan() { f64::NEG_INFINITY } else { f64::from(group[i].abs()) };
                    let mut order: Vec<usize> = (0..len).collect();
                    order.sort_by(|&a, &b| key(b).partial_cmp(&key(a)).unwrap());
                    let mut want: Vec<usize> = order[..n].to_vec();
                    want.sort_unstable();
                    assert_eq!(keep_in_group(&group, n, |w| f64::from(w.abs())), want, "{group:?} n={n}");
                }
            }
        }
    }

    #[test]
    fn column_groups_follow_the_columns() {
        // 4x2, groups of 4 down each column, keep 1.
        let w = [1.0, 9.0, 5.0, 0.0, -7.0, 3.0, 2.0, 3.0];
        let mask = mask_along_cols(&w, 4, 2, NmRatio::new(1, 4).unwrap());
        assert_eq!(mask, vec![0, 1, 0, 0, 1, 0, 0, 0]);
    }

    proptest! {
        #[test]
        fn rows_keep_exactly_n_largest(
            ratio in prop_oneof![Just((1u32, 4u32)), Just((2, 4)), Just((1, 8)), Just((2, 8))],
            groups in 1usize..6, rows in 1usize..5,
            seed in proptest::collection::vec(-4i32..4, 64 * 5 * 8),
        ) {
            let ratio = NmRatio::new(ratio.0, ratio.1).unwrap();
            let cols = groups * ratio.m as usize;
            let w: Vec<f32> = seed[..rows * cols].iter().map(|&v| v as f32 * 0.5).collect();
            let mask = mask_along_rows(&w, rows, cols, ratio);
            for (gw, gm) in w.chunks(ratio.m as usize).zip(mask.chunks(ratio.m as usize)) {
                prop_assert_eq!(gm.iter().filter(|&&b| b == 1).count(), ratio.n as usize);
                let min_kept = gw.iter().zip(gm).filter(|(_, &b)| b == 1).map(|(v, _)| v.abs()).fold(f32::INFINITY, f32::min);
                let max_dropped = gw.iter().zip(gm).filter(|(_, &b)| b == 0).map(|(v, _)| v.abs()).fold(0.0, f32::max);
                prop_assert!(min_kept >= max_dropped);
            }
            // Column masks of the transpose equal row masks of the original.
            let mut t = vec![0f32; w.len()];
            for r in 0..rows { for c in 0..cols { t[c * rows + r] = w[r * cols + c]; } }
            let mt = mask_along_cols(&t, cols, rows, ratio);
            for r in 0..rows { for c in 0..cols { prop_assert_eq!(mt[c * rows + r], mask[r * cols + c]); } }
        }
    }
}
