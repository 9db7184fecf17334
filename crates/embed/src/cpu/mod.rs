//! The default CPU encoder: BERT's forward pass written for short texts on a few cores.
//!
//! What makes it fast, measured against candle's stock `BertModel` on the same machine:
//! - packed batches: the texts of a batch are laid end to end, so no padding is computed
//!   at all (attention is taken per text), and the matrix products see one tall matrix;
//! - the weights are packed once at load for mnemo's own matrix kernel (`matmul`), so no
//!   call repacks 22 M weights, with the query, key and value projections in one product;
//! - everything between two products is one fused pass over the rows (see `kernels`).
//!
//! The arithmetic is BERT's, in f32: results match sentence-transformers to float rounding.
//! MPNet (all-mpnet-base-v2) is the same encoder with other weight names, positions counted
//! after the padding index, and a relative position bias added to every attention score.

mod kernels;
mod matmul;

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};

use crate::error::{EmbedError, Result};
use crate::model_dir::{BertConfig, ModelFiles};
use matmul::{PackedMatrix, matmul, matmul_packed_strided, pack_strided};

/// Weights of one encoder layer; matrices packed once for [`matmul`].
struct Layer {
    /// Query, key and value projections side by side: `hidden` in, `3 * hidden` out.
    qkv_weight: PackedMatrix,
    qkv_bias: Vec<f32>,
    attn_out_weight: PackedMatrix,
    attn_out_bias: Vec<f32>,
    attn_norm_gamma: Vec<f32>,
    attn_norm_beta: Vec<f32>,
    inter_weight: PackedMatrix,
    inter_bias: Vec<f32>,
    out_weight: PackedMatrix,
    out_bias: Vec<f32>,
    out_norm_gamma: Vec<f32>,
    out_norm_beta: Vec<f32>,
}

/// Whether the CPU has the AVX2 and FMA instructions the fast kernels are built for;
/// `std` caches the answer, so this is cheap enough to ask on every call.
#[cfg(target_arch = "x86_64")]
fn has_avx2_fma() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
}

/// How a token's position enters its embedding.
#[derive(Clone, Copy)]
enum Positions {
    /// BERT: the token's index.
    Index,
    /// MPNet (RoBERTa's rule): `padding_idx` + the number of non-padding tokens up to and
    /// including this one; a padding token gets `padding_idx`.
    AfterPadding { padding_idx: u32 },
}

/// MPNet's relative position bias: one learned value per head and bucket of the distance
/// from the query token to the key token, shared by every layer; laid out at load by head
/// and distance, so that a text's bias is a slice.
struct RelativeBias {
    /// `[head][d + span]` for distances `d` from `-span` to `span`.
    by_distance: Vec<f32>,
    span: usize,
}

impl RelativeBias {
    fn new(table: &[f32], buckets: usize, heads: usize, max_positions: usize) -> Self {
        let span = max_positions;
        let mut by_distance = Vec::with_capacity(heads * (2 * span + 1));
        for head in 0..heads {
            for at in 0..=2 * span {
                let relative = at as i64 - span as i64;
                by_distance.push(table[relative_bucket(relative, buckets) * heads + head]);
            }
        }
        Self { by_distance, span }
    }

    /// The bias of `head` for a text of `len` tokens: entry `d + len - 1` is that of keys `d`
    /// tokens after the query.
    fn for_text(&self, head: usize, len: usize) -> &[f32] {
        let row = &self.by_distance[head * (2 * self.span + 1)..][..2 * self.span + 1];
        &row[self.span + 1 - len..][..2 * len - 1]
    }
}

/// The bucket of `relative` = key position − query position, as MPNet's
/// `relative_position_bucket` computes it (bidirectional, exact below 8 tokens apart for 32
/// buckets, logarithmic up to 128, the last bucket beyond).
fn relative_bucket(relative: i64, buckets: usize) -> usize {
    const MAX_DISTANCE: f64 = 128.0;
    let half = (buckets / 2) as i64;
    let n = -relative;
    let mut bucket = if n < 0 { half } else { 0 };
    let n = n.abs();
    let max_exact = half / 2;
    if n < max_exact {
        bucket += n;
    } else {
        let large = max_exact
            + ((n as f64 / max_exact as f64).ln() / (MAX_DISTANCE / max_exact as f64).ln()
                * (half - max_exact) as f64) as i64;
        bucket += large.min(half - 1);
    }
    bucket as usize
}

