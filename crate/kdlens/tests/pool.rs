//! kdlens' pooling against burn's `MaxPool2d` and `AvgPool2d`, outside a graph (kdlens' loops on
//! `flex`) and inside one (burn's backward), odd sizes included: the students' 2×2 max-pool,
//! DenseNet's padded 3×3 stride-2 stem max-pool and its 2×2 average pools.

use burn::{
    nn::{
        PaddingConfig2d,
        pool::{AvgPool2dConfig, MaxPool2dConfig},
    },
    tensor::{Device, Distribution, Tensor},
};
use kdlens::pool::{self, Window};

const STUDENT: Window = Window {
    kernel: [2, 2],
    stride: [2, 2],
    padding: [0, 0],
};

const STEM: Window = Window {
    kernel: [3, 3],
    stride: [2, 2],
    padding: [1, 1],
};

fn burns_max(window: Window, x: Tensor<4>) -> Tensor<4> {
    let [ph, pw] = window.padding;
    MaxPool2dConfig::new(window.kernel)
        .with_strides(window.stride)
        .with_padding(PaddingConfig2d::Explicit(ph, pw, ph, pw))
        .init()
        .forward(x)
}

fn burns_avg(window: Window, x: Tensor<4>) -> Tensor<4> {
    AvgPool2dConfig::new(window.kernel)
        .with_strides(window.stride)
        .init()
        .forward(x)
}

/// `ours` and `burns` give the same output and the same input gradient (for a random output
/// gradient), outside and inside a graph.
fn assert_same_as_burn(
    ours: impl Fn(Tensor<4>) -> Tensor<4>,
    burns: impl Fn(Tensor<4>) -> Tensor<4>,
    what: &str,
) {
    let device = Device::flex();
    for dims in [
        [2, 3, 8, 8],
        [1, 5, 7, 9],
        [3, 1, 2, 3],
        [1, 2, 3, 4],
        [1, 4, 13, 11],
    ] {
        let x = Tensor::<4>::random(dims, Distribution::Default, &device);
        let expected = burns(x.clone());
        let got = ours(x.clone());
        assert_eq!(got.dims(), expected.dims(), "{what} {dims:?}");
        got.into_data()
            .assert_approx_eq::<f32>(&expected.into_data(), Default::default());

        let autodiff = device.clone().autodiff();
        let r = Tensor::<4>::random(burns(x.clone()).dims(), Distribution::Default, &device);
        let input_grad = |f: &dyn Fn(Tensor<4>) -> Tensor<4>| {
            let tracked = Tensor::<4>::from_data(x.to_data(), &autodiff).require_grad();
            let weight = Tensor::<4>::from_data(r.to_data(), &autodiff);
            let grads = (f(tracked.clone()) * weight).sum().backward();
            tracked.grad(&grads).expect("gradient").into_data()
        };
        input_grad(&ours).assert_approx_eq::<f32>(&input_grad(&burns), Default::default());
    }
}

#[test]
fn student_max_pool_matches_burn() {
    assert_same_as_burn(pool::max_pool_2x2, |x| burns_max(STUDENT, x), "2×2 max");
}

#[test]
fn padded_stem_max_pool_matches_burn() {
    assert_same_as_burn(
        |x| pool::max_pool2d(x, STEM),
        |x| burns_max(STEM, x),
        "3×3/2 max",
    );
}

#[test]
fn average_pool_matches_burn() {
    assert_same_as_burn(
        |x| pool::avg_pool2d(x, STUDENT),
        |x| burns_avg(STUDENT, x),
        "2×2 average",
    );
}
