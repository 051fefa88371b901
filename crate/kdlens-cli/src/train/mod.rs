//! The training loop shared by the teacher and the students, in phases: [`start`] (fresh or
//! from the run's checkpoint), the teacher's logits ([`teacher`]), then per epoch
//! [`train_epoch`], [`validate`], the rules ([`rules`]) and [`save_epoch`].

mod checkpoint;
mod config;
pub mod inference;
mod rules;
mod step;
mod teacher;

use std::{sync::mpsc::sync_channel, time::Instant};

use anyhow::{Context, Result, bail};
use burn::{
    module::Module,
    optim::{AdamConfig, ModuleOptimizer},
    store::ModuleRecord,
    tensor::{Bytes, Device, Tensor, TensorData},
};
use indicatif::{ProgressBar, ProgressStyle};
use kdlens::{
    bundle::{Manifest, WeightPrecision},
    distill::{DistillConfig, batch_loss},
    image::Preprocessing,
    model::{Classifier, ModelSpec},
};
use rand::{SeedableRng, rngs::StdRng, seq::SliceRandom};

pub use checkpoint::EpochRecord;
use checkpoint::{Checkpoint, Checkpoints, LoopState};
pub use config::{TrainConfig, default_replicas};
use rules::Verdict;
use step::{correct, labels_tensor, replica_step, scalar};
use teacher::TeacherLogits;

