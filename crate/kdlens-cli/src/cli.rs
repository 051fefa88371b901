//! Command-line interface definition.

use std::path::PathBuf;

use clap::{ArgMatches, Args, CommandFactory, Parser, Subcommand, ValueEnum, parser::ValueSource};
use kdlens::{
    explain::{
        Baseline, CamScore, Colormap, DEFAULT_OPACITY, FaithfulnessPlan, IntegratedGradientsPlan,
        Method, Request, ShapPlan,
    },
    image::scan::{Plane, ScanOptions, WindowChoice},
};

/// kdlens — make a medical image classifier transparent by distilling it into a small student
/// whose every layer can be looked at.
///
/// The usual path: `train-teacher` (DenseNet-121) → `distill` (five-layer student) →
/// `evaluate` → `explain` some images → `export` the student for the browser page in `www/`.
/// `demo` runs all of it on Fashion-MNIST in one command.
#[derive(Parser, Debug)]
#[command(
    name = "kdlens",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Refuses settings that a training command would ignore: with `--config FILE` or `--resume DIR`
/// every setting comes from the run's `config.toml`, so a flag such as `--seed 1` given beside
/// it would silently lose to the file's value. `--run-dir` (where the outputs go) is allowed
/// with `--config`; a resumed run stays in its folder.
/// `matches` are the command line's; only `train-teacher` and `distill` are checked.
pub fn refuse_settings_beside_config(matches: &ArgMatches) -> Result<(), String> {
    let Some((command, args)) = matches.subcommand() else {
        return Ok(());
    };
    if !matches!(command, "train-teacher" | "distill") {
        return Ok(());
    }
    let source = ["config", "resume"]
        .into_iter()
        .find(|id| args.value_source(id) == Some(ValueSource::CommandLine));
    let Some(source) = source else {
        return Ok(());
    };
    let definition = Cli::command();
    let own = definition
        .find_subcommand(command)
        .into_iter()
        .flat_map(|sub| sub.get_arguments());
    let ignored: Vec<String> = own
        .chain(definition.get_arguments())
        .filter(|arg| {
            let id = arg.get_id().as_str();
            id != source
                && !(source == "config" && id == "run_dir")
                && args.value_source(id) == Some(ValueSource::CommandLine)
        })
        .filter_map(|arg| arg.get_long().map(|long| format!("--{long}")))
        .collect();
    if ignored.is_empty() {
        return Ok(());
    }
    let from = if source == "config" {
        "repeats the run its file describes"
    } else {
        "continues the run with the settings it started with"
    };
    Err(format!(
        "{} cannot be combined with --{source}: `kdlens {command} --{source}` {from} \
         (its config.toml); to change a setting, edit a copy of that config.toml and pass it \
         with --config",
        ignored.join(", ")
    ))
}

/// Options every command accepts.
#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// Compute device: `flex` (CPU, pure Rust) or `wgpu` (GPU through Vulkan, Metal or DX12).
    #[arg(long, global = true, value_enum, default_value_t = DeviceArg::Flex)]
    pub device: DeviceArg,
    /// Seed for weight initialisation, shuffling, augmentation and dropout.
    #[arg(long, global = true, default_value_t = 42)]
    pub seed: u64,
    /// Folder for this run's outputs (config, log, metrics, plots, checkpoints, models).
    /// Default: `runs/<command>-<time>`.
    #[arg(long, global = true)]
    pub run_dir: Option<PathBuf>,
}

