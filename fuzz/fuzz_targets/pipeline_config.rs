//! Arbitrary bytes into `PipelineConfig::from_json` (the `run --config` reader): an error
//! or a config, never a panic; a config that parses is validated, and one that validates
//! serializes and parses back to the same config.
#![no_main]

use latent_terms::pipeline::PipelineConfig;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = PipelineConfig::from_json(text) else {
        return;
    };
    if config.validate().is_ok() {
        let json = serde_json::to_string(&config).expect("a config serializes");
        let again = PipelineConfig::from_json(&json).expect("a serialized config parses");
        // Debug, not ==: a NaN setting would be kept as NaN and NaN != NaN.
        assert_eq!(format!("{again:?}"), format!("{config:?}"));
    }
});