use crate::{
    data::{
        ImageCache,
        augment::{Augmentation, Transform},
    },
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
    /// Starting weights (e.g. torchvision's) instead of a fresh initialisation, loaded only
    /// when the run does not continue from a checkpoint.
    pub initial: Option<InitialWeights<'a>>,
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

/// Loads a run's starting weights (called at most once, before the first epoch).
pub type InitialWeights<'a> = Box<dyn FnOnce() -> Result<Classifier> + 'a>;

/// The result of a training run.
pub struct FitOutcome {
    /// The weights of the best validation epoch, in inference mode.
    pub model: Classifier,
    /// Every epoch.
    pub history: Vec<EpochRecord>,
    /// Epoch whose weights were kept.
    pub best_epoch: usize,
}

/// Held by unit tests that seed and draw from a backend's random stream (parameter
/// initialisation, dropout): each backend has one stream for the whole process, shared by the
/// test threads.
#[cfg(test)]
pub(crate) static DEVICE_RANDOM_STREAM: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Mixes a seed with a counter (SplitMix64 finaliser) for per-epoch streams.
pub fn mix(seed: u64, n: u64) -> u64 {
    let mut z = seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
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
    config.validate()?;
    if train.is_empty() {
        bail!("no training images");
    }
    let autodiff = device.clone().autodiff();
    let checkpoints = Checkpoints::new(&run.join("checkpoints"))?;
    let best_path = run.join("best.kdlens");
    let Start {
        mut model,
        mut optimizer,
        mut state,
    } = start(&spec, initial, &checkpoints, config, &autodiff, run, resume)?;

    let inference_batch = config.batch_size.max(32);
    let augmentation = config
        .augmentation
        .is_active()
        .then_some(&config.augmentation);
    let (teacher, distill) = match &objective {
        Objective::Distill { teacher, config } => {
            let logits = TeacherLogits::compute(
                teacher,
                train,
                val,
                augmentation,
                preprocessing,
                device,
                inference_batch,
            )?;
            (Some(logits), Some(*config))
        }
        Objective::Labels => (None, None),
    };
    let epochs = EpochContext {
        train,
        preprocessing,
        config,
        augmentation,
        device,
        autodiff: &autodiff,
        replicas: &replicas,
        teacher: teacher.as_ref(),
        distill,
    };
    while state.epoch < config.epochs {
        if state.stops_early(config) {
            run.log(format!(
                "early stop: no better validation loss for {} epochs",
                state.since_best
            ));
            break;
        }
        let epoch = state.epoch + 1;
        let started = Instant::now();
        let totals = train_epoch(&epochs, epoch, state.lr, &mut model, &mut optimizer)?;
        let inference_model = model.valid();
        let (val_loss, val_accuracy) =
            validate(&inference_model, val, &epochs, inference_batch, &totals)?;
        let seconds = started.elapsed().as_secs_f64();
        let record = totals.record(epoch, state.lr, (val_loss, val_accuracy), seconds);
        run.log(format!(
            "epoch {epoch:>3}/{}  lr {:.1e}  train loss {:.4} acc {:.4}  val loss {:.4} acc {:.4}  {:.0} s ({:.1} img/s)",
            config.epochs, record.lr, record.train_loss, record.train_accuracy, record.val_loss,
            record.val_accuracy, record.seconds, record.images_per_second
        ));
        match state.conclude(record, config) {
            Verdict::Improved => {
                model_io::save(
                    &best_path,
                    &inference_model,
                    manifest.clone(),
                    WeightPrecision::F32,
                )?;
            }
            Verdict::Stalled { lr_now: Some(lr) } => run.log(format!(
                "validation loss stalled for {} epochs: learning rate now {lr:.1e}",
                config.patience
            )),
            Verdict::Stalled { lr_now: None } => {}
        }
        save_epoch(&checkpoints, &state, &model, &optimizer, run)?;
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

/// The adaptive optimiser of every run: Adam with PyTorch's defaults (β 0.9 and 0.999, ε 1e-8
/// added to √v̂). burn's own default ε is 1e-5, which shrinks any step whose √v̂ is not far above
/// 1e-5. (ε is not in the checkpoint: a run saved before this choice resumes with 1e-8.)
fn adam() -> ModuleOptimizer {
    AdamConfig::new().with_epsilon(1e-8).init()
}

/// Where a run starts: its model (on the autodiff device, in training mode), its optimiser and
/// the loop's state.
struct Start {
    model: Classifier,
    optimizer: ModuleOptimizer,
    state: LoopState,
}

/// A fresh start (a new model, whose weights burn fills at the first forward pass from the
/// seeded stream, or `initial`'s weights), or the run folder's newest checkpoint when `resume`
/// is set. `initial` is only called for a fresh start.
fn start(
    spec: &ModelSpec,
    initial: Option<InitialWeights<'_>>,
    checkpoints: &Checkpoints,
    config: &TrainConfig,
    autodiff: &Device,
    run: &RunDir,
    resume: bool,
) -> Result<Start> {
    let existing = checkpoints.load_latest(|warning| run.log(warning))?;
    if existing.is_some() && !resume {
        bail!(
            "{} already holds a training checkpoint; continue it with --resume {0} or choose \
             another --run-dir",
            run.path().display()
        );
    }
    autodiff.seed(config.seed);
    let Some(checkpoint) = existing else {
        let model = match initial {
            Some(load) => load()?.to_device(autodiff).train(),
            None => spec.init(autodiff)?,
        };
        return Ok(Start {
            model,
            optimizer: adam(),
            state: LoopState::fresh(config.lr),
        });
    };
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(checkpoint.model))
        .context("checkpoint model record")?;
    let model = spec
        .init(autodiff)?
        .try_load_record(record)
        .context("checkpoint does not fit the model")?;
    let optimizer = adam()
        .from_bytes(Bytes::from_bytes_vec(checkpoint.optimizer))
        .context("checkpoint optimizer record")?;
    run.log(format!(
        "resuming after epoch {} of {}",
        checkpoint.state.epoch, config.epochs
    ));
    Ok(Start {
        model,
        optimizer,
        state: checkpoint.state,
    })
}

/// What every epoch of a run shares.
struct EpochContext<'a> {
    train: &'a ImageCache,
    preprocessing: &'a Preprocessing,
    config: &'a TrainConfig,
    augmentation: Option<&'a Augmentation>,
    device: &'a Device,
    /// `device` with autodiff: its random stream drives dropout.
    autodiff: &'a Device,
    replicas: &'a [Device],
    teacher: Option<&'a TeacherLogits<'a>>,
    distill: Option<DistillConfig>,
}

/// One epoch's training totals.
struct EpochTotals {
    loss_sum: f64,
    hits: usize,
    seen: usize,
    /// Seconds of training (without validation).
    train_seconds: f64,
}

impl EpochTotals {
    fn loss(&self) -> f64 {
        self.loss_sum / self.seen as f64
    }

    fn accuracy(&self) -> f64 {
        self.hits as f64 / self.seen as f64
    }

    /// The epoch's record, with its validation loss and accuracy and its wall-clock `seconds`
    /// (training and validation).
    fn record(
        &self,
        epoch: usize,
        lr: f64,
        (val_loss, val_accuracy): (f64, f64),
        seconds: f64,
    ) -> EpochRecord {
        EpochRecord {
            epoch,
            lr,
            train_loss: self.loss(),
            train_accuracy: self.accuracy(),
            val_loss,
            val_accuracy,
            seconds,
            images_per_second: self.seen as f64 / self.train_seconds,
        }
    }
}

/// One pass over the shuffled training set at learning rate `lr`, updating `model` and
/// `optimizer`. Batches are augmented and normalised on a second thread while the previous one
/// trains. Shuffling, augmentation and dropout are seeded from the run's seed and `epoch`.
fn train_epoch(
    cx: &EpochContext,
    epoch: usize,
    lr: f64,
    model: &mut Classifier,
    optimizer: &mut ModuleOptimizer,
) -> Result<EpochTotals> {
    let EpochContext {
        train,
        preprocessing,
        config,
        augmentation,
        device,
        autodiff,
        ..
    } = *cx;
    let started = Instant::now();
    autodiff.seed(mix(config.seed, epoch as u64));
    let mut order: Vec<usize> = (0..train.len()).collect();
    order.shuffle(&mut StdRng::seed_from_u64(mix(
        config.seed ^ 0x5eed,
        epoch as u64,
    )));
    let batches: Vec<&[usize]> = order.chunks(config.batch_size).collect();
    let style =
        ProgressStyle::with_template("{prefix} {bar:30} {pos}/{len} batches · {msg} · eta {eta}")
            .expect("valid template");
    let bar = ProgressBar::new(batches.len() as u64).with_style(style);
    bar.set_prefix(format!("epoch {epoch}/{}", config.epochs));
    let size = preprocessing.input_size;

    let mut totals = EpochTotals {
        loss_sum: 0.0,
        hits: 0,
        seen: 0,
        train_seconds: 0.0,
    };
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
            let indices = batches[b];
            let n = indices.len();
            let teacher_logits = cx
                .teacher
                .map(|t| t.for_batch(indices, &transforms, &values, size, device));
            let labels: Vec<usize> = indices.iter().map(|&i| train.labels()[i]).collect();
            let (grads, loss, hits) = replica_step(
                model,
                cx.replicas,
                &values,
                &labels,
                teacher_logits,
                cx.distill,
                size,
            )?;
            if !loss.is_finite() {
                bail!("the training loss became {loss} in epoch {epoch}; lower --lr");
            }
            totals.hits += hits;
            totals.loss_sum += loss * n as f64;
            totals.seen += n;
            *model = optimizer.step_multi(lr, model.clone(), grads);
            bar.inc(1);
            let rate = totals.seen as f64 / started.elapsed().as_secs_f64();
            bar.set_message(format!(
                "loss {:.4} acc {:.3} · {rate:.1} img/s",
                totals.loss(),
                totals.accuracy()
            ));
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    totals.train_seconds = started.elapsed().as_secs_f64();
    Ok(totals)
}

/// Validation loss (the training objective) and accuracy of `model` over `val`; without
/// validation images, the epoch's training figures.
fn validate(
    model: &Classifier,
    val: &ImageCache,
    cx: &EpochContext,
    batch: usize,
    totals: &EpochTotals,
) -> Result<(f64, f64)> {
    if val.is_empty() {
        return Ok((totals.loss(), totals.accuracy()));
    }
    let device = cx.device;
    let logits = inference::logits(
        model,
        val,
        cx.preprocessing,
        device,
        batch,
        Transform::identity(),
    )?;
    let as_tensor = |rows: &[f32]| {
        let classes = rows.len() / val.len();
        Tensor::<2>::from_data(TensorData::new(rows.to_vec(), [val.len(), classes]), device)
    };
    let logits = as_tensor(&logits);
    let all: Vec<usize> = (0..val.len()).collect();
    let loss = batch_loss(
        logits.clone(),
        labels_tensor(val, &all, device),
        cx.distill,
        cx.teacher.map(|t| as_tensor(&t.val)),
    )?;
    Ok((
        scalar(loss)?,
        correct(&logits, val.labels())? as f64 / val.len() as f64,
    ))
}

/// Writes the epoch's checkpoint (model, optimiser, loop state) and the run's metrics, history
/// plot included; each file atomically.
fn save_epoch(
    checkpoints: &Checkpoints,
    state: &LoopState,
    model: &Classifier,
    optimizer: &ModuleOptimizer,
    run: &RunDir,
) -> Result<()> {
    checkpoints.save(&Checkpoint {
        state: state.clone(),
        model: model.clone().into_record().into_bytes()?.to_vec(),
        optimizer: optimizer.into_bytes()?.to_vec(),
    })?;
    run.write_json("metrics.json", &state.history)?;
    run.write_text("metrics.csv", &report::history_csv(&state.history))?;
    report::plot_history(&state.history, &run.join("curves.png"))
}

#[cfg(test)]
mod tests {
    use burn::{
        module::Param,
        nn::Linear,
        optim::GradientsParams,
        tensor::{Device, Tensor, TensorData},
    };

    use super::adam;

    /// PyTorch's first Adam step moves a weight by `-lr · g / (|g| + ε)` (m̂ = g, v̂ = g²), with
    /// ε = 1e-8: gradients of 1e-6 and -1e-5 move their weights (from 0) by -0.990 · lr and
    /// 0.999 · lr; burn's default ε (1e-5) would give -0.091 · lr and 0.5 · lr.
    #[test]
    fn adam_steps_like_pytorchs() {
        let device = Device::flex().autodiff();
        let weight = Param::from_tensor(Tensor::<2>::from_data(
            TensorData::new(vec![0.0f32, 0.0], [2, 1]),
            &device,
        ));
        let id = weight.id;
        let layer = Linear { weight, bias: None };
        let gradients = [1e-6f64, -1e-5];
        let mut grads = GradientsParams::new();
        grads.register(
            id,
            Tensor::<2>::from_data(
                TensorData::new(gradients.map(|g| g as f32).to_vec(), [2, 1]),
                &device,
            ),
        );
        let lr = 1e-3;
        let stepped = adam().step(lr, layer, grads);
        let after = stepped
            .weight
            .val()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        for (moved, g) in after.iter().zip(gradients) {
            let expected = -g / (g.abs() + 1e-8);
            let got = *moved as f64 / lr;
            assert!(
                (got - expected).abs() < 1e-4,
                "{got} · lr against {expected} · lr"
            );
        }
    }
}