/// Compute device choice.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceArg {
    /// burn's pure-Rust CPU backend.
    Flex,
    /// burn's wgpu backend: the best GPU adapter of the machine.
    Wgpu,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train the DenseNet-121 teacher, from scratch or from torchvision weights.
    TrainTeacher(TrainTeacherArgs),
    /// Distill a teacher into a student (α = 1 trains the label-only baseline).
    Distill(DistillArgs),
    /// Evaluate one or more models on the test split: accuracy, per-class and averaged
    /// precision/recall/F1, confusion matrix, calibration.
    Evaluate(EvaluateArgs),
    /// Explain images: per-layer feature maps (KD-FMV), the CAM family, integrated gradients
    /// and SHAP, with faithfulness curves and an out-of-distribution check, as PNGs and a JSON
    /// report.
    Explain(ExplainArgs),
    /// Does the student explain like its teacher, and are the maps faithful? Deletion and
    /// insertion areas per method and model, teacher–student agreement per class, the sanity
    /// check, out-of-distribution rates, over a seeded sample of the test split.
    Audit(AuditArgs),
    /// Pool the audits of one recipe trained with several seeds (each a `kdlens audit` run
    /// folder or a demo's): every comparison pooled over all runs' images, beside each run's own.
    PoolAudits(PoolArgs),
    /// Export a model for the browser: one bundle file (plus a safetensors copy).
    Export(ExportArgs),
    /// Efficiency table of teacher vs student: parameters, FLOPs and mean execution time of
    /// prediction, feature maps, Grad-CAM and SHAP.
    Bench(BenchArgs),
    /// Everything on Fashion-MNIST in one command: teacher, distilled student, label-only
    /// baseline, evaluation, efficiency table, explanations, export for the page (into the run
    /// folder's `web/`).
    Demo(DemoArgs),
}

/// Where the data is and how to split and load it.
#[derive(Args, Debug, Clone)]
pub struct DataArgs {
    /// Image set: a folder with `Training/` and `Testing/` class folders, a folder of class
    /// folders (split by kdlens), a folder of Fashion-MNIST IDX files, or `fashion-mnist`.
    #[arg(long)]
    pub data: Option<String>,
    /// Fraction of each training class held out for validation.
    #[arg(long, default_value_t = 0.2)]
    pub val_fraction: f64,
    /// Fraction of each class held out for testing when the data has no test split.
    #[arg(long, default_value_t = 0.2)]
    pub test_fraction: f64,
    /// Use at most this many training images per class.
    #[arg(long)]
    pub limit_per_class: Option<usize>,
    /// Use at most this many test images per class.
    #[arg(long)]
    pub test_limit_per_class: Option<usize>,
    /// Model input side in pixels (images are resized to it).
    #[arg(long)]
    pub image_size: Option<usize>,
    /// Feed the model grayscale (replicated to 3 channels), e.g. for MRI.
    #[arg(long)]
    pub grayscale: bool,
    /// Leave out unreadable images (each is reported) instead of stopping.
    #[arg(long)]
    pub skip_bad_images: bool,
    #[command(flatten)]
    pub scan: ScanArgs,
}

/// How DICOM (`.dcm`) and NIfTI (`.nii`, `.nii.gz`) scans become images; ignored for other
/// files. A flag left out takes the model's recorded choice where there is a model (explain,
/// evaluate), the default otherwise; training records what it used in the model.
#[derive(Args, Debug, Clone, Default)]
pub struct ScanArgs {
    /// Intensity window: `auto` (the file's own VOI LUT or window; 1–99 % percentiles for NIfTI),
    /// `full`, a preset (brain, subdural, stroke, bone, lung, soft-tissue), `CENTER,WIDTH` (e.g.
    /// 40,80) or percentiles `pLOW,HIGH` (e.g. p1,99).
    #[arg(long, allow_hyphen_values = true)]
    pub window: Option<WindowChoice>,
    /// Frame of a multi-frame DICOM file or volume of a 4-D NIfTI file, from 0 (default: the
    /// middle one).
    #[arg(long)]
    pub frame: Option<usize>,
    /// Plane of a NIfTI volume: axial, coronal or sagittal (default axial).
    #[arg(long)]
    pub plane: Option<Plane>,
    /// Slice of a NIfTI volume, from 0 counted from the inferior / posterior / left side
    /// (default: the middle one).
    #[arg(long)]
    pub slice: Option<usize>,
}