pub struct CpuEncoder {
    hidden: usize,
    heads: usize,
    intermediate: usize,
    eps: f32,
    word_embeddings: Vec<f32>,
    /// Position embeddings with the token-type-0 embedding already added (mnemo embeds
    /// single texts, whose token types are all 0).
    position_embeddings: Vec<f32>,
    embed_norm_gamma: Vec<f32>,
    embed_norm_beta: Vec<f32>,
    layers: Vec<Layer>,
    vocab_size: usize,
    max_positions: usize,
    positions: Positions,
    relative_bias: Option<RelativeBias>,
}

/// Scratch space for one batch, kept by the embedder and reused by later batches and calls.
#[derive(Default)]
pub struct Workspace {
    hidden: Vec<f32>,
    qkv: Vec<f32>,
    context: Vec<f32>,
    projected: Vec<f32>,
    intermediate: Vec<f32>,
    scores: Vec<f32>,
    packed: Vec<f32>,
}

impl CpuEncoder {
    pub fn load(files: &ModelFiles) -> Result<Self> {
        let weight_error = |message: String| EmbedError::Weights {
            path: files.weights.clone(),
            message,
        };
        let tensors = candle_core::safetensors::load(&files.weights, &Device::Cpu)
            .map_err(|e| weight_error(e.to_string()))?;
        let mut weights = Weights {
            tensors,
            error: &weight_error,
        };
        let c: &BertConfig = &files.config;
        let h = c.hidden_size;

        let mpnet = c.is_mpnet();
        // Checkpoints exported from `BertModel` have no prefix; ones from `BertForX` have "bert."
        // (and MPNet's from `MPNetForMaskedLM`, "mpnet.").
        let prefix = if weights
            .tensors
            .contains_key("embeddings.word_embeddings.weight")
        {
            ""
        } else if mpnet {
            "mpnet."
        } else {
            "bert."
        };
        let word_embeddings = weights.take(
            &format!("{prefix}embeddings.word_embeddings.weight"),
            &[c.vocab_size, h],
        )?;
        let mut position_embeddings = weights.take(
            &format!("{prefix}embeddings.position_embeddings.weight"),
            &[c.max_position_embeddings, h],
        )?;
        if !mpnet {
            let token_types = weights.take(
                &format!("{prefix}embeddings.token_type_embeddings.weight"),
                &[c.type_vocab_size, h],
            )?;
            for row in position_embeddings.chunks_exact_mut(h) {
                for (p, t) in row.iter_mut().zip(&token_types[..h]) {
                    *p += t;
                }
            }
        }
        let embed_norm_gamma =
            weights.take(&format!("{prefix}embeddings.LayerNorm.weight"), &[h])?;
        let embed_norm_beta = weights.take(&format!("{prefix}embeddings.LayerNorm.bias"), &[h])?;
        let relative_bias = if mpnet {
            let buckets = c.relative_attention_num_buckets;
            let table = weights.take(
                &format!("{prefix}encoder.relative_attention_bias.weight"),
                &[buckets, c.num_attention_heads],
            )?;
            Some(RelativeBias::new(
                &table,
                buckets,
                c.num_attention_heads,
                c.max_position_embeddings,
            ))
        } else {
            None
        };
        // Where each layer's parts are, by architecture.
        let (query, key, value, attn_out, attn_norm) = if mpnet {
            (
                "attention.attn.q",
                "attention.attn.k",
                "attention.attn.v",
                "attention.attn.o",
                "attention.LayerNorm",
            )
        } else {
            (
                "attention.self.query",
                "attention.self.key",
                "attention.self.value",
                "attention.output.dense",
                "attention.output.LayerNorm",
            )
        };

        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for l in 0..c.num_hidden_layers {
            let p = format!("{prefix}encoder.layer.{l}.");
            let mut qkv_rows = Vec::with_capacity(3 * h * h);
            let mut qkv_bias = Vec::with_capacity(3 * h);
            for part in [query, key, value] {
                qkv_rows.extend(weights.take(&format!("{p}{part}.weight"), &[h, h])?);
                qkv_bias.extend(weights.take(&format!("{p}{part}.bias"), &[h])?);
            }
            let i = c.intermediate_size;
            let attn_out_weight = weights.take(&format!("{p}{attn_out}.weight"), &[h, h])?;
            layers.push(Layer {
                qkv_weight: PackedMatrix::from_linear(&qkv_rows, 3 * h, h),
                qkv_bias,
                attn_out_weight: PackedMatrix::from_linear(&attn_out_weight, h, h),
                attn_out_bias: weights.take(&format!("{p}{attn_out}.bias"), &[h])?,
                attn_norm_gamma: weights.take(&format!("{p}{attn_norm}.weight"), &[h])?,
                attn_norm_beta: weights.take(&format!("{p}{attn_norm}.bias"), &[h])?,
                inter_weight: PackedMatrix::from_linear(
                    &weights.take(&format!("{p}intermediate.dense.weight"), &[i, h])?,
                    i,
                    h,
                ),
                inter_bias: weights.take(&format!("{p}intermediate.dense.bias"), &[i])?,
                out_weight: PackedMatrix::from_linear(
                    &weights.take(&format!("{p}output.dense.weight"), &[h, i])?,
                    h,
                    i,
                ),
                out_bias: weights.take(&format!("{p}output.dense.bias"), &[h])?,
                out_norm_gamma: weights.take(&format!("{p}output.LayerNorm.weight"), &[h])?,
                out_norm_beta: weights.take(&format!("{p}output.LayerNorm.bias"), &[h])?,
            });
        }
        Ok(Self {
            hidden: h,
            heads: c.num_attention_heads,
            intermediate: c.intermediate_size,
            eps: c.layer_norm_eps as f32,
            word_embeddings,
            position_embeddings,
            embed_norm_gamma,
            embed_norm_beta,
            layers,
            vocab_size: c.vocab_size,
            max_positions: c.max_position_embeddings,
            positions: if mpnet {
                Positions::AfterPadding { padding_idx: 1 }
            } else {
                Positions::Index
            },
            relative_bias,
        })
    }

