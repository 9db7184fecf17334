//! candle-transformers' `BertModel` on any candle device: the GPU path (`cuda` feature) and
//! an independent second implementation that tests hold the fused CPU encoder against.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};

use crate::error::{EmbedError, Result};
use crate::model_dir::ModelFiles;

pub struct CandleEncoder {
    model: BertModel,
    device: Device,
    hidden: usize,
}

fn backend_error(e: candle_core::Error) -> EmbedError {
    EmbedError::Backend {
        backend: "candle",
        message: e.to_string(),
    }
}

impl CandleEncoder {
    pub fn load(files: &ModelFiles, device: Device) -> Result<Self> {
        let config_path = files.dir.join("config.json");
        let config_text =
            std::fs::read_to_string(&config_path).map_err(|source| EmbedError::Io {
                path: config_path.clone(),
                source,
            })?;
        let config: Config =
            serde_json::from_str(&config_text).map_err(|e| EmbedError::Config {
                path: config_path,
                message: e.to_string(),
            })?;
        // SAFETY: the weights file is memory-mapped read-only; mnemo never writes to it, and
        // the model folder is ours (a verified cache), so it does not change under us.
        let vb =
            unsafe { VarBuilder::from_mmaped_safetensors(&[&files.weights], DType::F32, &device) }
                .map_err(|e| EmbedError::Weights {
                    path: files.weights.clone(),
                    message: e.to_string(),
                })?;
        let model = BertModel::load(vb, &config).map_err(|e| EmbedError::Weights {
            path: files.weights.clone(),
            message: e.to_string(),
        })?;
        Ok(Self {
            model,
            device,
            hidden: files.config.hidden_size,
        })
    }

    pub fn device_name(&self) -> String {
        format!("{:?}", self.device.location())
    }

    /// Pads the batch to its longest text, runs BERT, mean-pools over the mask and
    /// L2-normalises: sentence-transformers' pipeline, step for step.
    pub fn encode(&self, seqs: &[&[u32]], out: &mut [f32]) -> Result<()> {
        let n = seqs.len();
        let longest = seqs.iter().map(|s| s.len()).max().unwrap_or(0);
        if n == 0 || longest == 0 {
            return Ok(());
        }
        let mut ids = vec![0u32; n * longest];
        let mut mask = vec![0u32; n * longest];
        for (row, seq) in seqs.iter().enumerate() {
            ids[row * longest..][..seq.len()].copy_from_slice(seq);
            mask[row * longest..][..seq.len()].fill(1);
        }
        let run = || -> candle_core::Result<Vec<f32>> {
            let ids = Tensor::from_vec(ids, (n, longest), &self.device)?;
            let mask = Tensor::from_vec(mask, (n, longest), &self.device)?;
            let token_types = ids.zeros_like()?;
            let hidden = self.model.forward(&ids, &token_types, Some(&mask))?;
            let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
            let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
            let counts = mask.sum(1)?;
            let mean = summed.broadcast_div(&counts)?;
            let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f32::MAX)?;
            mean.broadcast_div(&norm)?.flatten_all()?.to_vec1::<f32>()
        };
        let values = run().map_err(backend_error)?;
        out[..n * self.hidden].copy_from_slice(&values);
        Ok(())
    }
}