impl ScanArgs {
    /// The flags given, over `base` for those left out.
    pub fn over(&self, base: ScanOptions) -> ScanOptions {
        ScanOptions {
            window: self.window.unwrap_or(base.window),
            frame: self.frame.or(base.frame),
            plane: self.plane.unwrap_or(base.plane),
            slice: self.slice.or(base.slice),
        }
    }
}

/// Optimisation settings shared by teacher and student training.
#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    /// Training epochs.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Images per batch.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Adam learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Multiply the learning rate by 0.1 after this many epochs without a better validation loss.
    #[arg(long)]
    pub patience: Option<usize>,
    /// Stop after this many epochs without a better validation loss.
    #[arg(long)]
    pub early_stop: Option<usize>,
    /// Train this many model replicas data-parallel, each on a slice of every batch: on the CPU
    /// one per core (the default), with `--device wgpu` one per GPU (default 1).
    #[arg(long)]
    pub replicas: Option<usize>,
    /// Disable all augmentation.
    #[arg(long)]
    pub no_augment: bool,
    /// Disable the horizontal flip.
    #[arg(long)]
    pub no_hflip: bool,
    /// Disable the vertical flip.
    #[arg(long)]
    pub no_vflip: bool,
    /// Largest random shift, as a fraction of the side (0 disables).
    #[arg(long)]
    pub shift: Option<f32>,
    /// Largest random zoom change (0 disables).
    #[arg(long)]
    pub zoom: Option<f32>,
    /// Largest random rotation in degrees (0 disables).
    #[arg(long)]
    pub rotation: Option<f32>,
    /// Repeat a run from its `config.toml` (no other setting may be given with it, except
    /// `--run-dir`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Continue an interrupted run from its folder's newest checkpoint, with the settings it
    /// started with (no other setting may be given with it).
    #[arg(long)]
    pub resume: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct TrainTeacherArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub train: TrainArgs,
    /// Start from a torchvision DenseNet-121 `state_dict` (`.pth`), e.g. the ImageNet weights;
    /// its classifier is replaced when the class count differs.
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Input normalisation after scaling pixels to [0, 1]: `unit` (none, the paper's) or
    /// `imagenet` (torchvision's ImageNet mean and standard deviation). Default: `imagenet` with
    /// `--init`, `unit` otherwise. Recorded in the model, so every consumer (evaluate, explain,
    /// distill, export, the page) applies it.
    #[arg(long, value_enum)]
    pub normalize: Option<NormalizeArg>,
}

/// Input normalisation choice (the core's [`Normalization`](kdlens::image::Normalization)).
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum NormalizeArg {
    /// None: pixel values / 255.
    Unit,
    /// ImageNet's channel mean and standard deviation.
    Imagenet,
}

impl From<NormalizeArg> for kdlens::image::Normalization {
    fn from(arg: NormalizeArg) -> Self {
        match arg {
            NormalizeArg::Unit => Self::Unit,
            NormalizeArg::Imagenet => Self::Imagenet,
        }
    }
}

/// Student architecture choice.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum StudentArg {
    /// The paper's five-layer student.
    FiveLayer,
    /// The eight-convolution student of the authors' code.
    Kd8,
}

#[derive(Args, Debug)]
pub struct DistillArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub train: TrainArgs,
    /// The trained teacher (a `.kdlens` model file from `train-teacher`).
    #[arg(long)]
    pub teacher: Option<PathBuf>,
    /// Student architecture.
    #[arg(long, value_enum)]
    pub student: Option<StudentArg>,
    /// Weight of the label loss, in [0, 1]; 1 trains on labels only.
    #[arg(long)]
    pub alpha: Option<f64>,
    /// Softmax temperature of the distillation term.
    #[arg(long)]
    pub temperature: Option<f64>,
    /// Grid search, e.g. `--sweep alpha=0.4,0.7 --sweep temperature=5,10,15`: one student per
    /// combination, tabulated.
    #[arg(long, value_name = "KEY=V1,V2")]
    pub sweep: Vec<String>,
}

