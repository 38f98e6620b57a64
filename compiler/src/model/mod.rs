//! The model description: what one training iteration computes, layer by layer, before it is
//! lowered onto the machine.
//!
//! - [`Model`], [`Layer`], [`LayerKind`]: the IR, a list of named layers in execution order,
//!   each naming its inputs (so residual adds have two). [`Model::infer`] checks it and gives,
//!   for a batch, every layer's shapes, parameters and training-phase GEMMs ([`LayerInfo`],
//!   [`LayerGemms`]; the convention is below);
//! - [`zoo`]: named models (`mlp` ... `deit-tiny`);
//! - [`load`] / [`parse`]: model files in TOML or JSON (format below);
//! - [`from_topology`]: SCALE-Sim topology CSVs as models;
//! - [`SparsityPolicy`], [`resolve`]: dense / SR-STE / BDWP weight formats per layer.
//!
//! # GEMMs of a layer
//! Every GEMM is `out[M x N] = in[M x K] . W[K x N]`, repeated `groups` times (independent
//! GEMMs of the same shape): [`Gemm`]. For a weight layer with `C_in` input channels,
//! `C_out` output channels, `g` groups, a `kh x kw` kernel, an `OH x OW` output and batch `B`
//! (a linear layer is `kh = kw = OH = OW = 1`; on tokens, `OH*OW` is the token count `T`);
//! `P = B*OH*OW`, `Kg = C_in/g*kh*kw`, `Ng = C_out/g`:
//!
//! | phase | GEMM | (M, N, K) per group | reduction |
//! |---|---|---|---|
//! | FF | `Y = X_im2col . W^T` | `(P, Ng, Kg)` | `K` (input channels x window) |
//! | BP | `dX_im2col = dY . W` | `(P, Kg, Ng)` | `C_out` |
//! | WU | `dW = dY^T . X_im2col` | `(Ng, Kg, P)` | output positions |
//!
//! The three have the same dense MAC count `g*P*Ng*Kg`. BP produces `dX` in im2col space; the
//! col2im scatter-add back to `[C_in, H, W]` (a no-op for 1x1 stride-1 convs and linear layers)
//! is separate vector work, as are bias gradients (a sum of `dY` over `P`).
//!
//! Attention's two activation-by-activation GEMMs have no weights, so no WU and nothing to
//! prune; with `h` heads of width `dh = D/h`, `T_q` queries and `T_k` keys, each is `B*h`
//! independent GEMMs, and its BP is two GEMMs, one per operand, each with the FF MAC count:
//!
//! | layer | FF | BP for `inputs[0]` | BP for `inputs[1]` |
//! |---|---|---|---|
//! | `attention_scores`: `S = Q . K^T` | `(T_q, T_k, dh)` | `dQ = dS . K`: `(T_q, dh, T_k)` | `dK = dS^T . Q`: `(T_k, dh, T_q)` |
//! | `attention_values`: `O = P . V` | `(T_q, dh, T_k)` | `dP = dO . V^T`: `(T_q, T_k, dh)` | `dV = P^T . dO`: `(T_k, dh, T_q)` |
//!
//! Parameter counts include biases, batch-norm and layer-norm scale and shift (2 per
//! channel; batch-norm running statistics are buffers, not parameters), and DeiT's class token
//! and position embedding.
//!
//! # Model files
//! TOML (`.toml`) or the same structure in JSON (`.json`, `layers` an array of objects):
//!
//! ```toml
//! name = "example"          # optional; default: the file stem
//! input = [3, 32, 32]       # per sample: [C, H, W] image, [T, D] tokens or [F] features
//! classes = 10              # required with a softmax_cross_entropy loss, which must be last
//!
//! [[layers]]
//! name = "conv1"            # unique; "input" is reserved for the model input
//! kind = "conv2d"
//! out_channels = 16
//! kernel = 3                # or [kh, kw]
//! stride = 1                # default 1
//! padding = 1               # default 0, every side
//! groups = 1                # default 1; groups = C_in is depthwise (always dense)
//! bias = false              # default true (as in PyTorch), conv2d and linear
//! sparsity = "dense"        # optional: "dense" or "N:M", fixed for this layer (weight layers)
//!
//! [[layers]]
//! name = "add1"
//! kind = "add"
//! inputs = ["conv2", "conv1"]  # default: the previous layer (the model input for the first)
//! ```
//!
//! Kinds and their fields (`inputs` and `sparsity` apart):
//!
//! | kind | fields | input -> output |
//! |---|---|---|
//! | `input` | `shape` | none -> `shape` (an independent tensor) |
//! | `conv2d` | `out_channels`, `kernel`, `stride`, `padding`, `groups`, `bias`, `ceil_mode` (default false) | image -> image |
//! | `linear` | `out_features`, `bias` | `[F]` -> `[out]`, or `[T, D]` -> `[T, out]` |
//! | `relu`, `gelu` | | any -> same |
//! | `max_pool` | `kernel`, `stride` (default `kernel`), `padding` | image -> image |
//! | `avg_pool` | `kernel`, `stride` (default `kernel`) | image -> image |
//! | `global_avg_pool` | | `[C, H, W]` -> `[C, 1, 1]` |
//! | `batch_norm` | | image or `[F]` -> same |
//! | `layer_norm` | | `[T, D]` or `[F]` -> same |
//! | `add` | two `inputs` | two equal shapes -> same |
//! | `flatten` | | image or tokens -> `[F]` (a linear layer needs it after an image) |
//! | `to_tokens` | | `[C, H, W]` -> `[H*W, C]` |
//! | `class_token` | | `[T, D]` -> `[T+1, D]` (learned class token and position embedding) |
//! | `take_class_token` | | `[T, D]` -> `[D]` |
//! | `attention_scores` | `heads`, `inputs = [q, k]` | `[Tq, D]`, `[Tk, D]` -> scores `[heads, Tq, Tk]` |
//! | `attention_softmax` | | scores -> scores |
//! | `attention_values` | `inputs = [probabilities, v]` | scores, `[Tk, D]` -> `[Tq, D]` |
//! | `softmax_cross_entropy` | | `[classes]` -> `[1]` |
//!
//! Errors name the file, the line (of the layer's `[[layers]]` header in TOML; of the syntax
//! error in both formats), the layer and the problem: unknown kind or field, missing field,
//! unknown or later input, duplicate name, shape mismatch, or a per-layer N:M whose reductions
//! (FF `K`, BP `C_out` per group) are not multiples of `M`. `compiler/models/example.toml` is
//! a complete example.

mod file;
mod ir;
mod policy;
mod topology;
pub mod zoo;

pub use file::{load, parse, ModelFormat};
pub use ir::{Gemm, Layer, LayerGemms, LayerInfo, LayerKind, Model, PhaseMacs, Shape, MODEL_INPUT};
pub use policy::{resolve, BpMaskSource, LayerFormats, Method, SparsityPolicy};
pub use topology::from_topology;
