//! Helpers shared by the trainer's gradient tests.

use burn::tensor::{Device, Tensor, TensorData};

pub(crate) fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = crate::train::data::Rng::new(seed);
    (0..n).map(|_| rng.symmetric()).collect()
}

pub(crate) fn tensor2(v: Vec<f32>, shape: [usize; 2], dev: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(v, shape), dev)
}

pub(crate) fn tensor1(v: Vec<f32>, n: usize, dev: &Device) -> Tensor<1> {
    Tensor::from_data(TensorData::new(v, [n]), dev)
}

pub(crate) fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().unwrap()
}

/// Elementwise agreement within 1e-4 of the largest magnitude of `b`.
pub(crate) fn close(a: &[f32], b: &[f32], what: &str) {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= 1e-4 * scale,
            "{what}[{i}]: analytic {x} vs autodiff {y}"
        );
    }
}
