//! Cascading model randomisation (Adebayo et al., "Sanity Checks for Saliency Maps", 2018):
//! the weights are replaced by random ones group by group, from the classifier down to the
//! first layer, and the map is recomputed after each group. A map that still correlates with
//! the trained model's map once the model is destroyed explains the image, not the model.

use burn::{
    module::{Module, ModuleMapper, ModuleVisitor, Param},
    tensor::{Tensor, TensorData},
};
use rand::{RngExt, SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

use crate::{
    Error, Result,
    explain::{Context, Method, Report, Request, Target, View, explain},
    model::Classifier,
    trust::spearman,
};

/// A method passes when the rank correlation between its map on the trained model and on the
/// fully randomised model is below this (Adebayo et al. show faithful maps near 0).
pub const SANITY_THRESHOLD: f64 = 0.5;

/// The map after randomising one more group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SanityStep {
    /// The group randomised at this step (all groups above it already are), e.g. `classifier`,
    /// `convs.4` or `features.denseblock3`.
    pub randomized: String,
    /// Spearman rank correlation between the trained model's map and this one (magnitudes for
    /// signed methods); `None` when the new map is constant, which counts as changed.
    pub spearman: Option<f64>,
}

/// The cascade of one method on one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SanityCheck {
    /// The method.
    pub method: Method,
    /// The class explained (the trained model's prediction).
    pub class: usize,
    /// One entry per randomised group, top first.
    pub steps: Vec<SanityStep>,
    /// The correlation with every group randomised is below [`SANITY_THRESHOLD`].
    pub passed: bool,
}

impl SanityCheck {
    /// The verdict from the steps: a method passes when its last map (everything randomised)
    /// no longer ranks the pixels like the trained model's map.
    pub fn new(method: Method, class: usize, steps: Vec<SanityStep>) -> Self {
        let passed = steps
            .last()
            .is_some_and(|s| s.spearman.is_none_or(|r| r < SANITY_THRESHOLD));
        Self {
            method,
            class,
            steps,
            passed,
        }
    }
}

/// Whether a parameter path ends in a BatchNorm running statistic (a buffer, not a weight).
fn is_buffer(path: &[String]) -> bool {
    matches!(
        path.last().map(String::as_str),
        Some("running_mean" | "running_var")
    )
}

/// A parameter's group: the first two segments of its module path (`convs.3`,
/// `features.denseblock2`) or the first one for a top-level layer (`classifier`).
fn group_of(path: &[String]) -> String {
    let module = &path[..path.len().saturating_sub(1)];
    module[..module.len().min(2)].join(".")
}

struct Groups {
    path: Vec<String>,
    groups: Vec<String>,
}

impl ModuleVisitor for Groups {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, _param: &Param<Tensor<D>>) {
        if is_buffer(&self.path) {
            return;
        }
        let group = group_of(&self.path);
        if self.groups.last() != Some(&group) && !self.groups.contains(&group) {
            self.groups.push(group);
        }
    }
}

struct Randomizer<'a> {
    path: Vec<String>,
    groups: &'a [String],
    seed: u64,
    /// One generator per group, started when the group's first parameter is drawn.
    streams: HashMap<String, StdRng>,
}

/// The generator of `group`'s random weights: seeded from `seed` and the group's name, so a
/// group is given the same weights whichever other groups are randomised with it.
fn group_stream(seed: u64, group: &str) -> StdRng {
    let digest = Sha256::new()
        .chain_update(seed.to_le_bytes())
        .chain_update(group.as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    StdRng::seed_from_u64(u64::from_le_bytes(first))
}

impl ModuleMapper for Randomizer<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let group = group_of(&self.path);
        if is_buffer(&self.path) || !self.groups.contains(&group) {
            return param;
        }
        let seed = self.seed;
        let rng = self
            .streams
            .entry(group)
            .or_insert_with_key(|group| group_stream(seed, group));
        param.map(|tensor| redraw(tensor, rng))
    }
}

/// Random values of the tensor's own mean and standard deviation (so activations keep their
/// scale), from a normal distribution (Box–Muller over the seeded generator).
fn redraw<const D: usize>(tensor: Tensor<D>, rng: &mut StdRng) -> Tensor<D> {
    let dims = tensor.dims();
    let device = tensor.device();
    let count: usize = dims.iter().product();
    let mean = tensor.clone().mean();
    let std = (tensor - mean.clone().unsqueeze::<D>())
        .powf_scalar(2.0)
        .mean()
        .sqrt();
    let noise: Vec<f32> = (0..count)
        .map(|_| {
            let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
            let u2: f64 = rng.random();
            ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
        })
        .collect();
    Tensor::<D>::from_data(TensorData::new(noise, dims), &device) * std.unsqueeze::<D>()
        + mean.unsqueeze::<D>()
}