    /// Encodes a packed batch: `seqs[s]` is the token ids of text `s`. Writes one pooled,
    /// normalised vector per text into `out` (`seqs.len() * hidden` floats).
    ///
    /// The matrix products use `matmul_threads` threads of the current rayon pool: 1 when
    /// the caller runs several batches side by side, more for a lone batch.
    pub fn encode(
        &self,
        seqs: &[&[u32]],
        matmul_threads: usize,
        ws: &mut Workspace,
        out: &mut [f32],
    ) {
        let h = self.hidden;
        let total: usize = seqs.iter().map(|s| s.len()).sum();
        debug_assert_eq!(out.len(), seqs.len() * h);
        resize(&mut ws.hidden, total * h);
        resize(&mut ws.qkv, total * 3 * h);
        resize(&mut ws.context, total * h);
        resize(&mut ws.projected, total * h);
        resize(&mut ws.intermediate, total * self.intermediate);

        self.embed_tokens(seqs, &mut ws.hidden);
        for layer in &self.layers {
            self.layer(layer, seqs, matmul_threads, ws);
        }

        let mut start = 0;
        for (seq, vector) in seqs.iter().zip(out.chunks_exact_mut(h)) {
            let rows = &ws.hidden[start * h..(start + seq.len()) * h];
            kernels::mean_pool_normalize(rows, vector);
            start += seq.len();
        }
    }

    fn embed_tokens(&self, seqs: &[&[u32]], hidden: &mut [f32]) {
        let h = self.hidden;
        let mut rows = hidden.chunks_exact_mut(h);
        for seq in seqs {
            let mut counted = 0usize;
            for (index, &id) in seq.iter().enumerate() {
                let Some(row) = rows.next() else { return };
                let pos = match self.positions {
                    Positions::Index => index,
                    Positions::AfterPadding { padding_idx } if id == padding_idx => {
                        padding_idx as usize
                    }
                    Positions::AfterPadding { padding_idx } => {
                        counted += 1;
                        padding_idx as usize + counted
                    }
                };
                // Ids come from the model's own tokenizer; an out-of-range id (a mismatched
                // tokenizer) falls back to row 0 rather than reading out of bounds.
                let id = if (id as usize) < self.vocab_size {
                    id as usize
                } else {
                    0
                };
                let pos = pos.min(self.max_positions - 1);
                let word = &self.word_embeddings[id * h..][..h];
                let position = &self.position_embeddings[pos * h..][..h];
                for ((r, w), p) in row.iter_mut().zip(word).zip(position) {
                    *r = w + p;
                }
            }
        }
        kernels::layer_norm(
            hidden,
            &self.embed_norm_gamma,
            &self.embed_norm_beta,
            self.eps,
        );
    }

    fn layer(&self, layer: &Layer, seqs: &[&[u32]], matmul_threads: usize, ws: &mut Workspace) {
        let h = self.hidden;
        let rows = ws.hidden.len() / h;

        matmul(
            &mut ws.qkv,
            &ws.hidden,
            rows,
            &layer.qkv_weight,
            matmul_threads,
        );
        kernels::add_bias(&mut ws.qkv, &layer.qkv_bias);
        self.attention(seqs, ws);

        matmul(
            &mut ws.projected,
            &ws.context,
            rows,
            &layer.attn_out_weight,
            matmul_threads,
        );
        kernels::residual_layer_norm(
            &mut ws.hidden,
            &ws.projected,
            &layer.attn_out_bias,
            &layer.attn_norm_gamma,
            &layer.attn_norm_beta,
            self.eps,
        );

        matmul(
            &mut ws.intermediate,
            &ws.hidden,
            rows,
            &layer.inter_weight,
            matmul_threads,
        );
        kernels::bias_gelu(&mut ws.intermediate, &layer.inter_bias);

        matmul(
            &mut ws.projected,
            &ws.intermediate,
            rows,
            &layer.out_weight,
            matmul_threads,
        );
        kernels::residual_layer_norm(
            &mut ws.hidden,
            &ws.projected,
            &layer.out_bias,
            &layer.out_norm_gamma,
            &layer.out_norm_beta,
            self.eps,
        );
    }

