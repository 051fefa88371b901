//! One module per subcommand, plus what they share.

pub mod audit;
pub mod bench;
pub mod common;
pub mod demo;
pub mod distill;
pub mod evaluate;
pub mod explain;
pub mod export;
pub mod pool;
pub mod train_teacher;

use crate::{
    cli::{DeviceArg, TrainArgs},
    data::augment::Augmentation,
    train::{TrainConfig, default_replicas},
};

/// `defaults` overridden by whatever training flags were given.
pub fn training_config(args: &TrainArgs, defaults: TrainConfig, device: DeviceArg) -> TrainConfig {
    let mut augmentation = if args.no_augment {
        Augmentation::none()
    } else {
        defaults.augmentation.clone()
    };
    if args.no_hflip {
        augmentation.horizontal_flip = false;
    }
    if args.no_vflip {
        augmentation.vertical_flip = false;
    }
    if let Some(shift) = args.shift {
        augmentation.shift = shift;
    }
    if let Some(zoom) = args.zoom {
        augmentation.zoom = zoom;
    }
    if let Some(rotation) = args.rotation {
        augmentation.rotation_degrees = rotation;
    }
    TrainConfig {
        epochs: args.epochs.unwrap_or(defaults.epochs),
        batch_size: args.batch_size.unwrap_or(defaults.batch_size),
        lr: args.lr.unwrap_or(defaults.lr),
        patience: args.patience.unwrap_or(defaults.patience),
        lr_factor: defaults.lr_factor,
        early_stop: args.early_stop.or(defaults.early_stop),
        augmentation,
        seed: defaults.seed,
        replicas: args.replicas.unwrap_or(default_replicas(device)),
    }
}
