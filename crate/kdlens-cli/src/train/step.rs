//! One optimisation step: the batch's loss, its gradients over data-parallel replicas, and the
//! count of correct predictions.

use anyhow::Result;
use burn::{
    module::Module,
    optim::{GradientsParams, MultiGradientsParams},
    tensor::{Device, Int, Tensor, TensorData},
};
use kdlens::{
    distill::{DistillConfig, batch_loss},
    model::{Classifier, LayeredClassifier},
};

use crate::data::ImageCache;

pub(super) fn labels_tensor(
    cache: &ImageCache,
    indices: &[usize],
    device: &Device,
) -> Tensor<1, Int> {
    let labels: Vec<i64> = indices.iter().map(|&i| cache.labels()[i] as i64).collect();
    Tensor::from_data(TensorData::new(labels, [indices.len()]), device)
}

pub(super) fn images_tensor(
    values: Vec<f32>,
    n: usize,
    size: [usize; 2],
    device: &Device,
) -> Tensor<4> {
    Tensor::from_data(TensorData::new(values, [n, 3, size[0], size[1]]), device)
}

pub(super) fn correct(logits: &Tensor<2>, labels: &[usize]) -> Result<usize> {
    let predicted = logits
        .clone()
        .argmax(1)
        .into_data()
        .try_into_vec_as::<i64>()
        .map_err(|e| anyhow::anyhow!("cannot read predictions: {e:?}"))?;
    Ok(predicted
        .iter()
        .zip(labels)
        .filter(|(p, l)| **p as usize == **l)
        .count())
}

pub(super) fn scalar(t: Tensor<1>) -> Result<f64> {
    Ok(t.into_data()
        .try_to_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("cannot read the loss: {e:?}"))?[0] as f64)
}