fn groups_of<M: Module>(module: &M) -> Vec<String> {
    let mut visitor = Groups {
        path: Vec::new(),
        groups: Vec::new(),
    };
    module.visit(&mut visitor);
    visitor.groups
}

/// The model's parameter groups in forward order (e.g. `convs.0` … `convs.4`, `fc1`, `fc2`,
/// `fc3`, `classifier` for the five-layer student; `features.conv0` … `features.norm5`,
/// `classifier` for DenseNet). The cascade randomises them from the last.
pub fn parameter_groups(model: &Classifier) -> Vec<String> {
    match model {
        Classifier::FiveLayer(m) => groups_of(m),
        Classifier::Kd8(m) => groups_of(m),
        Classifier::DenseNet(m) => groups_of(m),
    }
}

/// A copy of `model` whose parameters in `groups` are replaced by random values drawn from
/// `seed`; BatchNorm running statistics are kept. Each group's values depend only on `seed`, the
/// group and its parameters: a group randomised alone or with others gets the same weights.
pub fn randomized(model: &Classifier, groups: &[String], seed: u64) -> Classifier {
    let mut mapper = Randomizer {
        path: Vec::new(),
        groups,
        seed,
        streams: HashMap::new(),
    };
    match model.clone() {
        Classifier::FiveLayer(m) => Classifier::FiveLayer(m.map(&mut mapper)),
        Classifier::Kd8(m) => Classifier::Kd8(m.map(&mut mapper)),
        Classifier::DenseNet(m) => Classifier::DenseNet(m.map(&mut mapper)),
    }
}

/// The map of `method` at the input size as the sanity check compares it: magnitudes for the
/// signed methods (an attribution whose sign flips still highlights the same pixels).
fn compared_map(report: &Report, method: Method, size: [usize; 2]) -> Result<Vec<f32>> {
    let map = report.display(&View::Method(method), size)?;
    Ok(if method.is_signed() {
        map.values.iter().map(|v| v.abs()).collect()
    } else {
        map.values
    })
}

/// Runs the cascade for `method` on one image `[1, 3, H, W]`: the trained model's map of its
/// predicted class (or `request`'s target), then the map of the same class after randomising
/// each further parameter group from the top (weights drawn once per group from `seed`).
///
/// Costs one explanation per parameter group (9 for the five-layer student, 11 for DenseNet).
pub async fn sanity_check(
    model: &Classifier,
    input: Tensor<4>,
    method: Method,
    request: &Request,
    context: &Context<'_>,
    seed: u64,
) -> Result<SanityCheck> {
    let [_, _, h, w] = input.dims();
    let mut request = Request {
        methods: vec![method],
        faithfulness: None,
        ..request.clone()
    };
    let original = explain(model, input.clone(), &request, context).await?;
    let reference = compared_map(&original, method, [h, w])?;
    request.target = Target::Class(original.class);
    let groups = parameter_groups(model);
    if groups.is_empty() {
        return Err(Error::InvalidRequest(
            "the model has no parameters to randomise".into(),
        ));
    }
    // Each step randomises one more group of the previous step's model: the groups above keep
    // the weights they were given (Adebayo et al.'s cascade).
    let mut broken = model.clone();
    let mut steps = Vec::with_capacity(groups.len());
    for top in (0..groups.len()).rev() {
        broken = randomized(&broken, &groups[top..=top], seed);
        let report = explain(&broken, input.clone(), &request, context).await?;
        steps.push(SanityStep {
            randomized: groups[top].clone(),
            spearman: spearman(&reference, &compared_map(&report, method, [h, w])?),
        });
    }
    Ok(SanityCheck::new(method, original.class, steps))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_uses_the_fully_randomised_step() {
        let step = |r: Option<f64>| SanityStep {
            randomized: "g".into(),
            spearman: r,
        };
        assert!(
            SanityCheck::new(Method::GradCam, 0, vec![step(Some(0.9)), step(Some(0.1))]).passed
        );
        assert!(
            !SanityCheck::new(Method::GradCam, 0, vec![step(Some(0.1)), step(Some(0.8))]).passed
        );
        assert!(SanityCheck::new(Method::GradCam, 0, vec![step(None)]).passed);
        assert!(!SanityCheck::new(Method::GradCam, 0, vec![]).passed);
    }

    #[test]
    fn groups_are_the_first_two_path_segments() {
        let path = |p: &str| p.split('.').map(String::from).collect::<Vec<_>>();
        assert_eq!(group_of(&path("convs.3.weight")), "convs.3");
        assert_eq!(group_of(&path("classifier.bias")), "classifier");
        assert_eq!(
            group_of(&path("features.denseblock2.layers.0.conv1.weight")),
            "features.denseblock2"
        );
        assert!(is_buffer(&path("features.norm5.running_var")));
    }
}
