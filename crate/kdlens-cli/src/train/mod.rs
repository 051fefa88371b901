//! The training loop shared by the teacher and the students.

mod checkpoint;
mod config;
pub mod inference;

use std::{sync::mpsc::sync_channel, time::Instant};

use anyhow::{Context, Result, bail};
use burn::{
    module::Module,
    optim::{AdamConfig, GradientsParams, MultiGradientsParams},
    store::ModuleRecord,
    tensor::{Bytes, Device, Int, Tensor, TensorData, activation::log_softmax},
};
use indicatif::{ProgressBar, ProgressStyle};
use kdlens::{
    bundle::{Manifest, WeightPrecision},
    distill::{DistillConfig, kd_loss},
    image::Preprocessing,
    model::{Classifier, LayeredClassifier, ModelSpec},
};
use rand::{SeedableRng, rngs::StdRng, seq::SliceRandom};

pub use checkpoint::EpochRecord;
use checkpoint::{Checkpoint, Checkpoints, LoopState};
pub use config::{TrainConfig, default_replicas};

use crate::{
    data::{ImageCache, augment::Transform},
    model_io, report,
    run::RunDir,
};

/// What the network learns from.
pub enum Objective<'a> {
    /// Cross-entropy with the labels.
    Labels,
    /// The distillation loss against a teacher (in inference mode).
    Distill {
        /// The teacher.
        teacher: &'a Classifier,
        /// α and T.
        config: DistillConfig,
    },
}

/// Everything a training run needs.
pub struct FitRequest<'a> {
    /// The network to build.
    pub spec: ModelSpec,
    /// Starting weights (e.g. torchvision's), instead of a fresh initialisation.
    pub initial: Option<Classifier>,
    /// Training images.
    pub train: &'a ImageCache,
    /// Validation images.
    pub val: &'a ImageCache,
    /// The input pipeline.
    pub preprocessing: &'a Preprocessing,
    /// Loss.
    pub objective: Objective<'a>,
    /// Optimisation settings.
    pub config: &'a TrainConfig,
    /// Compute device (without autodiff; the loop adds it). The model lives here.
    pub device: &'a Device,
    /// Devices training replicas of the model on slices of each batch, data-parallel (the
    /// first is usually `device`); one entry trains on `device` alone.
    pub replicas: Vec<Device>,
    /// Where checkpoints, metrics, plots and `best.kdlens` go.
    pub run: &'a RunDir,
    /// Manifest written with the best model.
    pub manifest: Manifest,
    /// Continue from the run folder's checkpoint instead of refusing to overwrite it.
    pub resume: bool,
}

/// The result of a training run.
pub struct FitOutcome {
    /// The weights of the best validation epoch, in inference mode.
    pub model: Classifier,
    /// Every epoch.
    pub history: Vec<EpochRecord>,
    /// Epoch whose weights were kept.
    pub best_epoch: usize,
}

