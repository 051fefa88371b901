//! kdlens' 2×2 max-pooling against burn's `MaxPool2d`, outside a graph (kdlens' loop on `flex`)
//! and inside one (burn's pooling and backward), odd sizes included.

use burn::{
    nn::pool::MaxPool2dConfig,
    tensor::{Device, Distribution, Tensor},
};

fn burns(x: Tensor<4>) -> Tensor<4> {
    MaxPool2dConfig::new([2, 2])
        .with_strides([2, 2])
        .init()
        .forward(x)
}

#[test]
fn pooling_matches_burn_on_flex_in_and_out_of_a_graph() {
    let device = Device::flex();
    for dims in [[2, 3, 8, 8], [1, 5, 7, 9], [3, 1, 2, 3], [1, 2, 1, 4]] {
        let x = Tensor::<4>::random(dims, Distribution::Default, &device);
        let ours = kdlens::pool::max_pool_2x2(x.clone());
        assert_eq!(ours.dims(), burns(x.clone()).dims(), "{dims:?}");
        ours.into_data()
            .assert_eq(&burns(x.clone()).into_data(), true);

        let tracked =
            Tensor::<4>::from_data(x.to_data(), &device.clone().autodiff()).require_grad();
        let grads = kdlens::pool::max_pool_2x2(tracked.clone()).sum().backward();
        let grad = tracked.grad(&grads).expect("gradient");
        let reference =
            Tensor::<4>::from_data(x.to_data(), &device.clone().autodiff()).require_grad();
        let grads = burns(reference.clone()).sum().backward();
        grad.into_data()
            .assert_eq(&reference.grad(&grads).expect("gradient").into_data(), true);
    }
}
