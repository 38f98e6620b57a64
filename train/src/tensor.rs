//! A minimal dense FP32 tensor: a shape and row-major data. All CPU training math is FP32
//! (the hardware uses FP16 GEMM operands with FP32 accumulation; the CPU reference does not
//! round operands to FP16).

/// Row-major FP32 tensor. Activations are `[batch, features]` or `[batch, C, H, W]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values, row-major.
    pub data: Vec<f32>,
}

impl Tensor {
    /// A tensor of zeros.
    pub fn zeros(shape: &[usize]) -> Self {
        Self { shape: shape.to_vec(), data: vec![0.0; shape.iter().product()] }
    }

    /// A tensor from a shape and data; `None` when the lengths disagree.
    pub fn from_vec(shape: &[usize], data: Vec<f32>) -> Option<Self> {
        (shape.iter().product::<usize>() == data.len()).then(|| Self { shape: shape.to_vec(), data })
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when the tensor holds no element.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The leading (batch) dimension, 0 for a scalar.
    pub fn batch(&self) -> usize {
        self.shape.first().copied().unwrap_or(0)
    }
}
