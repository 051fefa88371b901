//! One optimisation step: the batch's loss, its gradients over data-parallel replicas, and the
//! count of correct predictions.

use anyhow::Result;
use burn::{
    module::Module,
    optim::{GradientsParams, MultiGradientsParams},
    tensor::{Device, Int, Tensor, TensorData, activation::log_softmax},
};
use kdlens::{
    distill::{DistillConfig, kd_loss},
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

/// Loss of a batch for the objective; `teacher_logits` are needed for distillation.
pub(super) fn batch_loss(
    distill: Option<DistillConfig>,
    logits: Tensor<2>,
    teacher_logits: Option<Tensor<2>>,
    labels: Tensor<1, Int>,
) -> Tensor<1> {
    match (distill, teacher_logits) {
        (Some(config), Some(teacher)) => kd_loss(logits, teacher, labels, config),
        _ => {
            let [n, _] = logits.dims();
            log_softmax(logits, 1)
                .gather(1, labels.reshape([n, 1]))
                .mean()
                .neg()
        }
    }
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
        let shard_loss = batch_loss(distill, logits.clone(), teacher, targets);
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
    use burn::tensor::{Device, Distribution, Tensor};
    use kdlens::model::{Architecture, Classifier, ModelSpec};

    use super::replica_step;

    /// Two replicas on a batch give the gradient of the whole batch: the share-weighted sum of
    /// the gradients of its two halves.
    #[test]
    fn replica_gradients_sum_to_the_whole_batch_gradient() {
        let _stream = crate::train::DEVICE_RANDOM_STREAM
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let device = Device::flex();
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
            Tensor::<4>::random([n, 3, 32, 32], Distribution::Uniform(0.0, 1.0), &device)
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
}