/// Mixes a seed with a counter (SplitMix64 finaliser) for per-epoch streams.
pub fn mix(seed: u64, n: u64) -> u64 {
    let mut z = seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn labels_tensor(cache: &ImageCache, indices: &[usize], device: &Device) -> Tensor<1, Int> {
    let labels: Vec<i64> = indices.iter().map(|&i| cache.labels()[i] as i64).collect();
    Tensor::from_data(TensorData::new(labels, [indices.len()]), device)
}

fn images_tensor(values: Vec<f32>, n: usize, size: [usize; 2], device: &Device) -> Tensor<4> {
    Tensor::from_data(TensorData::new(values, [n, 3, size[0], size[1]]), device)
}

/// Loss of a batch for the objective; `teacher_logits` are needed for distillation.
fn batch_loss(
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

fn correct(logits: &Tensor<2>, labels: &[usize]) -> Result<usize> {
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

fn scalar(t: Tensor<1>) -> Result<f64> {
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
fn replica_step(
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

/// Trains as the request says, checkpointing after every epoch, and returns the best epoch's
/// weights.
pub fn fit(request: FitRequest) -> Result<FitOutcome> {
    let FitRequest {
        spec,
        initial,
        train,
        val,
        preprocessing,
        objective,
        config,
        device,
        run,
        manifest,
        resume,
        replicas,
    } = request;
    anyhow::ensure!(!replicas.is_empty(), "training needs at least one device");
    let distill = match &objective {
        Objective::Distill { config, .. } => Some(*config),
        Objective::Labels => None,
    };
    config.validate()?;
    if train.is_empty() {
        bail!("no training images");
    }
    let autodiff = device.clone().autodiff();
    let checkpoints = Checkpoints::new(&run.join("checkpoints"))?;
    let best_path = run.join("best.kdlens");

    let existing = checkpoints.load_latest(|warning| run.log(warning))?;
    if existing.is_some() && !resume {
        bail!(
            "{} already holds a training checkpoint; continue it with --resume {0} or choose \
             another --run-dir",
            run.path().display()
        );
    }
    autodiff.seed(config.seed);
    let mut model = match initial {
        Some(model) => model.to_device(&autodiff).train(),
        None => spec.init(&autodiff)?,
    };
    let mut optimizer = AdamConfig::new().init();
    let mut state = LoopState {
        epoch: 0,
        lr: config.lr,
        best_val_loss: f64::INFINITY,
        best_epoch: 0,
        plateau_wait: 0,
        since_best: 0,
        history: Vec::new(),
    };
    if let Some(checkpoint) = existing {
        let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(checkpoint.model))
            .context("checkpoint model record")?;
        model = model
            .try_load_record(record)
            .context("checkpoint does not fit the model")?;
        optimizer = optimizer
            .from_bytes(Bytes::from_bytes_vec(checkpoint.optimizer))
            .context("checkpoint optimizer record")?;
        state = checkpoint.state;
        run.log(format!(
            "resuming after epoch {} of {}",
            state.epoch, config.epochs
        ));
    }

    let size = preprocessing.input_size;
    let num_classes = spec.num_classes;
    let augmentation = config
        .augmentation
        .is_active()
        .then_some(&config.augmentation);
    // Teacher outputs are computed once for the whole run whenever the augmented images can
    // only be flipped copies of the originals (one set of logits per flip variant); with
    // continuous augmentation they are computed batch by batch.
    let batch = config.batch_size.max(32);
    let (teacher, variant_logits, val_teacher_logits) = match &objective {
        Objective::Distill { teacher, .. } => {
            let val_logits = inference::logits(
                teacher,
                val,
                preprocessing,
                device,
                batch,
                Transform::identity(),
            )?;
            let variants = match augmentation {
                None => vec![0],
                Some(a) if a.flips_only() => (0..4)
                    .filter(|v| {
                        (v & 1 == 0 || a.horizontal_flip) && (v & 2 == 0 || a.vertical_flip)
                    })
                    .collect(),
                Some(_) => vec![],
            };
            let mut cached: Vec<Option<Vec<f32>>> = vec![None; 4];
            for v in variants {
                cached[v] = Some(inference::logits(
                    teacher,
                    train,
                    preprocessing,
                    device,
                    batch,
                    Transform::flips(v),
                )?);
            }
            (Some(*teacher), cached, Some(val_logits))
        }
        Objective::Labels => (None, vec![None; 4], None),
    };
    let teacher_slice = |logits: &[f32], indices: &[usize]| -> Tensor<2> {
        let values: Vec<f32> = indices
            .iter()
            .flat_map(|&i| {
                logits[i * num_classes..(i + 1) * num_classes]
                    .iter()
                    .copied()
            })
            .collect();
        Tensor::from_data(
            TensorData::new(values, [indices.len(), num_classes]),
            device,
        )
    };
    let cached_teacher = |indices: &[usize], transforms: &[Transform]| -> Option<Tensor<2>> {
        let mut values = Vec::with_capacity(indices.len() * num_classes);
        for (&i, t) in indices.iter().zip(transforms) {
            let logits = variant_logits[t.flip_variant()].as_ref()?;
            values.extend_from_slice(&logits[i * num_classes..(i + 1) * num_classes]);
        }
        Some(Tensor::from_data(
            TensorData::new(values, [indices.len(), num_classes]),
            device,
        ))
    };

    let style =
        ProgressStyle::with_template("{prefix} {bar:30} {pos}/{len} batches · {msg} · eta {eta}")
            .expect("valid template");
    while state.epoch < config.epochs {
        if config.early_stop.is_some_and(|n| state.since_best >= n) {
            run.log(format!(
                "early stop: no better validation loss for {} epochs",
                state.since_best
            ));
            break;
        }
        let epoch = state.epoch + 1;
        let started = Instant::now();
        autodiff.seed(mix(config.seed, epoch as u64));
        let mut order: Vec<usize> = (0..train.len()).collect();
        order.shuffle(&mut StdRng::seed_from_u64(mix(
            config.seed ^ 0x5eed,
            epoch as u64,
        )));
        let batches: Vec<Vec<usize>> = order
            .chunks(config.batch_size)
            .map(|c| c.to_vec())
            .collect();
        let bar = ProgressBar::new(batches.len() as u64).with_style(style.clone());
        bar.set_prefix(format!("epoch {epoch}/{}", config.epochs));

        let (mut loss_sum, mut hits, mut seen) = (0.0f64, 0usize, 0usize);
        std::thread::scope(|scope| -> Result<()> {
            let (sender, receiver) = sync_channel::<(usize, Vec<f32>, Vec<Transform>)>(2);
            let batches_ref = &batches;
            scope.spawn(move || {
                for (b, indices) in batches_ref.iter().enumerate() {
                    let seed = mix(config.seed, (epoch * 1_000_003 + b) as u64);
                    let transforms: Vec<Transform> = (0..indices.len())
                        .map(|p| {
                            augmentation.map_or(Transform::identity(), |a| {
                                a.draw(seed.wrapping_add(p as u64))
                            })
                        })
                        .collect();
                    let values = train.batch(indices, |p| transforms[p], preprocessing);
                    if sender.send((b, values, transforms)).is_err() {
                        return;
                    }
                }
            });
            for (b, values, transforms) in receiver {
                let indices = &batches[b];
                let n = indices.len();
                let teacher_logits = teacher.map(|teacher| {
                    cached_teacher(indices, &transforms).unwrap_or_else(|| {
                        teacher.forward(images_tensor(values.clone(), n, size, device))
                    })
                });
                let batch_labels: Vec<usize> = indices.iter().map(|&i| train.labels()[i]).collect();
                let (grads, value, batch_hits) = replica_step(
                    &model,
                    &replicas,
                    &values,
                    &batch_labels,
                    teacher_logits,
                    distill,
                    size,
                )?;
                if !value.is_finite() {
                    bail!("the training loss became {value} in epoch {epoch}; lower --lr");
                }
                hits += batch_hits;
                loss_sum += value * n as f64;
                seen += n;
                model = optimizer.step_multi(state.lr, model.clone(), grads);
                bar.inc(1);
                let rate = seen as f64 / started.elapsed().as_secs_f64();
                bar.set_message(format!(
                    "loss {:.4} acc {:.3} · {rate:.1} img/s",
                    loss_sum / seen as f64,
                    hits as f64 / seen as f64
                ));
            }
            Ok(())
        })?;
        bar.finish_and_clear();
        let train_seconds = started.elapsed().as_secs_f64();

        let inference_model = model.valid();
        let (val_loss, val_accuracy) = if val.is_empty() {
            (loss_sum / seen as f64, hits as f64 / seen as f64)
        } else {
            let logits = inference::logits(
                &inference_model,
                val,
                preprocessing,
                device,
                batch,
                Transform::identity(),
            )?;
            let all: Vec<usize> = (0..val.len()).collect();
            let logits_tensor = teacher_slice(&logits, &all);
            let teacher_logits = val_teacher_logits.as_ref().map(|t| teacher_slice(t, &all));
            let loss = batch_loss(
                distill,
                logits_tensor.clone(),
                teacher_logits,
                labels_tensor(val, &all, device),
            );
            (
                scalar(loss)?,
                correct(&logits_tensor, val.labels())? as f64 / val.len() as f64,
            )
        };
        let record = EpochRecord {
            epoch,
            lr: state.lr,
            train_loss: loss_sum / seen as f64,
            train_accuracy: hits as f64 / seen as f64,
            val_loss,
            val_accuracy,
            seconds: started.elapsed().as_secs_f64(),
            images_per_second: seen as f64 / train_seconds,
        };
        run.log(format!(
            "epoch {epoch:>3}/{}  lr {:.1e}  train loss {:.4} acc {:.4}  val loss {:.4} acc {:.4}  {:.0} s ({:.1} img/s)",
            config.epochs, record.lr, record.train_loss, record.train_accuracy, record.val_loss,
            record.val_accuracy, record.seconds, record.images_per_second
        ));
        state.history.push(record);
        state.epoch = epoch;
        if val_loss < state.best_val_loss {
            state.best_val_loss = val_loss;
            state.best_epoch = epoch;
            state.since_best = 0;
            state.plateau_wait = 0;
            model_io::save(
                &best_path,
                &inference_model,
                manifest.clone(),
                WeightPrecision::F32,
            )?;
        } else {
            state.since_best += 1;
            state.plateau_wait += 1;
            if state.plateau_wait >= config.patience {
                state.lr *= config.lr_factor;
                state.plateau_wait = 0;
                run.log(format!(
                    "validation loss stalled for {} epochs: learning rate now {:.1e}",
                    config.patience, state.lr
                ));
            }
        }
        checkpoints.save(&Checkpoint {
            state: state.clone(),
            model: model.clone().into_record().into_bytes()?.to_vec(),
            optimizer: optimizer.into_bytes()?.to_vec(),
        })?;
        run.write_json("metrics.json", &state.history)?;
        run.write_text("metrics.csv", &report::history_csv(&state.history))?;
        report::plot_history(&state.history, &run.join("curves.png"))?;
    }
    let best = model_io::load(&best_path, device)
        .with_context(|| format!("cannot reload the best model {}", best_path.display()))?;
    run.log(format!(
        "best validation loss {:.4} at epoch {} → {}",
        state.best_val_loss,
        state.best_epoch,
        best_path.display()
    ));
    Ok(FitOutcome {
        model: best.model,
        history: state.history,
        best_epoch: state.best_epoch,
    })
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
