//! Arbitrary bytes into the SAE trainer's resume-state loader (`<stem>.state.safetensors`,
//! `TrainState::from_bytes`): an error or a state, never a panic; a state that loads must
//! save, load back paired with the weights it was saved with and with the same step and
//! counters, and load the same again after a second save (the bytes may differ: the
//! metadata map's order is not fixed, and the seal does not depend on it).
//!
//! The first byte picks the SAE's shape (`d_in` 1–4, `d_sae` 2–9), the rest is the file.
#![no_main]

use latent_terms_sae::{SaeConfig, SaeKind, SaeWeights, TrainState};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&shape, file)) = data.split_first() else {
        return;
    };
    let (d_in, d_sae) = (1 + usize::from(shape & 3), 2 + usize::from((shape >> 2) & 7));
    let config = SaeConfig::new(SaeKind::TopK, d_in, d_sae, 1).expect("k 1 < d_sae");
    let weights = SaeWeights {
        config,
        w_enc: vec![0.0; d_in * d_sae],
        b_enc: vec![0.0; d_sae],
        w_dec: vec![0.0; d_in * d_sae],
        b_dec: vec![0.0; d_in],
    };
    if let Ok(state) = TrainState::from_bytes(file, &weights) {
        let bytes = state.to_bytes(&weights).expect("a loaded state saves");
        let again = TrainState::from_bytes(&bytes, &weights).expect("a saved state loads");
        again.check_paired(&weights).expect("saved with these weights");
        assert_eq!((again.step, &again.since_fired), (state.step, &state.since_fired));
        let twice = TrainState::from_bytes(&again.to_bytes(&weights).expect("saves"), &weights)
            .expect("a state saved twice loads");
        // Debug, not ==: NaN moments are kept as they are and NaN != NaN.
        assert_eq!(format!("{twice:?}"), format!("{again:?}"));
    }
});
