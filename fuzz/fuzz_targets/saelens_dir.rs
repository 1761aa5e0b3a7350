//! Arbitrary bytes into the SAELens directory reader (`cfg.json` + `sae_weights.safetensors`,
//! split at the first NUL byte): an error or a valid SAE, never a panic; an SAE that loads
//! must also encode by top-k and by its stored threshold.
#![no_main]

use latent_terms_sae::{EncodeOptions, SaeEncoder, SaeWeights};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (cfg, weights) = data.split_at(split);
    let weights = weights.get(1..).unwrap_or_default();
    if let Ok(sae) = SaeWeights::from_saelens_bytes(cfg, weights) {
        let d = sae.config.d_in;
        if let Ok(sae) = SaeEncoder::new(sae) {
            let row = vec![0.5f32; d];
            let _ = sae.encode(&row, &EncodeOptions::top_k(1));
            let _ = sae.encode(&row, &EncodeOptions::stored_threshold(Some(2)));
        }
    }
});