#[derive(Args, Debug)]
pub struct EvaluateArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Model files to evaluate; with two or more, a comparison table is written as well.
    #[arg(long = "model", required = true)]
    pub models: Vec<PathBuf>,
}

/// What to explain and how: the CLI face of the core's [`Request`](kdlens::explain::Request).
/// Every default is the core's.
#[derive(Args, Debug, Clone)]
pub struct RequestArgs {
    /// Methods, repeated or comma-separated: grad-cam, grad-cam++, hires-cam, layer-cam,
    /// integrated-gradients, shap (feature-map means always come with them).
    #[arg(long = "method", value_delimiter = ',', default_values_t = Request::default().methods)]
    pub methods: Vec<Method>,
    /// Every method (SHAP included).
    #[arg(long, conflicts_with = "methods")]
    pub all_methods: bool,
    /// Also compute SHAP (the same as adding `--method shap`).
    #[arg(long)]
    pub shap: bool,
    /// Stage of the CAM methods (default: the last convolution stage); the report lists them.
    #[arg(long)]
    pub layer: Option<String>,
    /// Explain this class (index or name) instead of the predicted one.
    #[arg(long)]
    pub class: Option<String>,
    /// The score the CAM methods differentiate: logit or probability.
    #[arg(long, default_value_t = Request::default().score)]
    pub score: CamScore,
    /// Points on the integrated-gradients path.
    #[arg(long, default_value_t = IntegratedGradientsPlan::default().steps)]
    pub ig_steps: usize,
    /// Integrated-gradients baseline: black, blur or noise.
    #[arg(long, default_value_t = IntegratedGradientsPlan::default().baseline)]
    pub ig_baseline: Baseline,
    /// SHAP samples per image.
    #[arg(long, default_value_t = ShapPlan::default().samples)]
    pub shap_samples: usize,
    /// Background images for SHAP: a folder of images (default: the bundle's set from
    /// `kdlens export --background-images`, else a black and a mid-gray image).
    #[arg(long)]
    pub background: Option<PathBuf>,
    /// At most this many background images.
    #[arg(long, default_value_t = 16)]
    pub background_size: usize,
    /// Also compute the deletion and insertion curves (and their areas) of every map.
    #[arg(long)]
    pub faithfulness: bool,
    /// Steps of the deletion and insertion curves.
    #[arg(long, default_value_t = FaithfulnessPlan::default().steps)]
    pub faithfulness_steps: usize,
}

#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// Images to explain.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// The model file.
    #[arg(long)]
    pub model: PathBuf,
    #[command(flatten)]
    pub request: RequestArgs,
    #[command(flatten)]
    pub scan: ScanArgs,
    /// Heatmap colours: viridis (colour-blind safe) or jet (the paper's).
    #[arg(long, default_value_t = Colormap::default())]
    pub colormap: Colormap,
    /// Heatmap opacity over the image, 0–1.
    #[arg(long, default_value_t = DEFAULT_OPACITY)]
    pub opacity: f32,
}