/// One optimisation step's gradients, data-parallel over `replicas`.
///
/// The batch is cut into one contiguous slice per replica device; each replica is a fork of
/// `model` (same parameter ids) that runs forward on its slice, and the backward passes run in
/// parallel, one thread per replica. burn's [`MultiGradientsParams`] then sums the gradients.
/// Each slice's loss is weighted by its share of the batch, so the sum is the gradient of the
/// whole batch's mean loss. The forward passes run one after another, in replica order, because
/// dropout draws from the device's single random stream: that keeps a seeded run reproducible.
/// Returns the gradients, the batch's mean loss and its number of correct predictions.
pub(super) fn replica_step(
    model: &Classifier,
    replicas: &[Device],
    values: &[f32],
    labels: &[usize],
    teacher_logits: Option<Tensor<2>>,
    distill: Option<DistillConfig>,
    size: [usize; 2],
) -> Result<(MultiGradientsParams, f64, usize)> {
    let n = labels.len();
    let per_image = 3 * size[0] * size[1];
    let shards = replicas.len().min(n).max(1);
    let chunk = n.div_ceil(shards);
    let teacher_rows: Option<Vec<f32>> = match teacher_logits {
        Some(t) => Some(
            t.into_data()
                .try_into_vec_as::<f32>()
                .map_err(|e| anyhow::anyhow!("cannot read teacher logits: {e:?}"))?,
        ),
        None => None,
    };
    let classes = teacher_rows.as_ref().map(|t| t.len() / n).unwrap_or(0);
    let (mut loss, mut hits) = (0.0, 0);
    let mut pending = Vec::with_capacity(shards);
    for (k, device) in replicas.iter().enumerate().take(shards) {
        let (start, end) = (k * chunk, ((k + 1) * chunk).min(n));
        if start >= end {
            continue;
        }
        let m = end - start;
        let autodiff = device.clone().autodiff();
        let replica = model.clone().fork(&autodiff);
        let images = images_tensor(
            values[start * per_image..end * per_image].to_vec(),
            m,
            size,
            &autodiff,
        );
        let targets: Vec<i64> = labels[start..end].iter().map(|&l| l as i64).collect();
        let targets = Tensor::<1, Int>::from_data(TensorData::new(targets, [m]), &autodiff);
        let teacher = teacher_rows.as_ref().map(|rows| {
            Tensor::<2>::from_data(
                TensorData::new(rows[start * classes..end * classes].to_vec(), [m, classes]),
                device,
            )
        });
        let logits = replica.forward(images);
        let shard_loss = batch_loss(logits.clone(), targets, distill, teacher)?;
        hits += correct(&logits, &labels[start..end])?;
        loss += scalar(shard_loss.clone())? * m as f64;
        pending.push((shard_loss * (m as f64 / n as f64), replica, device.clone()));
    }
    let gradients: Vec<(GradientsParams, Device)> = std::thread::scope(|scope| {
        let handles: Vec<_> = pending
            .into_iter()
            .map(|(weighted, replica, device)| {
                scope.spawn(move || {
                    (
                        GradientsParams::from_grads(weighted.backward(), &replica),
                        device,
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .expect("a training replica's backward pass panicked")
            })
            .collect()
    });
    Ok((
        MultiGradientsParams { grads: gradients },
        loss / n as f64,
        hits,
    ))
}

#[cfg(test)]
mod tests {
    use burn::{
        module::Module,
        tensor::{Device, Distribution, Tensor},
    };
    use kdlens::model::{
        Architecture, Classifier, DenseNet, DenseNetConfig, LayeredClassifier, ModelSpec,
    };

    use super::replica_step;

    /// Two replicas on a batch give the gradient of the whole batch: the share-weighted sum of
    /// the gradients of its two halves (each replica normalises its own slice, as data-parallel
    /// training without synchronised batch norm does).
    fn check_replica_gradients(device: &Device) {
        let autodiff = device.clone().autodiff();
        autodiff.seed(3);
        let model = ModelSpec::new(Architecture::FiveLayer, 3, [32, 32])
            .unwrap()
            .init(&autodiff)
            .unwrap();
        let Classifier::FiveLayer(student) = &model else {
            unreachable!()
        };
        let id = student.classifier.weight.id;
        let n = 6;
        let values: Vec<f32> =
            Tensor::<4>::random([n, 3, 32, 32], Distribution::Uniform(0.0, 1.0), device)
                .into_data()
                .try_into_vec_as::<f32>()
                .unwrap();
        let labels = [0usize, 1, 2, 0, 1, 2];
        let gradient = |replicas: usize, values: &[f32], labels: &[usize]| -> Vec<f32> {
            let (mut grads, _, _) = replica_step(
                &model,
                &vec![device.clone(); replicas],
                values,
                labels,
                None,
                None,
                [32, 32],
            )
            .unwrap();
            grads
                .remove::<2>(id)
                .unwrap()
                .0
                .into_data()
                .try_into_vec_as::<f32>()
                .unwrap()
        };
        // Parameters initialise lazily, drawing from the device's random stream: materialise
        // them first so that both computations below see the same dropout masks.
        gradient(1, &values, &labels);
        autodiff.seed(9);
        let both = gradient(2, &values, &labels);
        autodiff.seed(9);
        assert_eq!(
            both,
            gradient(2, &values, &labels),
            "two replicas are deterministic"
        );
        autodiff.seed(9);
        let half = values.len() / 2;
        let first = gradient(1, &values[..half], &labels[..3]);
        let second = gradient(1, &values[half..], &labels[3..]);
        let worst = both
            .iter()
            .zip(first.iter().zip(&second))
            .map(|(b, (f, s))| (b - 0.5 * (f + s)).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-6, "max difference {worst}");
        assert!(both.iter().any(|v| *v != 0.0));
    }

    #[test]
    fn replica_gradients_sum_to_the_whole_batch_gradient_on_flex() {
        let _stream = crate::train::DEVICE_RANDOM_STREAM
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        check_replica_gradients(&Device::flex());
    }

    /// The `wgpu` adapter (Mesa's lavapipe in CI, where a missing one fails the test);
    /// elsewhere `None` after saying why the test skips.
    fn wgpu_or_skip(test: &str) -> Option<Device> {
        // One adapter per process: tests share it.
        static ADAPTER: std::sync::OnceLock<Result<Device, String>> = std::sync::OnceLock::new();
        let adapter =
            ADAPTER.get_or_init(|| Device::wgpu_options().init().map_err(|e| e.to_string()));
        match adapter.clone() {
            Ok(device) => Some(device),
            Err(e) if std::env::var_os("CI").is_none() => {
                eprintln!("SKIPPED {test} on wgpu: no adapter ({e})");
                None
            }
            Err(e) => panic!("CI needs a Vulkan adapter (Mesa's lavapipe): {e}"),
        }
    }

    #[test]
    fn replica_gradients_sum_to_the_whole_batch_gradient_on_wgpu() {
        if let Some(device) = wgpu_or_skip("replicas") {
            let _stream = crate::train::DEVICE_RANDOM_STREAM
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            check_replica_gradients(&device);
        }
    }

    /// A training step's loss and gradients on `wgpu` equal those on `flex` for the same weights
    /// and batch: a small DenseNet (no dropout, batch norm in training mode), gradients of its
    /// first convolution (the end of the whole backward pass) and of its classifier, within
    /// 1e-4 of their largest magnitude.
    #[test]
    fn a_training_step_on_wgpu_matches_flex() {
        let Some(gpu) = wgpu_or_skip("training step") else {
            return;
        };
        let cpu = Device::flex();
        let config = DenseNetConfig {
            growth_rate: 8,
            block_config: [2, 2, 2, 2],
            num_init_features: 16,
            bn_size: 2,
        };
        let model = {
            let _stream = crate::train::DEVICE_RANDOM_STREAM
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let autodiff = cpu.clone().autodiff();
            autodiff.seed(11);
            let model = Classifier::DenseNet(DenseNet::new(&config, 3, [32, 32], &autodiff));
            // Materialise the lazily initialised weights on the CPU before copying them.
            model.forward(Tensor::zeros([1, 3, 32, 32], &autodiff));
            model
        };
        let n = 6;
        let values: Vec<f32> = (0..n * 3 * 32 * 32)
            .map(|i| ((i * 37) % 101) as f32 / 101.0)
            .collect();
        let labels = [0usize, 1, 2, 2, 1, 0];
        let step = |device: &Device| {
            let model = model.clone().fork(&device.clone().autodiff());
            let Classifier::DenseNet(net) = &model else {
                unreachable!()
            };
            let (conv0, head) = (net.features.conv0.weight.id, net.classifier.weight.id);
            let (mut grads, loss, _) = replica_step(
                &model,
                std::slice::from_ref(device),
                &values,
                &labels,
                None,
                None,
                [32, 32],
            )
            .unwrap();
            let conv0 = grads.remove::<4>(conv0).unwrap().0.into_data();
            let head = grads.remove::<2>(head).unwrap().0.into_data();
            (
                loss,
                conv0.try_into_vec_as::<f32>().unwrap(),
                head.try_into_vec_as::<f32>().unwrap(),
            )
        };
        let (gpu_loss, gpu_conv0, gpu_head) = step(&gpu);
        let (cpu_loss, cpu_conv0, cpu_head) = step(&cpu);
        assert!(
            (gpu_loss - cpu_loss).abs() <= 1e-5 * cpu_loss.abs(),
            "loss {gpu_loss} on wgpu, {cpu_loss} on flex"
        );
        for (what, g, c) in [
            ("conv0", gpu_conv0, cpu_conv0),
            ("classifier", gpu_head, cpu_head),
        ] {
            let scale = c.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let worst = g
                .iter()
                .zip(&c)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(
                scale > 0.0 && worst <= 1e-4 * scale,
                "{what}: {worst} against {scale}"
            );
        }
    }
}