    /// Self-attention of every text of the batch, head by head. Both products of a head
    /// (queries · keysᵀ, then probabilities · values) run on the same register-blocked
    /// kernel as the projections, with keys and values packed per head.
    fn attention(&self, seqs: &[&[u32]], ws: &mut Workspace) {
        let h = self.hidden;
        let head_dim = h / self.heads;
        let scale = 1.0 / (head_dim as f32).sqrt();
        let row = 3 * h;
        let mut start = 0;
        for seq in seqs {
            let len = seq.len();
            let qkv = &ws.qkv[start * row..(start + len) * row];
            let out = &mut ws.context[start * h..(start + len) * h];
            resize(&mut ws.scores, len * len);
            for head in 0..self.heads {
                let q_off = head * head_dim;
                let k_off = h + q_off;
                let v_off = 2 * h + q_off;
                // Keysᵀ: element (d, j) is key j's dimension d.
                pack_strided(&qkv[k_off..], head_dim, len, 1, row, &mut ws.packed);
                matmul_packed_strided(
                    &mut ws.scores,
                    len,
                    &qkv[q_off..],
                    row,
                    len,
                    &ws.packed,
                    head_dim,
                    len,
                );
                match &self.relative_bias {
                    None => kernels::scaled_softmax_rows(&mut ws.scores, len, scale),
                    Some(bias) => kernels::scaled_biased_softmax_rows(
                        &mut ws.scores,
                        len,
                        scale,
                        bias.for_text(head, len),
                    ),
                }
                // Values: element (j, d) is value j's dimension d.
                pack_strided(&qkv[v_off..], len, head_dim, row, 1, &mut ws.packed);
                matmul_packed_strided(
                    &mut out[q_off..],
                    h,
                    &ws.scores,
                    len,
                    len,
                    &ws.packed,
                    len,
                    head_dim,
                );
            }
            start += len;
        }
    }
}

fn resize(buffer: &mut Vec<f32>, len: usize) {
    buffer.resize(len, 0.0);
}

struct Weights<'a> {
    tensors: HashMap<String, Tensor>,
    error: &'a dyn Fn(String) -> EmbedError,
}

impl Weights<'_> {
    /// Removes the tensor `name`, checks its shape, and returns its values as f32.
    fn take(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let tensor = self
            .tensors
            .remove(name)
            .ok_or_else(|| (self.error)(format!("tensor {name} is missing")))?;
        if tensor.dims() != shape {
            return Err((self.error)(format!(
                "tensor {name} has shape {:?}, expected {shape:?}",
                tensor.dims()
            )));
        }
        tensor
            .to_dtype(DType::F32)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| (self.error)(format!("tensor {name}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MPNet's buckets as transformers' `MPNetEncoder.relative_position_bucket` gives them
    /// (run lengths, from distance 0 outwards), for keys after the query and before it.
    #[test]
    fn relative_buckets_match_transformers() {
        let after: &[(usize, usize)] = &[
            (0, 1),
            (17, 1),
            (18, 1),
            (19, 1),
            (20, 1),
            (21, 1),
            (22, 1),
            (23, 1),
            (24, 4),
            (25, 4),
            (26, 7),
            (27, 9),
            (28, 14),
            (29, 18),
            (30, 27),
            (31, 430),
        ];
        let before: &[(usize, usize)] = &[
            (0, 1),
            (1, 1),
            (2, 1),
            (3, 1),
            (4, 1),
            (5, 1),
            (6, 1),
            (7, 1),
            (8, 4),
            (9, 4),
            (10, 7),
            (11, 9),
            (12, 14),
            (13, 18),
            (14, 27),
            (15, 430),
        ];
        for (runs, sign) in [(after, 1i64), (before, -1)] {
            let expected = runs
                .iter()
                .flat_map(|&(bucket, count)| std::iter::repeat_n(bucket, count));
            for (distance, want) in expected.enumerate() {
                assert_eq!(
                    relative_bucket(sign * distance as i64, 32),
                    want,
                    "distance {}",
                    sign * distance as i64
                );
            }
        }
    }
}