#[derive(Args, Debug)]
pub struct AuditArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// The teacher model file.
    #[arg(long)]
    pub teacher: PathBuf,
    /// Student model files (each is compared with the teacher).
    #[arg(long = "student", required = true)]
    pub students: Vec<PathBuf>,
    /// Methods to audit, repeated or comma-separated (default: the CAM family and integrated
    /// gradients; add shap for SHAP, which needs a forward and backward pass per sample).
    #[arg(
        long = "method",
        value_delimiter = ',',
        default_values_t = kdlens::trust::audit::DEFAULT_METHODS
    )]
    pub methods: Vec<Method>,
    /// The CAM methods use each student's deepest stage with at least this many positions per
    /// side (a small input's last stage can be 1×1, where every CAM is a constant), and the
    /// teacher's stage comparable to the first student's, as the page picks it.
    #[arg(long, default_value_t = kdlens::trust::CAM_MIN_SIDE)]
    pub cam_min_side: usize,
    /// Test images audited: a seeded sample of this many (stratified by class).
    #[arg(long, default_value_t = kdlens::trust::audit::DEFAULT_IMAGES)]
    pub images: usize,
    /// Images the sanity check (cascading randomisation) runs on.
    #[arg(long, default_value_t = kdlens::trust::audit::DEFAULT_SANITY_IMAGES)]
    pub sanity_images: usize,
    /// Steps of the deletion and insertion curves.
    #[arg(long, default_value_t = FaithfulnessPlan::default().steps)]
    pub faithfulness_steps: usize,
    /// Points on the integrated-gradients path.
    #[arg(long, default_value_t = IntegratedGradientsPlan::default().steps)]
    pub ig_steps: usize,
    /// SHAP samples per image (when shap is audited).
    #[arg(long, default_value_t = kdlens::trust::audit::DEFAULT_SHAP_SAMPLES)]
    pub shap_samples: usize,
    /// A folder of images unlike the training data (searched recursively): the audit reports
    /// how many the out-of-distribution check flags.
    #[arg(long)]
    pub ood: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct PoolArgs {
    /// The run folders whose audits are pooled (`kdlens audit` runs, or demo runs with their
    /// `audit/`), at least two, of the same models, methods and classes.
    #[arg(required = true, num_args = 2..)]
    pub runs: Vec<PathBuf>,
}

/// Weight precision choice.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrecisionArg {
    /// 32-bit floats.
    F32,
    /// 16-bit floats (half the size).
    F16,
    /// 8-bit integer weights with per-row scales (a quarter of the size).
    Int8,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The model file to export.
    #[arg(long)]
    pub model: PathBuf,
    /// Output folder (e.g. `www/model/`); receives `model.kdlens` and `model.safetensors`.
    #[arg(long)]
    pub out: PathBuf,
    /// Weight precision in the bundle.
    #[arg(long, value_enum, default_value_t = PrecisionArg::F16)]
    pub precision: PrecisionArg,
    /// Display name shown on the page (default: the model's).
    #[arg(long)]
    pub name: Option<String>,
    /// SHAP's background set stored in the bundle: this many training images of `--data`
    /// (stratified over the classes, drawn with `--seed`), at the model's input size. Without
    /// `--data`, or with 0, the model's own set (if any) is kept.
    #[arg(long, default_value_t = 32)]
    pub background_images: usize,
    /// The training data to draw the background from.
    #[command(flatten)]
    pub data: DataArgs,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Teacher model file.
    #[arg(long)]
    pub teacher: Option<PathBuf>,
    /// Student model file.
    #[arg(long)]
    pub student: Option<PathBuf>,
    /// Benchmark freshly initialised models of this input side instead of model files.
    #[arg(long, conflicts_with_all = ["teacher", "student"])]
    pub synthetic: Option<usize>,
    /// Images to run on (default: synthetic noise at the models' input size).
    #[arg(long)]
    pub images: Vec<PathBuf>,
    /// Timed runs per measurement (the median is reported).
    #[arg(long, default_value_t = 7)]
    pub runs: usize,
    /// Untimed warm-up runs.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// SHAP samples.
    #[arg(long, default_value_t = 200)]
    pub shap_samples: usize,
    /// Skip SHAP (the slowest measurement).
    #[arg(long)]
    pub no_shap: bool,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// The small demo the tests run: less data, fewer epochs (on 2 CPU cores about 6 minutes
    /// instead of 38; README, "Quick start").
    #[arg(long)]
    pub quick: bool,
    /// Where to put the page's model folder — the student (`model.kdlens`), its teacher
    /// (`teacher.kdlens`), sample images and `index.json` (default: `web/` in the run folder).
    /// `--web-model-dir www/model` makes them the page's default model and offered teacher,
    /// replacing the committed ones.
    #[arg(long)]
    pub web_model_dir: Option<PathBuf>,
    /// Fashion-MNIST directory (default: Debian's).
    #[arg(long, default_value = "fashion-mnist")]
    pub data: String,
}
