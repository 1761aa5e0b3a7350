//! Arbitrary bytes into the SAE checkpoint and latents-file loaders: an error or a valid
//! value, never a panic; a checkpoint that loads must also encode and decode.
#![no_main]

use latent_terms_sae::{EncodeOptions, Latents, SaeEncoder, SaeWeights};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(weights) = SaeWeights::from_bytes(data) {
        let d = weights.config.d_in;
        if let Ok(sae) = SaeEncoder::new(weights) {
            let row = vec![0.5f32; d];
            if let Ok(codes) = sae.encode(&row, &EncodeOptions::top_k(1)) {
                let _ = sae.decode(&codes);
            }
            let _ = sae.encode(&row, &EncodeOptions::stored_threshold(Some(2)));
        }
    }
    let _ = Latents::from_bytes(data);
});
