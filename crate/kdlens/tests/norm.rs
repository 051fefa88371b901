//! kdlens' batch norm + ReLU (running statistics) against burn's `BatchNorm` followed by `relu`:
//! the output, and inside a graph the gradients of the input, `gamma` and `beta`; on `flex`
//! (kdlens' one-pass loop) and on `wgpu` (burn's operations) when an adapter exists.

use burn::{
    module::{Param, RunningState},
    nn::{BatchNorm, BatchNormConfig},
    tensor::{Device, Distribution, Tensor, activation::relu},
};

/// A batch norm on `device` with random (non-trivial) parameters and running statistics drawn
/// on `flex` with `seed`, not training.
fn random_norm(channels: usize, seed: u64, device: &Device) -> BatchNorm {
    let flex = Device::flex();
    flex.seed(seed);
    let random = |low, high| {
        let values = Tensor::<1>::random([channels], Distribution::Uniform(low, high), &flex);
        Tensor::<1>::from_data(values.into_data(), device)
    };
    let mut norm = BatchNormConfig::new(channels).init(device);
    norm.gamma = Param::from_tensor(random(-2.0, 2.0));
    norm.beta = Param::from_tensor(random(-1.0, 1.0));
    norm.running_mean = RunningState::new(random(-0.5, 0.5));
    norm.running_var = RunningState::new(random(0.1, 3.0));
    norm.training = Param::from_bool(false);
    norm
}

fn assert_close(a: Tensor<4>, b: Tensor<4>, what: &str) {
    let scale = b.clone().abs().max().into_scalar::<f32>().max(1.0);
    let diff = (a - b).abs().max().into_scalar::<f32>();
    assert!(diff <= 1e-5 * scale, "{what}: max difference {diff}");
}

fn assert_matches_burn(device: &Device) {
    for dims in [[1, 3, 5, 7], [2, 8, 4, 4], [3, 33, 1, 2]] {
        device.seed(11);
        let norm = random_norm(dims[1], 5, device);
        let x = Tensor::<4>::random(dims, Distribution::Default, device);
        assert_close(
            kdlens::norm::batch_norm_relu(&norm, x.clone()),
            relu(norm.forward(x.clone())),
            "output",
        );

        // In a graph, with gamma and beta tracked (a frozen batch norm being fine-tuned around).
        let autodiff = device.clone().autodiff();
        let r = Tensor::<4>::random(dims, Distribution::Default, device);
        let gradients = |ours: bool| {
            let norm = random_norm(dims[1], 5, &autodiff);
            let x = Tensor::<4>::from_data(x.to_data(), &autodiff).require_grad();
            let y = match ours {
                true => kdlens::norm::batch_norm_relu(&norm, x.clone()),
                false => relu(norm.forward(x.clone())),
            };
            let grads = (y * Tensor::<4>::from_data(r.to_data(), &autodiff))
                .sum()
                .backward();
            let param = |p: &Param<Tensor<1>>| {
                let grad = p.val().grad(&grads).expect("parameter gradient");
                grad.reshape([1, 1, 1, dims[1]])
            };
            [
                x.grad(&grads).expect("input gradient"),
                param(&norm.gamma),
                param(&norm.beta),
            ]
        };
        for (what, (a, b)) in ["grad x", "grad gamma", "grad beta"]
            .iter()
            .zip(gradients(true).into_iter().zip(gradients(false)))
        {
            assert_close(a, b, what);
        }
    }
}

#[test]
fn batch_norm_relu_matches_burn_on_flex() {
    assert_matches_burn(&Device::flex());
}

#[test]
fn batch_norm_relu_matches_burn_on_wgpu_when_an_adapter_exists() {
    let device = match Device::wgpu_options().init() {
        Ok(device) => device,
        Err(e) => {
            eprintln!("SKIPPED batch norm + ReLU on wgpu: no wgpu adapter on this machine ({e})");
            return;
        }
    };
    assert_matches_burn(&device);
}
