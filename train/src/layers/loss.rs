//! Softmax cross-entropy loss, mean over the batch, with its gradient
//! `(softmax(z) - onehot(label)) / batch`. Computed with the max-subtraction trick in f64.

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Loss value, gradient and accuracy of one batch.
#[derive(Debug, Clone)]
pub struct LossOutput {
    /// Mean cross-entropy.
    pub loss: f64,
    /// Gradient with respect to the logits, same shape.
    pub grad: Tensor,
    /// Rows whose largest logit (first on ties) is the label.
    pub correct: usize,
}

/// Softmax cross-entropy of `logits` (`[batch, classes]`) against `labels`.
pub fn softmax_cross_entropy(logits: &Tensor, labels: &[u8]) -> Result<LossOutput> {
    let bad = |expected: String| Error::Shape { layer: "loss".into(), got: logits.shape.clone(), expected };
    if logits.shape.len() != 2 || logits.shape[0] != labels.len() || logits.shape[0] == 0 {
        return Err(bad(format!("[{}, classes]", labels.len())));
    }
    let (b, c) = (logits.shape[0], logits.shape[1]);
    if let Some(&l) = labels.iter().find(|&&l| usize::from(l) >= c) {
        return Err(bad(format!("at least {} classes for label {l}", l as usize + 1)));
    }
    let mut grad = Tensor::zeros(&logits.shape);
    let (mut loss, mut correct) = (0.0f64, 0usize);
    for ((row, g), &label) in logits.data.chunks(c).zip(grad.data.chunks_mut(c)).zip(labels) {
        let (mut arg, mut mx) = (0, f32::NEG_INFINITY);
        for (i, &v) in row.iter().enumerate() {
            if v > mx {
                mx = v;
                arg = i;
            }
        }
        correct += usize::from(arg == usize::from(label));
        let sum: f64 = row.iter().map(|&v| (f64::from(v) - f64::from(mx)).exp()).sum();
        let log_sum = sum.ln() + f64::from(mx);
        loss += log_sum - f64::from(row[usize::from(label)]);
        for (i, (gi, &v)) in g.iter_mut().zip(row).enumerate() {
            let p = (f64::from(v) - log_sum).exp();
            let t = if i == usize::from(label) { 1.0 } else { 0.0 };
            *gi = ((p - t) / b as f64) as f32;
        }
    }
    Ok(LossOutput { loss: loss / b as f64, grad, correct })
}
