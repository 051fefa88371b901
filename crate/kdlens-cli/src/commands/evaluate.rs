//! `kdlens evaluate`, and the evaluation files every training run writes.

use std::path::PathBuf;

use anyhow::{Result, bail};
use burn::tensor::Device;
use kdlens::{
    bundle::{Manifest, WeightPrecision},
    image::Preprocessing,
    model::Classifier,
};
use serde::{Deserialize, Serialize};

use super::common::{
    DataConfig, Evaluation, PreparedData, cache_split, check_bad_images, evaluate,
};
use crate::{
    cli::{EvaluateArgs, GlobalArgs},
    data::{ImageCache, Splits},
    model_io,
    report::{markdown_table, plot_confusion},
    run::RunDir,
    train::inference::ood_reference,
};

/// One evaluated model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Evaluated {
    /// Short name.
    pub name: String,
    /// Model file.
    pub path: PathBuf,
    /// Test-set results.
    pub evaluation: Evaluation,
    /// Validation accuracy of the kept epoch (0 when not trained in this run).
    pub val_accuracy: f64,
}

/// Training images the out-of-distribution reference is fitted on (evenly spread), at most.
const OOD_REFERENCE_IMAGES: usize = 4000;

/// What a training run does with the model it kept: [`write_evaluation`] on the test split,
/// the test metrics and the out-of-distribution reference (from the training and validation
/// splits) recorded in its manifest, and the model saved as `<prefix>.kdlens` (f32). Returns
/// the evaluation and the model file's path.
pub fn evaluate_and_save(
    model: &Classifier,
    data: &PreparedData,
    preprocessing: &Preprocessing,
    device: &Device,
    prefix: &str,
    run: &RunDir,
    mut manifest: Manifest,
) -> Result<(Evaluation, PathBuf)> {
    let classes = &data.splits.classes;
    let evaluation = write_evaluation(
        model,
        &data.test,
        preprocessing,
        device,
        classes,
        prefix,
        run,
    )?;
    manifest.metrics = Some(evaluation.report.clone());
    let reference = ood_reference(
        model,
        &data.train,
        &data.val,
        preprocessing,
        device,
        OOD_REFERENCE_IMAGES,
    )?;
    run.log(format!(
        "{prefix}: out-of-distribution reference from {} training images, threshold {:.1} (95 % of validation images below)",
        reference.samples, reference.threshold
    ));
    manifest.ood_reference = Some(reference);
    let path = run.join(format!("{prefix}.kdlens"));
    model_io::save(&path, model, manifest, WeightPrecision::F32)?;
    Ok((evaluation, path))
}

/// Evaluates `model` on `cache` and writes `<prefix>_metrics.json`, `<prefix>_confusion.png`
/// and `<prefix>_misclassified.csv` into the run folder.
pub fn write_evaluation(
    model: &Classifier,
    cache: &ImageCache,
    preprocessing: &Preprocessing,
    device: &Device,
    classes: &[String],
    prefix: &str,
    run: &RunDir,
) -> Result<Evaluation> {
    let evaluation = evaluate(model, cache, preprocessing, device, classes.len())?;
    run.write_json(
        &format!("{prefix}_metrics.json"),
        &serde_json::json!({
            "classes": classes,
            "accuracy": evaluation.report.accuracy,
            "report": evaluation.report,
            "confusion_matrix": evaluation.confusion.counts,
            "expected_calibration_error": evaluation.ece,
            "misclassified": evaluation.misclassified.len(),
        }),
    )?;
    plot_confusion(
        &evaluation.confusion,
        classes,
        &format!(
            "{prefix}: accuracy {:.2} %",
            100.0 * evaluation.report.accuracy
        ),
        &run.join(format!("{prefix}_confusion.png")),
    )?;
    let mut csv = String::from("image,true_class,predicted_class,confidence\n");
    for (image, truth, predicted, confidence) in &evaluation.misclassified {
        csv.push_str(&format!(
            "\"{}\",{},{},{confidence:.4}\n",
            image.replace('"', "\"\""),
            classes[*truth],
            classes[*predicted]
        ));
    }
    run.write_text(&format!("{prefix}_misclassified.csv"), &csv)?;
    Ok(evaluation)
}

/// Side-by-side table of several evaluated models, with per-class F1 deltas against the first.
pub fn comparison_table(models: &[(String, u64, u64, &Evaluation)], classes: &[String]) -> String {
    let mut header = vec![
        "model".to_string(),
        "params".into(),
        "GFLOPs".into(),
        "accuracy".into(),
        "macro F1".into(),
        "weighted F1".into(),
        "ECE".into(),
    ];
    header.extend(classes.iter().map(|c| format!("F1 {c}")));
    let reference = models.first().map(|m| m.3);
    let rows: Vec<Vec<String>> = models
        .iter()
        .map(|(name, params, flops, e)| {
            let mut row = vec![
                name.clone(),
                format!("{:.2} M", *params as f64 / 1e6),
                format!("{:.3}", *flops as f64 / 1e9),
                format!("{:.4}", e.report.accuracy),
                format!("{:.4}", e.report.macro_avg.f1),
                format!("{:.4}", e.report.weighted_avg.f1),
                format!("{:.4}", e.ece),
            ];
            for (c, m) in e.report.per_class.iter().enumerate() {
                match reference {
                    Some(r) if !std::ptr::eq(r, *e) => row.push(format!(
                        "{:.3} ({:+.3})",
                        m.f1,
                        m.f1 - r.report.per_class[c].f1
                    )),
                    _ => row.push(format!("{:.3}", m.f1)),
                }
            }
            row
        })
        .collect();
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    markdown_table(&header, &rows)
}

/// `kdlens evaluate --model A [--model B …] --data …`.
pub fn run_evaluate(
    args: &EvaluateArgs,
    global: &GlobalArgs,
    run: &RunDir,
    device: &Device,
) -> Result<()> {
    let data = DataConfig::from_args(&args.data, global.seed, 0)?;
    let splits = Splits::load(&data.source, &data.split)?;
    let mut evaluated = Vec::new();
    for (i, path) in args.models.iter().enumerate() {
        let loaded = model_io::load(path, device)?;
        let manifest = loaded.manifest();
        if manifest.classes != splits.classes {
            bail!(
                "{} was trained on the classes {:?} but {} has {:?}",
                path.display(),
                manifest.classes,
                splits.origin,
                splits.classes
            );
        }
        // Scans are read the way this model was trained to see them, unless flags say otherwise.
        let mut preprocessing = manifest.preprocessing.clone();
        preprocessing.scan = Some(args.data.scan.over(preprocessing.scan_options()));
        let (cache, bad) = cache_split("test", &splits.test, &preprocessing);
        check_bad_images(&bad, data.skip_bad_images, run)?;
        let name = format!("model{}", i + 1);
        let evaluation = write_evaluation(
            &loaded.model,
            &cache,
            &preprocessing,
            device,
            &splits.classes,
            &name,
            run,
        )?;
        run.log(format!(
            "{name} = {}: {} — accuracy {:.4}, macro F1 {:.4}, ECE {:.4}",
            path.display(),
            manifest.name,
            evaluation.report.accuracy,
            evaluation.report.macro_avg.f1,
            evaluation.ece
        ));
        let cost = manifest.spec.cost();
        evaluated.push((
            format!("{name}: {}", manifest.name),
            cost.params(),
            cost.flops(),
            evaluation,
        ));
    }
    let rows: Vec<(String, u64, u64, &Evaluation)> = evaluated
        .iter()
        .map(|(n, p, f, e)| (n.clone(), *p, *f, e))
        .collect();
    let table = comparison_table(&rows, &splits.classes);
    run.write_text("evaluation.md", &table)?;
    if evaluated.len() >= 2 {
        let diff: Vec<Vec<i64>> = evaluated[1]
            .3
            .confusion
            .counts
            .iter()
            .zip(&evaluated[0].3.confusion.counts)
            .map(|(b, a)| {
                b.iter()
                    .zip(a)
                    .map(|(x, y)| *x as i64 - *y as i64)
                    .collect()
            })
            .collect();
        run.write_json(
            "confusion_difference.json",
            &serde_json::json!({
                "meaning": "model2 counts minus model1 counts; rows true class, columns predicted",
                "classes": splits.classes,
                "difference": diff,
            }),
        )?;
    }
    println!("{table}");
    run.log(format!("evaluation written to {}", run.path().display()));
    Ok(())
}
